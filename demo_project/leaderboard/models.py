from django.db import models


class Player(models.Model):
    name = models.CharField(max_length=50, unique=True)

    def __str__(self) -> str:
        return self.name


class Score(models.Model):
    player = models.ForeignKey(Player, related_name="scores", on_delete=models.CASCADE)
    points = models.PositiveIntegerField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["-points"])]

    def __str__(self) -> str:
        return f"{self.player}: {self.points}"
