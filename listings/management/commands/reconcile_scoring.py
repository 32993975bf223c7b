"""Run the scoring reconciler once, now."""

from django.core.management.base import BaseCommand

from listings.services.reconcile import scoring_reconcile


class Command(BaseCommand):
    help = "Re-queue pending listings whose scoring was lost, died or is due a retry."

    def handle(self, *args, **options):
        report = scoring_reconcile()
        self.stdout.write(
            f"requeued {len(report.requeued)}, "
            f"abandoned attempts {len(report.abandoned)}, "
            f"quarantined {len(report.quarantined)}, waiting {len(report.waiting)}"
        )
