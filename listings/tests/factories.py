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
