"""Every verified model family embeds as its authors' reference usage does.

Each family's tiny checkpoint (random weights, saved with save_pretrained by
conftest.build_tiny_family) is scored by the engine and by the usage documented in
transformers 5 for that family (its get_text_features / model docstrings): the
processor with the documented padding, then the model's own forward.
"""

import csv
import functools
import io
import json
import shutil

import numpy as np
import pytest
import torch
from django.core.management import CommandError, call_command
from PIL import Image
from transformers import AutoModel, AutoProcessor, BlipConfig, BlipForImageTextRetrieval

from clipmatch.inference.engine import ClipEngine
from clipmatch.inference.scoring import best_chunk_similarity
from clipmatch.inference.sources import ModelLoadError, resolve_model
from conftest import TINY_FAMILIES

CONTEXT = 16  # the tiny checkpoints' text context (SigLIP's real one is 64)
# The documented text arguments of each family's reference usage.
REFERENCE_TEXT_KWARGS = {
    "clip": {"padding": True},
    "siglip": {"padding": "max_length"},
    # "we pass padding=max_length and max_length=64 since the model was trained
    # with this": 64 is the real model's context, CONTEXT the tiny one's.
    "siglip2": {"padding": "max_length", "max_length": CONTEXT},
    "altclip": {"padding": True},
    "chinese_clip": {"padding": True},
    "blip": {"padding": True},
    "metaclip_2": {"padding": True},
    "groupvit": {"padding": True},
    "owlvit": {"padding": "max_length"},  # OwlViTProcessor's own default
}
IMAGE_SIZES = [(20, 20), (64, 40), (33, 97), (300, 120)]
SHORT_TEXTS = ["A red Mug", "红色 杯子", "a lamp"]
WORDS = (
    "green handbag with checked pattern leather black watch shipping worldwide "
    "returns accepted within thirty days blue dotted mug for coffee une chaise en "
    "bois a lamp and a bottle"
).split()


