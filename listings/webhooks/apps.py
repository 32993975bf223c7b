"""Webhooks: marketplaces are told of verdicts and decisions, signed and retried."""

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "listings.webhooks"
    label = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.models.signals import post_migrate

        post_migrate.connect(
            _schedules_after_migrate, sender=self, dispatch_uid="webhooks_schedules"
        )


def _schedules_after_migrate(sender, verbosity=1, stdout=None, **kwargs):
    from listings.signals import report_schedule
    from listings.webhooks.services import webhook_schedules_ensure

    report_schedule(*webhook_schedules_ensure(), verbosity, stdout)
