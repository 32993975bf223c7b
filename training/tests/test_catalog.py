"""Tests for the synthetic catalog: determinism, swaps, texts and the CSV format."""

from __future__ import annotations

import csv
import random

import pytest
from PIL import Image

from training import catalog
from training.catalog import (
    ATTRIBUTES,
    CATEGORIES,
    COLOURS,
    PATTERNS,
    Product,
    generate_catalog,
    generate_item,
    product_description,
    product_title,
    render_product,
    swap_attribute,
    write_catalog_csv,
)


def test_vocabularies_are_distinct_and_sized():
    assert 6 <= len(CATEGORIES) <= 10 and len(set(CATEGORIES)) == len(CATEGORIES)
    assert 6 <= len(COLOURS) <= 10 and len(set(COLOURS.values())) == len(COLOURS)
    assert "plain" in PATTERNS and len(PATTERNS) >= 4


def test_generation_is_deterministic_for_a_seed():
    first = generate_catalog(4, seed=11, size=32)
    again = generate_catalog(4, seed=11, size=32)
    other = generate_catalog(4, seed=12, size=32)
    for a, b in zip(first, again, strict=True):
        assert (a.product, a.title, a.description) == (
            b.product,
            b.title,
            b.description,
        )
        assert a.image.tobytes() == b.image.tobytes()
    assert [a.image.tobytes() for a in first] != [o.image.tobytes() for o in other]


def test_item_does_not_depend_on_catalog_length():
    assert (
        generate_catalog(3, seed=5, size=32)[2].title
        == generate_item(2, seed=5, size=32).title
    )


@pytest.mark.parametrize("size", [32, 64, 192])
def test_render_is_rgb_of_requested_size(size):
    image = render_product(
        Product("mug", "red", "striped"), size=size, rng=random.Random(0)
    )
    assert image.mode == "RGB" and image.size == (size, size)


def test_render_shows_the_product_colour_not_the_background():
    # A plain product should put clearly saturated pixels of its own colour on a
    # low-saturation background.
    for colour in ("red", "blue", "green"):
        image = render_product(
            Product("t-shirt", colour, "plain"), size=64, rng=random.Random(3)
        )
        target = COLOURS[colour]
        data = image.tobytes()
        pixels = zip(data[0::3], data[1::3], data[2::3], strict=True)
        close = sum(
            1
            for px in pixels
            if sum(abs(a - b) for a, b in zip(px, target, strict=True)) < 90
        )
        assert close > 0.1 * 64 * 64, colour


@pytest.mark.parametrize("attribute", ATTRIBUTES)
def test_swap_attribute_changes_exactly_that_attribute(attribute):
    rng = random.Random(0)
    for product in catalog.all_products()[::7]:
        swapped = swap_attribute(product, attribute, rng)
        changed = [a for a in ATTRIBUTES if getattr(swapped, a) != getattr(product, a)]
        assert changed == [attribute]


def test_swap_attribute_rejects_unknown_attribute():
    with pytest.raises(ValueError):
        swap_attribute(Product("mug", "red", "plain"), "size", random.Random(0))


def test_texts_for_swapped_products_differ_only_in_wording_of_that_attribute():
    product = Product("lamp", "green", "dotted")
    for seed in range(20):
        swapped = swap_attribute(product, "colour", random.Random(seed))
        a = product_title(product, random.Random(seed))
        b = product_title(swapped, random.Random(seed))
        assert a != b
        assert len(a.split()) >= 2
        da = product_description(product, random.Random(seed))
        db = product_description(swapped, random.Random(seed))
        assert da != db


def test_descriptions_vary_in_length_and_mention_boilerplate_sometimes():
    rng = random.Random(1)
    texts = [product_description(catalog.random_product(rng), rng) for _ in range(200)]
    lengths = [len(t.split()) for t in texts]
    assert min(lengths) < 12 and max(lengths) > 32
    assert any("return" in t.lower() or "shipping" in t.lower() for t in texts)


def test_write_catalog_csv_has_relative_paths_and_correct_labels(tmp_path):
    n, seed = 24, 1_000_123
    csv_path = write_catalog_csv(
        tmp_path / "seed", n=n, seed=seed, size=32, mismatch_rate=0.5
    )
    with csv_path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["image_path", "text", "label"]
    rows = rows[1:]
    assert len(rows) == n
    labels = {row[2] for row in rows}
    assert labels == {"0", "1"}
    for i, (path, text, label) in enumerate(rows):
        assert not path.startswith("/") and (csv_path.parent / path).is_file()
        item = generate_item(i, seed=seed, size=32)
        with Image.open(csv_path.parent / path) as image:
            assert image.convert("RGB").tobytes() == item.image.tobytes()
        own_text = text in (item.title, item.description)
        assert own_text == (label == "1"), (i, text, item.title)


def test_write_catalog_csv_mismatch_rate_extremes(tmp_path):
    def labels(rate):
        path = write_catalog_csv(
            tmp_path / str(rate), n=8, seed=1_000_321, size=32, mismatch_rate=rate
        )
        with path.open(newline="", encoding="utf-8") as fh:
            return {row["label"] for row in csv.DictReader(fh)}

    assert labels(0.0) == {"1"}
    assert labels(1.0) == {"0"}
