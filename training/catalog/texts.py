"""Listing titles and descriptions, in seller-like wording, for a product."""

from __future__ import annotations

import random

from training.catalog.products import Product, pick

_CATEGORY_WORDS = {
    "sneaker": ["sneakers", "sneaker", "trainers", "running shoes", "sneakers"],
    "handbag": ["handbag", "purse", "tote bag", "shoulder bag", "handbag"],
    "mug": ["mug", "coffee mug", "tea mug", "mug", "ceramic mug"],
    "t-shirt": ["t-shirt", "tee", "t shirt", "tshirt", "t-shirt"],
    "lamp": ["lamp", "table lamp", "desk lamp", "lamp", "bedside lamp"],
    "chair": ["chair", "dining chair", "side chair", "chair", "kitchen chair"],
    "watch": ["watch", "wristwatch", "analog watch", "watch", "wrist watch"],
    "bottle": ["bottle", "water bottle", "drinks bottle", "bottle", "flask"],
}

_COLOUR_WORDS = {
    "red": ["red", "red", "red", "crimson", "scarlet"],
    "orange": ["orange", "orange", "orange", "tangerine", "burnt orange"],
    "yellow": ["yellow", "yellow", "yellow", "lemon yellow", "sunshine yellow"],
    "green": ["green", "green", "green", "emerald green", "forest green"],
    "blue": ["blue", "blue", "blue", "royal blue", "cobalt blue"],
    "purple": ["purple", "purple", "purple", "violet", "plum"],
    "pink": ["pink", "pink", "pink", "hot pink", "rose pink"],
    "black": ["black", "black", "black", "jet black", "matte black"],
}

_PATTERN_ADJ = {
    "plain": ["plain", "solid", "solid colour", "plain", "solid-colour"],
    "striped": ["striped", "striped", "stripy", "stripe", "striped"],
    "dotted": ["polka dot", "dotted", "spotted", "polka-dot", "dotty"],
    "checked": ["checked", "checkered", "check", "plaid", "gingham"],
}

_PATTERN_NOUN = {
    "plain": ["no pattern", "a plain finish", "a solid colour", "a plain design"],
    "striped": ["stripes", "a striped pattern", "a stripe print", "bold stripes"],
    "dotted": ["polka dots", "dots", "a dot print", "little spots"],
    "checked": ["checks", "a check pattern", "a checkerboard print", "a plaid print"],
}

_SIZES = {
    "sneaker": ["size 9", "UK 8", "EU 42", "size 10", "US 7", "size 11"],
    "handbag": ["medium", "large", "small", "one size", "30cm", "mini"],
    "mug": ["350ml", "12 oz", "large", "11oz", "400 ml", "small"],
    "t-shirt": ["size M", "size L", "XL", "size S", "medium", "XXL"],
    "lamp": ["40cm", "small", "tall", "E27", "large", "compact"],
    "chair": ["set of 1", "single", "solid build", "stackable", "large", "compact"],
    "watch": ["38mm", "42mm", "unisex", "40 mm", "mens", "womens"],
    "bottle": ["500ml", "750 ml", "1L", "24oz", "1 litre", "600ml"],
}

_BRANDS = [
    "Nordvik",
    "Lumo",
    "Kestrel",
    "Urbano",
    "Pallas",
    "Brightwell",
    "Oaken",
    "Maris",
    "Tovi",
    "Halden",
]

_CONDITIONS = ["new", "brand new", "like new", "used", "vintage", "NWT", "pre-owned"]

_CATEGORY_FILLER = {
    "sneaker": [
        "Comfortable for running and walking.",
        "Lace-up with a cushioned sole.",
    ],
    "handbag": ["Roomy inside with a zip pocket.", "Sturdy top handle."],
    "mug": ["Dishwasher and microwave safe.", "Perfect for your morning coffee."],
    "t-shirt": ["Soft cotton, regular fit.", "Crew neck, short sleeves."],
    "lamp": ["Bulb not included.", "Gives a warm light for reading."],
    "chair": ["Solid and stable, no wobble.", "Fits most dining tables."],
    "watch": ["Keeps good time, new battery fitted.", "Adjustable strap."],
    "bottle": ["Leak-proof screw cap.", "Keeps drinks cold for hours."],
}

_GENERIC_FILLER = [
    "Great condition.",
    "Barely used.",
    "Smoke-free and pet-free home.",
    "Perfect as a gift.",
    "Colours are true to the photo.",
    "Bought last year and only used a few times.",
    "No marks or damage.",
    "Original packaging included.",
]

