from django.db import models


class Item(models.Model):
    name = models.CharField(max_length=50)
    quantity = models.IntegerField(default=0)
    created = models.DateTimeField(null=True)
