"""Serve the site with a worker cluster beside it, until Ctrl-C (`make serve`)."""

import io

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from listings.workers import port_free, serve


class Command(BaseCommand):
    help = (
        "Run the development server on 127.0.0.1 and a django-q2 worker cluster "
        "beside it; print the addresses once both answer. Ctrl-C (or SIGTERM) stops "
        "both and leaves no process behind."
    )

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--moderator",
            metavar="USERNAME",
            help="Create or reset this moderator login (create_moderator) and print "
            "it again with the addresses.",
        )

    def handle(self, *args, **options):
        port = options["port"]
        if not port_free(port):
            raise CommandError(
                f"Port {port} on 127.0.0.1 is in use; choose another, e.g. "
                "`make demo PORT=8001` or `manage.py serve --port 8001`."
            )
        login = ""
        if options["moderator"]:
            captured = io.StringIO()
            call_command(
                "create_moderator",
                username=options["moderator"],
                stdout=captured,
                no_color=True,
            )
            login = captured.getvalue().strip()
            self.stdout.write(self.style.SUCCESS(login))
        error = serve(
            port=port, on_ready=lambda: self._announce(port, login), out=self.stdout
        )
        if error:
            raise CommandError(error)
        self.stdout.write("Stopped.")

    def _announce(self, port: int, login: str) -> None:
        site = f"http://127.0.0.1:{port}"
        lines = [
            "",
            f"clipmatch is serving at {site}/ with a worker beside it:",
            f"  review queue  {site}/review/",
            f"  admin         {site}/admin/",
            f"  API docs      {site}/api/docs/",
            f"  {self.style.SUCCESS(login)}"
            if login
            else "  a moderator login: manage.py create_moderator",
            "Ctrl-C stops the server and the worker.",
        ]
        self.stdout.write("\n".join(lines))
