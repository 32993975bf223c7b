"""factory_boy factories for listings."""

import factory
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.utils.text import slugify

from conftest import png_bytes
from listings.models import Category, Listing, ListingImage


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"seller{n}")


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category
        django_get_or_create = ["name"]

    name = "sneaker"
    slug = factory.LazyAttribute(lambda o: slugify(o.name))


class ListingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Listing

    seller = factory.SubFactory(UserFactory)
    title = "red striped sneaker"
    description = "A red sneaker with white stripes, barely worn."
    category = factory.SubFactory(CategoryFactory)
    price = "49.90"


class ListingImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ListingImage

    listing = factory.SubFactory(ListingFactory)
    image = factory.LazyAttribute(
        lambda o: ContentFile(png_bytes(seed=o.seed), name=f"photo{o.seed}.png")
    )
    position = 0

    class Params:
        seed = factory.Sequence(lambda n: n)


def moderator(username: str = "mod", *, senior: bool = False):
    """A staff user with the review permissions (the senior one for escalations)."""
    from django.contrib.auth.models import Permission

    user = UserFactory(username=username, is_staff=True)
    codenames = ["moderate_listing"] + (["decide_escalated"] if senior else [])
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="listings", codename__in=codenames
        )
    )
    return get_user_model().objects.get(pk=user.pk)  # no stale permission cache


def model_version(name: str = "clip-test"):
    from clipmatch.models import ModelVersion

    return ModelVersion.objects.get_or_create(
        name=name, source=f"/models/{name}", fingerprint=name.ljust(64, "0")
    )[0]


def queue_item(
    *,
    status: str = "review",
    title_similarity: float | None = None,
    price: str = "49.90",
    title: str = "red striped sneaker",
    category_ok: bool = True,
    images: int = 0,
    **listing_fields,
):
    """A listing with `images` photos routed into the review queue by the system,
    optionally with a score whose title similarity sits at a chosen place between
    thresholds hold 0.2 and pass 0.3."""
    from django.utils import timezone

    from listings.models import ListingScore
    from listings.services.scoring import listing_request_scoring
    from listings.services.transitions import listing_transition

    listing = ListingFactory(title=title, price=price, **listing_fields)
    for position in range(images):
        ListingImageFactory(listing=listing, position=position)
    listing_request_scoring(listing_id=listing.pk)
    listing.refresh_from_db()
    score = None
    if title_similarity is not None:
        thresholds = {
            "title": {"pass": 0.3, "hold": 0.2},
            "description": {"pass": 0.3, "hold": 0.2},
            "category_top_k": 1,
        }
        verdict = "hold" if title_similarity < 0.2 else "review"
        if title_similarity >= 0.3:
            verdict = "pass"
        score = ListingScore.objects.create(
            listing=listing,
            model_version=model_version(),
            content_hash=listing.content_hash,
            verdict=verdict,
            similarity=title_similarity,
            thresholds=thresholds,
            reasons=[f"Title similarity {title_similarity:.3f}."],
            images=[
                {
                    "index": 1,
                    "title": title_similarity,
                    "description": None,
                    "categories": [{"category": "sneaker", "similarity": 0.3}],
                    "listed_rank": 1,
                    "bands": {"title": verdict},
                    "category_ok": category_ok,
                }
            ],
            computed_at=timezone.now(),
        )
    listing_transition(
        listing=listing,
        to_status=status,
        reason_code=f"scored_{status}",
        score=score,
    )
    listing.refresh_from_db()
    return listing
