"""Root URL configuration."""

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "clipmatch moderation"
admin.site.site_title = "clipmatch"
admin.site.index_title = "Listings and their CLIP checks"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("review/", include("listings.urls")),
]

if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
