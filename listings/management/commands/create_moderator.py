"""Create (or reset) a staff login for moderators and print it."""

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand

MODERATOR_PERMISSIONS = [
    "view_listing",
    "change_listing",
    "view_listingimage",
    "view_listingscore",
    "view_listingdecision",
    "view_category",
    "view_modelversion",
]


class Command(BaseCommand):
    help = "Create or reset a moderator account (staff, in the Moderators group)."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="moderator")
        parser.add_argument("--password", help="Default: a new random password.")

    def handle(self, *args, **options):
        group, _ = Group.objects.get_or_create(name="Moderators")
        group.permissions.set(
            Permission.objects.filter(codename__in=MODERATOR_PERMISSIONS)
        )
        user, created = get_user_model().objects.get_or_create(
            username=options["username"], defaults={"is_staff": True}
        )
        password = options["password"] or secrets.token_urlsafe(9)
        user.is_staff = True
        user.set_password(password)
        user.save()
        user.groups.add(group)
        verb = "Created" if created else "Reset"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} moderator login -> username: {user.username}  "
                f"password: {password}"
            )
        )