_BOILERPLATE = [
    "Ships within 2 business days. Returns accepted within 30 days of delivery.",
    "Free shipping on orders over $50; message me with any questions before buying.",
    "Please check my other listings, I combine postage on multiple items.",
    "Fast dispatch from a UK seller. Buyer pays return postage unless the item is "
    "not as described.",
    "All items are carefully packed and sent with tracking. No international "
    "shipping, sorry.",
    "Collection in person is also possible. Offers welcome, no time wasters please.",
]

_OPENERS = [
    "Fast shipping!",
    "Clearing out my house, everything must go.",
    "Price is firm.",
    "Great deal!",
]


def _case(text: str, u: float) -> str:
    if u < 0.25:
        return text.title()
    if u < 0.35:
        return text.lower()
    if u < 0.4:
        return text.upper()
    return text[0].upper() + text[1:]


def product_title(product: Product, rng: random.Random) -> str:
    """A marketplace-style title for ``product`` in varied wording."""
    # Every draw happens unconditionally so that titles of products differing in
    # one attribute (with the same rng state) differ in that attribute's words only.
    cat = pick(rng, _CATEGORY_WORDS[product.category])
    col = pick(rng, _COLOUR_WORDS[product.colour])
    adj = pick(rng, _PATTERN_ADJ[product.pattern])
    noun = pick(rng, _PATTERN_NOUN[product.pattern])
    brand = pick(rng, _BRANDS)
    cond = pick(rng, _CONDITIONS)
    size = pick(rng, _SIZES[product.category])
    template = rng.random()
    u_brand, u_cond, u_size, u_case = (rng.random() for _ in range(4))
    brand_s = f"{brand} " if u_brand < 0.4 else ""
    cond_s = f"{cond} " if u_cond < 0.3 else ""
    size_s = f", {size}" if u_size < 0.35 else ""
    if template < 0.35:
        text = f"{cond_s}{brand_s}{col} {adj} {cat}{size_s}"
    elif template < 0.5:
        text = f"{brand_s}{adj} {col} {cat}{size_s}"
    elif template < 0.65:
        text = f"{cond_s}{col} {cat} with {noun}{size_s}"
    elif template < 0.8:
        text = f"{brand_s}{cat} - {col}, {adj}{size_s}"
    elif template < 0.9:
        text = f"{brand_s}{cat} in {col} ({adj}){size_s}"
    else:
        text = f"{adj} {cat}, {col}{size_s}{' - ' + cond if u_cond < 0.6 else ''}"
    return _case(text, u_case)


def product_description(product: Product, rng: random.Random) -> str:
    """A 1–4 sentence listing description for ``product``, maybe with boilerplate."""
    cat = pick(rng, _CATEGORY_WORDS[product.category])
    col = pick(rng, _COLOUR_WORDS[product.colour])
    adj = pick(rng, _PATTERN_ADJ[product.pattern])
    noun = pick(rng, _PATTERN_NOUN[product.pattern])
    brand = pick(rng, _BRANDS)
    cond = pick(rng, _CONDITIONS)
    size = pick(rng, _SIZES[product.category])
    cat_filler = pick(rng, _CATEGORY_FILLER[product.category])
    filler = pick(rng, _GENERIC_FILLER)
    boiler = pick(rng, _BOILERPLATE)
    opener = pick(rng, _OPENERS)
    template = rng.random()
    u_extra, u_boiler, u_opener, u_brand = (rng.random() for _ in range(4))
    by = f" by {brand}" if u_brand < 0.3 else ""
    core = [
        f"This {col} {cat}{by} has a {adj} design.",
        f"{adj.capitalize()} {cat} in {col}, {cond}.",
        f"Selling my {col} {cat} with {noun}.",
        f"{col.capitalize()} {cat}{by} featuring {noun}, {size}.",
        f"Lovely {adj} {col} {cat}, {cond} condition.",
        f"For sale: {cond} {cat}{by}. Colour: {col}. Pattern: {adj}.",
    ]
    sentences = [core[min(int(template * len(core)), len(core) - 1)]]
    if u_extra < 0.6:
        sentences.append(cat_filler)
    if u_extra < 0.3:
        sentences.append(filler)
    if u_boiler < 0.35:
        sentences.append(boiler)
    if u_opener < 0.1:
        sentences.insert(0, opener)
    return " ".join(sentences)
