from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

USERNAME = "demo"
PASSWORD = "demo"


class Command(BaseCommand):
    help = "Create the demo superuser if missing and print its credentials."

    def handle(self, *args, **options):
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=USERNAME, defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            user.set_password(PASSWORD)
            user.save()
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo site: http://127.0.0.1:8000/  admin: http://127.0.0.1:8000/admin/  "
                f"user: {USERNAME}  password: {PASSWORD}"
            )
        )
