"""Webhook endpoints, one delivery per (endpoint, decision), and every attempt."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class WebhookEndpoint(models.Model):
    """A URL that a marketplace registered, with the secret its payloads are signed
    with; it hears about the listings its owner may see through the API."""

    class Event(models.TextChoices):
        VERDICT = "listing.verdict", "The model routed a listing"
        DECISION = "listing.decision", "A person decided on a listing"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="webhooks"
    )
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=200)
    events = models.JSONField(
        default=list, help_text="Event names to send; all when empty."
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.url

    def wants(self, event: str) -> bool:
        return not self.events or event in self.events


class WebhookDelivery(models.Model):
    """One event for one endpoint: the payload as it was, and where its sending is.

    The queue only carries this row's id; the row decides whether to send.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (gave up)"
        CANCELLED = "cancelled", "Cancelled (its decision was undone)"

    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    decision = models.ForeignKey(
        "listings.ListingDecision", on_delete=models.PROTECT, related_name="+"
    )
    event = models.CharField(max_length=40, choices=WebhookEndpoint.Event.choices)
    payload = models.JSONField()
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    # A moderator's decision is due only once its undo window has closed.
    next_attempt_at = models.DateTimeField()
    # When it was last handed to the queue, or to its one-off retry schedule (then
    # the time that schedule fires): the dispatcher queues only what nobody has.
    queued_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "decision"], name="one_delivery_per_decision"
            )
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.event} → {self.endpoint_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One POST of a delivery and what came back."""

    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["number", "id"]

    def __str__(self) -> str:
        return f"Attempt {self.number}: {self.status_code or self.error[:40]}"
