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
    "moderate_listing",
]
SENIOR_PERMISSIONS = [*MODERATOR_PERMISSIONS, "decide_escalated"]


class Command(BaseCommand):
    help = "Create or reset a moderator account (staff, in the Moderators group)."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="moderator")
        parser.add_argument("--password", help="Default: a new random password.")
        parser.add_argument(
            "--senior",
            action="store_true",
            help="Also let them decide escalated listings (Senior moderators).",
        )

    def handle(self, *args, **options):
        name, codenames = (
            ("Senior moderators", SENIOR_PERMISSIONS)
            if options["senior"]
            else ("Moderators", MODERATOR_PERMISSIONS)
        )
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(
            Permission.objects.filter(
                content_type__app_label__in=["listings", "clipmatch"],
                codename__in=codenames,
            )
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
