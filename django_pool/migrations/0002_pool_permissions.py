from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("django_pool", "0001_initial"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="poolstatus",
            options={
                "verbose_name": "connection pool",
                "verbose_name_plural": "connection pools",
                "permissions": [
                    ("view_pool", "Can view connection pool status"),
                    ("change_pool", "Can change connection pools"),
                ],
                "managed": False,
                "default_permissions": (),
            },
        ),
    ]
