"""Create (or reset) a seller login for the API and print it with its token."""

import secrets

from django.core.management.base import BaseCommand

from listings.services.accounts import api_token_issue, seller_ensure


class Command(BaseCommand):
    help = "Create or reset a seller account (in the Sellers group) and its API token."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="seller")
        parser.add_argument("--password", help="Default: a new random password.")

    def handle(self, *args, **options):
        password = options["password"] or secrets.token_urlsafe(9)
        user = seller_ensure(username=options["username"], password=password)
        token = api_token_issue(user=user)
        self.stdout.write(
            self.style.SUCCESS(
                f"Seller login -> username: {user.username}  password: {password}  "
                f"API token: {token}"
            )
        )
