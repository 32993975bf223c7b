"""Create or update the periodic scoring reconciler, webhook dispatcher and
idempotency-key purge (migrate runs it too)."""

from django.core.management.base import BaseCommand

from listings.services.idempotency import idempotency_schedule_ensure
from listings.services.reconcile import schedules_ensure
from listings.signals import schedule_message
from listings.webhooks.services import webhook_schedules_ensure


class Command(BaseCommand):
    help = (
        "Create or update the django-q2 schedules that re-queue lost or failed "
        "scoring and due webhook deliveries, and that delete expired "
        "Idempotency-Keys. `migrate` does this too."
    )

    def handle(self, *args, **options):
        for schedule, created in (
            schedules_ensure(),
            webhook_schedules_ensure(),
            idempotency_schedule_ensure(),
        ):
            self.stdout.write(schedule_message(schedule, created=created))
