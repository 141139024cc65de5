from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="PoolStatus",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
            ],
            options={
                "verbose_name": "connection pool status",
                "verbose_name_plural": "connection pool status",
                "permissions": [("view_pool", "Can view connection pool status")],
                "managed": False,
                "default_permissions": (),
            },
        ),
    ]
