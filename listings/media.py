"""Listing photos as HTTP responses, for those allowed to see them.

Typed by their bytes (never by the name), never rendered as anything but an image.
With CLIPMATCH_MEDIA_ACCEL_REDIRECT set, the app only decides who may see a photo
and a front proxy (nginx's X-Accel-Redirect) sends the file.
"""

from __future__ import annotations

from django.http import FileResponse, Http404, HttpResponse

from clipmatch import conf
from clipmatch.inference.images import FORMAT_CONTENT_TYPES, sniff_format
from listings.models import ListingImage
from listings.roles import is_moderator


def _headers(response: HttpResponse) -> HttpResponse:
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    return response


def image_response(picture: ListingImage) -> HttpResponse:
    try:
        handle = picture.image.open("rb")
    except OSError as exc:
        raise Http404("The image file is missing.") from exc
    kind = sniff_format(handle)
    content_type = FORMAT_CONTENT_TYPES.get(kind, "application/octet-stream")
    prefix = conf.get("MEDIA_ACCEL_REDIRECT")
    if prefix:
        handle.close()
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = f"{prefix.rstrip('/')}/{picture.image.name}"
        return _headers(response)
    handle.seek(0)
    return _headers(FileResponse(handle, content_type=content_type))


def may_see_images(user) -> bool:
    """Moderators see every photo: the API's group or the review pages' permission."""
    return is_moderator(user) or (
        user.is_staff and user.has_perm("listings.moderate_listing")
    )


def image_for(user, name: str) -> ListingImage:
    """The stored photo `name` if this user may see it (a moderator, or the seller
    of a listing that shows it), else Http404 as if it did not exist."""
    pictures = ListingImage.objects.filter(
        image=name, listing__deleted_at__isnull=True
    ).select_related("listing")
    if not may_see_images(user):
        pictures = pictures.filter(listing__seller=user)
    picture = pictures.first()
    if picture is None:
        raise Http404("No such image.")
    return picture