def picture(size, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    width, height = size
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@functools.cache
def reference(path):
    return AutoModel.from_pretrained(path).eval(), AutoProcessor.from_pretrained(path)


def reference_embeddings(path, family, text, image):
    """Unit text and image vectors as the family's documented usage computes them
    (a text longer than the context is cut to it, as the tokenizer truncates)."""
    model, processor = reference(path)
    kwargs = {
        "truncation": True,
        "max_length": CONTEXT,
        **REFERENCE_TEXT_KWARGS[family],
    }
    inputs = processor(text=[text], images=[image], return_tensors="pt", **kwargs)
    with torch.inference_mode():
        out = model(**inputs)
    text_vec = torch.nn.functional.normalize(out.text_embeds, dim=-1)[0]
    image_vec = torch.nn.functional.normalize(out.image_embeds, dim=-1)[0]
    return text_vec.numpy(), image_vec.numpy()


@functools.cache
def engine_for(path) -> ClipEngine:
    return ClipEngine(resolve_model(str(path)), precision="fp32")


def token_count(path, text) -> int:
    tokenizer = reference(path)[1].tokenizer
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def text_of_tokens(path, at_most: int) -> str:
    """The longest run of WORDS whose tokens fit in `at_most`."""
    text = ""
    for word in WORDS * 4:
        longer = f"{text} {word}".strip()
        if token_count(path, longer) > at_most:
            break
        text = longer
    return text


@pytest.fixture(params=TINY_FAMILIES)
def family(request, tiny_family_dirs):
    return request.param, tiny_family_dirs[request.param]


def test_cosines_equal_the_reference_usage_for_texts_within_the_context(family):
    name, path = family
    engine = engine_for(path)
    width = engine.context_length - len(engine.prefix) - len(engine.suffix)
    near = text_of_tokens(path, width)
    assert width - 3 <= token_count(path, near) <= width
    images = [picture(size, seed=n) for n, size in enumerate(IMAGE_SIZES)]

    ours_images = engine.embed_images(images)
    ours_texts = engine.embed_texts([*SHORT_TEXTS, near])

    for text, windows in zip([*SHORT_TEXTS, near], ours_texts, strict=True):
        assert windows.shape[0] == 1
        for image, image_vector in zip(images, ours_images, strict=True):
            want_text, want_image = reference_embeddings(path, name, text, image)
            assert float(windows[0] @ image_vector) == pytest.approx(
                float(want_text @ want_image), abs=1e-5
            ), (name, text, image.size)


def test_a_text_longer_than_the_context_keeps_every_window_the_first_as_cut(family):
    name, path = family
    engine = engine_for(path)
    width = engine.context_length - len(engine.prefix) - len(engine.suffix)
    long_text = " ".join(WORDS * 2)
    image = picture((64, 40))

    windows = engine.text_chunks(long_text)
    vectors = engine.embed_texts([long_text])[0]
    image_vector = engine.embed_images([image])[0]

    assert token_count(path, long_text) > 2 * width
    assert len(windows) >= 3 and all(len(w) <= width for w in windows)
    assert windows[-1][-1] == engine.text_chunks(long_text)[-1][-1]
    want_text, want_image = reference_embeddings(path, name, long_text, image)
    assert float(vectors[0] @ image_vector) == pytest.approx(
        float(want_text @ want_image), abs=1e-5
    )
    assert best_chunk_similarity(image_vector, vectors) >= float(
        vectors[0] @ image_vector
    )


def test_a_text_embeds_the_same_alone_and_in_a_batch_of_32(family):
    _, path = family
    engine = engine_for(path)
    text = SHORT_TEXTS[0]
    others = [" ".join(WORDS[: 1 + n % 9]) for n in range(31)]

    alone = engine.embed_texts([text])[0]
    in_batch = engine.embed_texts([*others[:12], text, *others[12:]], batch_size=32)
    by_two = engine.embed_texts([others[0], text], batch_size=2)

    np.testing.assert_allclose(in_batch[12], alone, atol=1e-6, rtol=0)
    np.testing.assert_allclose(by_two[1], alone, atol=1e-6, rtol=0)


@pytest.mark.django_db
def test_clip_test_and_clip_batch_test_score_the_family(family, tmp_path):
    name, path = family
    engine = engine_for(path)
    images = {}
    for n, size in enumerate(IMAGE_SIZES[:3]):
        images[f"img{n}.png"] = picture(size, seed=n)
        images[f"img{n}.png"].save(tmp_path / f"img{n}.png")
    rows = [
        ("img0.png", SHORT_TEXTS[0], 1),
        ("img1.png", SHORT_TEXTS[1], 0),
        ("img2.png", " ".join(WORDS * 2), 1),
        ("img0.png", SHORT_TEXTS[2], 0),
    ]
    with (tmp_path / "pairs.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([("image_path", "text", "label"), *rows])
    expected = [
        best_chunk_similarity(
            engine.embed_images([images[image]])[0], engine.embed_texts([text])[0]
        )
        for image, text, _ in rows
    ]
    single, report = io.StringIO(), io.StringIO()

    call_command(
        "clip_test",
        image=tmp_path / "img0.png",
        text=SHORT_TEXTS[0],
        model=str(path),
        json=True,
        stdout=single,
    )
    call_command(
        "clip_batch_test",
        csv=tmp_path / "pairs.csv",
        model=str(path),
        output=tmp_path / "scores.csv",
        json=True,
        verbosity=0,
        stdout=report,
    )

    assert json.loads(single.getvalue())["similarity"] == pytest.approx(
        expected[0], abs=1e-6
    )
    with (tmp_path / "scores.csv").open() as fh:
        scored = [float(r["similarity"]) for r in csv.DictReader(fh)]
    assert scored == pytest.approx(expected, abs=1e-6)
    assert json.loads(report.getvalue())["n"] == 4


def test_altclip_context_leaves_out_the_positions_roberta_reserves(tmp_path):
    from conftest import build_tiny_family

    path = build_tiny_family(tmp_path / "altclip", "altclip")
    config_path = path / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["model_max_length"] = int(1e30)  # as a tokenizer saved without a limit
    config_path.write_text(json.dumps(config))
    engine = ClipEngine(resolve_model(str(path)), precision="fp32")
    long_text = " ".join(WORDS * 3)

    vectors = engine.embed_texts([long_text])[0]

    # max_position_embeddings is CONTEXT + 2; positions start after the padding index.
    assert engine.context_length == CONTEXT
    assert vectors.shape[0] > 1
    want_text, _ = reference_embeddings(path, "altclip", long_text, picture((32, 32)))
    np.testing.assert_allclose(vectors[0], want_text, atol=1e-5, rtol=0)


def relabelled(checkpoint, folder, model_type: str, architecture: str):
    """A copy of a checkpoint whose config.json claims another model family."""
    shutil.copytree(checkpoint, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type=model_type, architectures=[architecture])
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_a_family_clipmatch_has_not_verified_is_refused_at_load_by_name(
    tiny_clip_dir, tmp_path
):
    other = relabelled(tiny_clip_dir, tmp_path / "flava", "flava", "FlavaModel")

    with pytest.raises(ModelLoadError) as caught:
        ClipEngine(resolve_model(str(other)), precision="fp32")

    assert str(caught.value) == (
        f"'{other}' is a flava checkpoint (FlavaModel), a model family clipmatch "
        "has not verified: its scores could be wrong without any error. Supported "
        "families: CLIP, SigLIP, SigLIP 2, AltCLIP, Chinese-CLIP, BLIP, MetaCLIP 2, "
        "GroupViT, OWL-ViT."
    )


@pytest.mark.django_db
def test_clip_test_refuses_an_unverified_family_with_that_sentence(
    tiny_clip_dir, tmp_path
):
    other = relabelled(tiny_clip_dir, tmp_path / "x-clip", "x_clip", "XCLIPModel")
    picture((32, 32)).save(tmp_path / "a.png")

    with pytest.raises(CommandError, match="is a x_clip checkpoint \\(XCLIPModel\\)"):
        call_command(
            "clip_test", image=tmp_path / "a.png", text="a mug", model=str(other)
        )


def test_a_checkpoint_whose_weights_do_not_fill_the_model_is_refused(
    tiny_family_dirs, tmp_path
):
    # A BLIP retrieval checkpoint names its towers differently: read as a BlipModel,
    # its text tower would be random.
    retrieval = tmp_path / "blip-itm"
    blip = tiny_family_dirs["blip"]
    BlipForImageTextRetrieval(BlipConfig.from_pretrained(blip)).save_pretrained(
        retrieval
    )
    AutoProcessor.from_pretrained(blip).save_pretrained(retrieval)

    with pytest.raises(ModelLoadError, match="weights of its BlipModel .*random"):
        ClipEngine(resolve_model(str(retrieval)), precision="fp32")


def figures(root) -> list[dict]:
    """Per family, the largest differences the tests above allow to 1e-5 / 1e-6."""
    from conftest import build_tiny_family

    rows = []
    for name in TINY_FAMILIES:
        path = build_tiny_family(root / name, name)
        engine = engine_for(path)
        width = engine.context_length - len(engine.prefix) - len(engine.suffix)
        texts = [*SHORT_TEXTS, text_of_tokens(path, width)]
        long_text = " ".join(WORDS * 2)
        images = [picture(size, seed=n) for n, size in enumerate(IMAGE_SIZES)]
        image_vectors = engine.embed_images(images)
        within, first_window = 0.0, 0.0
        for text, windows in zip(
            [*texts, long_text], engine.embed_texts([*texts, long_text]), strict=True
        ):
            for image, vector in zip(images, image_vectors, strict=True):
                want_text, want_image = reference_embeddings(path, name, text, image)
                gap = abs(float(windows[0] @ vector) - float(want_text @ want_image))
                if text == long_text:
                    first_window = max(first_window, gap)
                else:
                    within = max(within, gap)
        others = [" ".join(WORDS[: 1 + n % 9]) for n in range(31)]
        alone = engine.embed_texts([SHORT_TEXTS[0]])[0]
        in_batch = engine.embed_texts([SHORT_TEXTS[0], *others])[0]
        rows.append(
            {
                "family": engine.family.name,
                "context": engine.context_length,
                "special_tokens": [engine.prefix, engine.suffix],
                "cosine_gap_within_context": within,
                "cosine_gap_first_window": first_window,
                "batch_of_32_gap": float(np.abs(alone - in_batch).max()),
            }
        )
    return rows


if (
    __name__ == "__main__"
):  # the README's figures: python -m clipmatch.tests.test_families
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        for row in figures(Path(folder)):
            print(json.dumps(row))
