"""The listings' photos at MEDIA_URL, behind the API's logins: what images[].url
points at, in production as in development."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.views import APIView

from listings.media import image_for, image_response


class MediaView(APIView):
    """A stored photo for a moderator or the seller whose listing shows it; 404 to
    anyone else, as if it did not exist."""

    @extend_schema(exclude=True)
    def get(self, request, name: str):
        return image_response(image_for(request.user, name))
