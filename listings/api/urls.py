"""URLs of the listings API, mounted under /api/v1/."""

from django.urls import path

from listings.api import model_versions, views

urlpatterns = [
    path("listings/", views.ListingListCreateView.as_view(), name="listing-list"),
    path(
        "listings/<int:pk>/", views.ListingDetailView.as_view(), name="listing-detail"
    ),
    path(
        "listings/<int:pk>/decisions/",
        views.ListingDecisionListView.as_view(),
        name="listing-decisions",
    ),
    path(
        "listings/<int:pk>/appeal/",
        views.ListingAppealView.as_view(),
        name="listing-appeal",
    ),
    path("review/next/", views.ReviewNextView.as_view(), name="review-next"),
    path(
        "review/<int:pk>/claim/", views.ReviewClaimView.as_view(), name="review-claim"
    ),
    path(
        "review/<int:pk>/decide/",
        views.ReviewDecideView.as_view(),
        name="review-decide",
    ),
    path("review/<int:pk>/undo/", views.ReviewUndoView.as_view(), name="review-undo"),
    path(
        "review/<int:pk>/release/",
        views.ReviewReleaseView.as_view(),
        name="review-release",
    ),
    path("check/", views.CheckView.as_view(), name="check"),
    path("categories/", views.CategoryListView.as_view(), name="category-list"),
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
    path(
        "model-versions/",
        model_versions.ModelVersionListView.as_view(),
        name="model-version-list",
    ),
    path(
        "model-versions/<int:pk>/",
        model_versions.ModelVersionDetailView.as_view(),
        name="model-version-detail",
    ),
    path(
        "model-versions/<int:pk>/activate/",
        model_versions.ModelVersionActivateView.as_view(),
        name="model-version-activate",
    ),
]
