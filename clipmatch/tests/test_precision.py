"""Precision: what "auto" picks, loading in a dtype, the fast image path, versions."""

import numpy as np
import pytest
import torch
from PIL import Image

from clipmatch.inference import engine as engine_module
from clipmatch.inference.engine import ClipEngine, pick_precision
from clipmatch.inference.sources import ModelLoadError, resolve_model
from clipmatch.services import model_version_active
from conftest import TINY_FAMILIES

SIZES = [(300, 500), (777, 512), (64, 64), (20, 30)]


def pictures(seed=0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        for h, w in SIZES
    ]


@pytest.mark.parametrize(
    ("capabilities", "expected"),
    [
        ({"avx512_bf16": True}, "bf16"),
        ({"amx_bf16": True, "avx512_bf16": False}, "bf16"),
        ({"avx512_f": True, "avx512_bf16": False}, "fp32"),
    ],
)
def test_auto_on_the_cpu_is_bf16_only_with_bf16_instructions(
    monkeypatch, capabilities, expected
):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)

    assert pick_precision("auto", "cpu") == expected
    assert pick_precision("fp32", "cpu") == "fp32"


@pytest.mark.parametrize(("bf16", "expected"), [(True, "bf16"), (False, "fp16")])
def test_auto_on_cuda_is_bf16_where_the_gpu_has_it_else_fp16(
    monkeypatch, bf16, expected
):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16)

    assert pick_precision("auto", "cuda") == expected
    assert pick_precision("fp16", "cuda") == "fp16"


def test_fp16_on_the_cpu_is_refused_at_load_by_name(tiny_clip_dir):
    with pytest.raises(ModelLoadError) as raised:
        ClipEngine(resolve_model(str(tiny_clip_dir)), device="cpu", precision="fp16")

    assert str(raised.value) == (
        "Precision 'fp16' runs on CUDA only, and this engine runs on the cpu: use "
        "bf16, fp32 or auto there."
    )


@pytest.fixture(params=TINY_FAMILIES)
def family(request, tiny_family_dirs):
    return request.param, tiny_family_dirs[request.param]


def test_every_family_loads_in_bf16_and_embeds_close_to_fp32(family):
    name, path = family
    full = ClipEngine(resolve_model(str(path)), device="cpu", precision="fp32")
    half = ClipEngine(resolve_model(str(path)), device="cpu", precision="bf16")
    texts = ["a red mug", "two blue striped sneakers, size 42"]

    assert {p.dtype for p in half.model.parameters()} == {torch.bfloat16}
    images = (full.embed_images(pictures()) * half.embed_images(pictures())).sum(1)
    words = [
        float((a * b).sum())
        for a, b in zip(full.embed_texts(texts), half.embed_texts(texts), strict=True)
    ]
    assert half.embed_images(pictures()).dtype == np.float32
    assert images.min() > 0.99, name
    assert min(words) > 0.99, name


def test_the_fast_image_path_matches_each_familys_processor(family):
    name, path = family
    engine = ClipEngine(resolve_model(str(path)), device="cpu", precision="fp32")
    reference = engine.processor_image_inputs(pictures())
    fast = engine.image_inputs(pictures())

    if name == "siglip2":  # NaFlex patches: its own processor, by name in the log
        assert engine.pixel_plan is None
        assert fast.keys() == reference.keys()
        return
    assert list(fast) == ["pixel_values"]
    difference = (fast["pixel_values"] - reference["pixel_values"]).abs().max()
    assert float(difference) < 1e-5  # measured: at most 4.8e-7
    with torch.inference_mode():
        cosines = (
            engine.embed_image_inputs(fast) * engine.embed_image_inputs(reference)
        ).sum(1)
    assert cosines.min() > 0.99999


def test_a_processor_that_cannot_be_matched_is_used_and_named_in_the_log(
    tiny_family_dirs, caplog
):
    caplog.set_level("INFO", logger="clipmatch.inference.engine")

    ClipEngine(resolve_model(str(tiny_family_dirs["siglip2"])), precision="fp32")

    assert (
        "images go through its own processor, not the fast path: "
        "Siglip2ImageProcessorPil preprocesses in steps of its own." in caplog.text
    )


def test_pixels_reach_the_device_in_the_models_dtype_and_ids_stay_integers(
    tiny_clip_dir,
):
    # The GPU path's casts, run on the CPU: the same code moves and casts for CUDA.
    engine = ClipEngine(resolve_model(str(tiny_clip_dir)), precision="bf16")
    inputs = engine.image_inputs(pictures())

    assert engine._on_device(inputs["pixel_values"]).dtype == torch.bfloat16
    assert engine._on_device(torch.tensor([[1, 2]])).dtype == torch.int64
    assert engine.embed_image_inputs(inputs).dtype == np.float32


def test_the_input_side_bounds_the_decode(tiny_family_dirs):
    sides = {
        name: ClipEngine(
            resolve_model(str(tiny_family_dirs[name])), precision="fp32"
        ).input_side
        for name in ("clip", "siglip", "siglip2")
    }

    # siglip2: NaFlex's 256 patches of 16 make a shorter side of at most 16 * 16.
    assert sides == {"clip": 32, "siglip": 32, "siglip2": 256}


@pytest.mark.django_db
def test_each_precision_of_the_configured_model_is_a_version_of_its_own(
    settings, use_model, tiny_clip_dir
):
    use_model(tiny_clip_dir)
    versions = {}
    for precision in ("fp32", "bf16"):
        settings.CLIPMATCH = {**settings.CLIPMATCH, "PRECISION": precision}
        active = model_version_active()
        versions[precision] = active.version
        assert active.engine().precision == precision

    assert versions["fp32"].pk != versions["bf16"].pk
    assert versions["bf16"].precision == "bf16"
    assert versions["fp32"].fingerprint == versions["bf16"].fingerprint


def test_auto_and_the_precision_it_stands_for_are_one_engine(tiny_clip_dir):
    # A worker preloads at CLIPMATCH_PRECISION=auto; its tasks ask at the
    # precision the model version recorded. One load serves both.
    device = engine_module.pick_device("auto")
    chosen = pick_precision("auto", device)
    auto = engine_module.load_engine(str(tiny_clip_dir), precision="auto")
    named = engine_module.load_engine(
        str(tiny_clip_dir), device=device, precision=chosen
    )

    assert named is auto
    assert (auto.device, auto.precision) == (device, chosen)


def test_the_engine_cache_keeps_precisions_apart(tiny_clip_dir):
    first = engine_module.load_engine(str(tiny_clip_dir), precision="fp32")
    second = engine_module.load_engine(str(tiny_clip_dir), precision="bf16")

    assert (first.precision, second.precision) == ("fp32", "bf16")
