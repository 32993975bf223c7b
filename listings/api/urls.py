"""URLs of the listings API, mounted under /api/v1/."""

from django.urls import path

from listings.api import views

urlpatterns = [
    path("listings/", views.ListingListCreateView.as_view(), name="listing-list"),
    path(
        "listings/<int:pk>/", views.ListingDetailView.as_view(), name="listing-detail"
    ),
    path("check/", views.CheckView.as_view(), name="check"),
    path(
        "webhooks/", views.WebhookEndpointListCreateView.as_view(), name="webhook-list"
    ),
    path(
        "webhooks/<int:pk>/",
        views.WebhookEndpointDetailView.as_view(),
        name="webhook-detail",
    ),
    path(
        "webhooks/<int:pk>/deliveries/",
        views.WebhookDeliveryListView.as_view(),
        name="webhook-deliveries",
    ),
]
