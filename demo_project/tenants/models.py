from django.db import models


class Visit(models.Model):
    """A page view of one tenant, stored in that tenant's own database."""

    path = models.CharField(max_length=200)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.path} at {self.created:%H:%M:%S}"
