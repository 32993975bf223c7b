"""django-q2 tasks for webhooks: ids only, one service each, safe to run twice."""

from __future__ import annotations

import logging
from dataclasses import asdict

logger = logging.getLogger(__name__)


def deliver_webhook(delivery_id: int) -> dict:
    from listings.webhooks.services import webhook_deliver

    return asdict(webhook_deliver(delivery_id=delivery_id))


def dispatch_due_webhooks() -> list[int]:
    from listings.webhooks.services import webhooks_dispatch_due

    queued = webhooks_dispatch_due()
    if queued:  # django-q2's own lines for this every-minute task are DEBUG
        logger.info("Webhook dispatcher: deliveries queued: %d.", len(queued))
    return queued
