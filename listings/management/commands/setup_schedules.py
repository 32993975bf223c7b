"""Create or update the periodic scoring reconciler (migrate runs it too)."""

from django.core.management.base import BaseCommand

from listings.services import schedules_ensure


class Command(BaseCommand):
    help = (
        "Create or update the django-q2 schedule that re-queues lost or failed "
        "scoring. `migrate` does this too."
    )

    def handle(self, *args, **options):
        schedule, created = schedules_ensure()
        verb = "Created" if created else "Updated"
        self.stdout.write(
            f"{verb} schedule {schedule.name!r}: every {schedule.minutes} minute(s)."
        )
