"""Root URL configuration."""

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from listings import views as review_views
from listings.api.views import api_not_found

admin.site.site_header = "clipmatch moderation"
admin.site.site_title = "clipmatch"
admin.site.index_title = "Listings and their CLIP checks"
admin.site.site_url = "/"  # "View site": the root sends each user where they work

api_v1 = [
    path("", include("listings.api.urls")),
    re_path(r"^[\s\S]*$", api_not_found),  # any path, newlines included
]

urlpatterns = [
    path("", review_views.home, name="home"),
    path("favicon.ico", review_views.favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("review/", include("listings.urls")),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    # The description of the API is public; every operation in it needs a login.
    path(
        "api/schema/",
        SpectacularAPIView.as_view(permission_classes=[AllowAny]),
        name="api-schema",
    ),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(
            url_name="api-schema", permission_classes=[AllowAny]
        ),
        name="api-docs",
    ),
    path("api/auth/", include("rest_framework.urls")),
]

if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
