"""django-q2 tasks for webhooks: ids only, one service each, safe to run twice."""

from __future__ import annotations

from dataclasses import asdict


def deliver_webhook(delivery_id: int) -> dict:
    from listings.webhooks.services import webhook_deliver

    return asdict(webhook_deliver(delivery_id=delivery_id))


def dispatch_due_webhooks() -> list[int]:
    from listings.webhooks.services import webhooks_dispatch_due

    return webhooks_dispatch_due()
