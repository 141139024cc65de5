from decimal import Decimal

from django.db import migrations

SAMPLES = [
    ("Espresso beans, 1 kg", Decimal("24.90"), 40),
    ("Pour-over kettle", Decimal("39.00"), 12),
    ("Ceramic dripper", Decimal("18.50"), 25),
    ("Paper filters (100)", Decimal("4.20"), 200),
    ("Hand grinder", Decimal("89.00"), 7),
]


def add_samples(apps, schema_editor):
    Product = apps.get_model("shop", "Product")
    for name, price, stock in SAMPLES:
        Product.objects.get_or_create(name=name, defaults={"price": price, "stock": stock})


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]

    operations = [migrations.RunPython(add_samples, migrations.RunPython.noop)]
