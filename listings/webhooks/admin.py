"""Admin for webhooks: endpoints, and each delivery with every attempt it took."""

from __future__ import annotations

from django.contrib import admin, messages

from listings.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from listings.webhooks.services import webhook_retry_now


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["url", "owner", "active", "created_at"]
    list_filter = ["active"]
    list_select_related = ["owner"]
    search_fields = ["url", "owner__username"]
    exclude = ["secret"]  # never shown back; set through the API
    readonly_fields = ["owner", "url", "events", "created_at"]

    def has_add_permission(self, request):
        return False


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = [
        "number",
        "started_at",
        "duration_ms",
        "status_code",
        "error",
        "response_excerpt",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "event_id",
        "event",
        "endpoint",
        "status",
        "attempts",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["status", "event"]
    list_select_related = ["endpoint"]
    readonly_fields = [
        "event_id",
        "endpoint",
        "decision",
        "event",
        "payload",
        "status",
        "attempts",
        "next_attempt_at",
        "claimed_at",
        "delivered_at",
        "last_error",
        "created_at",
    ]
    inlines = [WebhookAttemptInline]
    actions = ["retry_now"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Send again now", permissions=["change"])
    def retry_now(self, request, queryset):
        sent = sum(webhook_retry_now(delivery=d) for d in queryset)
        self.message_user(request, f"{sent} deliveries queued.", messages.SUCCESS)
