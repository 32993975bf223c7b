"""Create or update the periodic scoring reconciler (idempotent)."""

from django.core.management.base import BaseCommand
from django_q.models import Schedule

from clipmatch import conf

RECONCILER = "clipmatch: reconcile scoring"


class Command(BaseCommand):
    help = (
        "Create or update the django-q2 schedule that re-queues lost or failed scoring."
    )

    def handle(self, *args, **options):
        minutes = conf.get("RECONCILE_EVERY_MINUTES")
        schedule, created = Schedule.objects.update_or_create(
            name=RECONCILER,
            defaults={
                "func": "listings.tasks.reconcile_scoring",
                "schedule_type": Schedule.MINUTES,
                "minutes": minutes,
                "repeats": -1,
            },
        )
        verb = "Created" if created else "Updated"
        self.stdout.write(
            f"{verb} schedule {schedule.name!r}: every {minutes} minute(s)."
        )
