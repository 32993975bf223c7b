"""Run the django-q2 cluster that sends webhooks, on the webhook queue alone."""

from django.core.management import call_command
from django.core.management.base import BaseCommand

from clipmatch import conf


class Command(BaseCommand):
    help = (
        "Start the django-q2 cluster that sends webhooks: it serves the queue "
        "CLIPMATCH_WEBHOOK_QUEUE (and the webhook schedules) and nothing else, so "
        "no amount of webhook traffic delays scoring; `manage.py qcluster` serves "
        "scoring. Run both."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--run-once", action="store_true", help="Run once and then stop."
        )

    def handle(self, *args, **options):
        # django-q2's own `--name` sets Q_CLUSTER_NAME, which config/settings/base.py
        # reads as the site's name (the ORM broker's signing salt): naming the
        # queue on the class it read its settings into keeps the two apart.
        from django_q.conf import Conf

        Conf.CLUSTER_NAME = conf.get("WEBHOOK_QUEUE")
        call_command("qcluster", run_once=options["run_once"])
