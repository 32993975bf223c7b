"""The engine against real (tiny, random) CLIP checkpoints built by the tests."""

import functools
import io

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPModel, CLIPProcessor

from clipmatch.inference.engine import ClipEngine
from clipmatch.inference.scoring import best_chunk_similarity
from clipmatch.inference.sources import ModelLoadError, resolve_model
from clipmatch.runtime import get_engine
from conftest import png_bytes


def test_resolve_model_fingerprints_a_local_directory_without_loading_it(tiny_clip_dir):
    source = resolve_model(str(tiny_clip_dir))

    assert source.path == tiny_clip_dir.resolve()
    assert len(source.fingerprint) == 64
    assert source.version == f"tiny-clip-0@{source.fingerprint[:12]}"
    assert source.meta["thresholds"]["title"] == {"pass": 0.5, "hold": -0.5}


def test_resolve_model_refuses_a_missing_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_model(str(tmp_path / "nowhere"))


def test_resolve_model_refuses_a_directory_that_is_not_a_checkpoint(tmp_path):
    with pytest.raises(ModelLoadError, match="has no config.json"):
        resolve_model(str(tmp_path))


def test_unknown_hub_id_fails_loudly_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        ModelLoadError,
        match="neither a local directory nor in this machine.s Hugging Face cache",
    ):
        resolve_model("clipmatch-tests/no-such-model")


def test_stored_similarity_equals_the_cosine_of_the_models_own_features(tiny_clip_dir):
    engine = ClipEngine(resolve_model(str(tiny_clip_dir)), precision="fp32")
    image = Image.open(io.BytesIO(png_bytes(seed=3))).convert("RGB")
    text = "a red striped sneaker"

    ours = best_chunk_similarity(
        engine.embed_images([image])[0], engine.embed_texts([text])[0]
    )

    model = CLIPModel.from_pretrained(tiny_clip_dir).eval()
    processor = CLIPProcessor.from_pretrained(tiny_clip_dir)
    inputs = processor(text=[text], images=[image], return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = model(**inputs)
    reference = torch.nn.functional.cosine_similarity(out.image_embeds, out.text_embeds)
    assert ours == pytest.approx(float(reference[0]), abs=1e-5)


def test_long_text_is_split_into_overlapping_windows_not_cut(tiny_clip_dir):
    engine = ClipEngine(resolve_model(str(tiny_clip_dir)), precision="fp32")
    words = " ".join(f"word{n}" for n in range(60))

    windows = engine.text_chunks(words)
    vectors = engine.embed_texts([words, "short"])

    flat = [token for window in windows for token in window]
    all_ids = engine.tokenizer(words, add_special_tokens=False)["input_ids"]
    assert len(windows) > 1
    assert all(len(w) <= engine.context_length - 2 for w in windows)
    assert set(flat) == set(all_ids)  # nothing dropped
    assert windows[-1][-1] == all_ids[-1]
    assert vectors[0].shape == (len(windows), 16)
    assert vectors[1].shape == (1, 16)
    np.testing.assert_allclose(np.linalg.norm(vectors[0], axis=1), 1.0, rtol=1e-5)


def test_cuda_requested_without_a_gpu_is_an_error_not_a_fallback(tiny_clip_dir):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ModelLoadError, match="no CUDA device"):
        ClipEngine(resolve_model(str(tiny_clip_dir)), device="cuda")


def test_a_corrupt_checkpoint_is_a_model_load_error(tmp_path, tiny_clip_dir):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_clip_dir / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"not weights")

    with pytest.raises(ModelLoadError, match="Could not load model"):
        ClipEngine(resolve_model(str(broken)), precision="fp32")


def test_get_engine_loads_once_per_process(tiny_clip_dir):
    first = get_engine(str(tiny_clip_dir), "cpu")
    second = get_engine(str(tiny_clip_dir), "cpu")

    assert first is second


def test_a_hub_id_loads_from_the_hugging_face_cache_with_its_commit_as_version(
    tiny_clip_dir, tmp_path, monkeypatch
):
    import shutil

    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--clipmatch-tests--tiny-clip"
    shutil.copytree(tiny_clip_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(
        huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub")
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    source = resolve_model("clipmatch-tests/tiny-clip")
    engine = ClipEngine(source, precision="fp32")

    assert source.fingerprint == commit
    assert source.version == "clipmatch-tests/tiny-clip@0123456789ab"
    assert engine.embed_texts(["red"])[0].shape == (1, 16)


def test_a_model_may_ship_its_own_zero_shot_prompts(tiny_clip_dir, tmp_path, settings):
    import json
    import shutil

    from clipmatch.services import prompt_templates_for

    own = tmp_path / "own-prompts"
    shutil.copytree(tiny_clip_dir, own)
    meta = json.loads((own / "clipmatch.json").read_text())
    (own / "clipmatch.json").write_text(
        json.dumps({**meta, "category_prompt_templates": ["{category}"]})
    )

    assert prompt_templates_for(resolve_model(str(own))) == ["{category}"]
    assert (
        prompt_templates_for(resolve_model(str(tiny_clip_dir)))
        == (settings.CLIPMATCH["PROMPT_TEMPLATES"])
    )


def test_editing_clipmatch_json_keeps_the_model_version(tiny_clip_dir, tmp_path):
    import json
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_clip_dir, copy)
    before = resolve_model(str(copy)).fingerprint
    meta = json.loads((copy / "clipmatch.json").read_text())
    meta["thresholds"]["title"]["pass"] = 0.4
    (copy / "clipmatch.json").write_text(json.dumps(meta))

    after = resolve_model(str(copy))

    assert after.fingerprint == before
    assert after.meta["thresholds"]["title"]["pass"] == 0.4


def test_changed_weights_make_a_new_version(tiny_clip_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_clip_dir, copy)
    before = resolve_model(str(copy)).fingerprint
    with (copy / "model.safetensors").open("ab") as fh:
        fh.write(b"\0")

    assert resolve_model(str(copy)).fingerprint != before


def test_a_fine_tuning_report_beside_the_weights_is_not_part_of_the_version(
    tmp_path,
):
    from clipmatch.inference.sources import resolve_model
    from conftest import build_tiny_clip

    path = build_tiny_clip(tmp_path / "tuned", seed=4)
    before = resolve_model(str(path)).fingerprint

    (path / "finetune_report.json").write_text('{"wall_seconds": 71.0}')

    assert resolve_model(str(path)).fingerprint == before


@pytest.fixture
def fresh_hub_lookups(monkeypatch, tmp_path):
    """No hub id resolved yet in this process, and an empty Hugging Face cache."""
    import huggingface_hub.constants

    from clipmatch.inference import sources

    monkeypatch.setattr(sources, "_hub_cache", {})
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.fixture
def silent_hub(fresh_hub_lookups, monkeypatch):
    """A hub on loopback that accepts connections and never answers."""
    import socket
    import threading

    import huggingface_hub.constants

    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept():
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:  # closed at teardown
                return

    threading.Thread(target=accept, daemon=True).start()
    port = server.getsockname()[1]
    monkeypatch.setattr(
        huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{port}"
    )
    yield accepted
    server.close()
    for connection in accepted:
        connection.close()


@pytest.mark.django_db
def test_clip_info_gives_up_on_a_silent_hub_within_the_timeout(silent_hub, settings):
    import time

    from django.core.management import CommandError, call_command

    settings.CLIPMATCH = {**settings.CLIPMATCH, "HUB_TIMEOUT": 1.5}
    started = time.monotonic()

    with pytest.raises(CommandError) as caught:
        call_command("clip_info", model="clipmatch-tests/silent", no_load=True)

    assert time.monotonic() - started < 1.5 + 0.5
    assert silent_hub, "the hub was asked"
    assert str(caught.value) == (
        "Model 'clipmatch-tests/silent' is not in this machine's Hugging Face cache "
        "and the hub did not tell its files (no answer within 1.5 s). Download it "
        "beforehand (hf download clipmatch-tests/silent), or set HF_HUB_OFFLINE=1 to "
        "use the local cache only."
    )


def test_a_hub_that_did_not_answer_is_not_asked_again_in_the_process(silent_hub):
    import time

    resolve = functools.partial(resolve_model, "clipmatch-tests/silent")
    with pytest.raises(ModelLoadError):
        resolve(hub_timeout=0.5)
    asked = len(silent_hub)
    started = time.monotonic()

    with pytest.raises(ModelLoadError, match="no answer within 0.5 s"):
        resolve(hub_timeout=0.5)

    assert time.monotonic() - started < 0.1
    assert len(silent_hub) == asked


def test_without_a_timeout_a_hub_id_is_looked_up_in_the_local_cache_only(
    silent_hub,
):
    import time

    started = time.monotonic()

    with pytest.raises(ModelLoadError) as caught:
        resolve_model("clipmatch-tests/silent")

    assert time.monotonic() - started < 0.5
    assert silent_hub == []  # what web requests and workers do: never the network
    assert str(caught.value) == (
        "Model 'clipmatch-tests/silent' is neither a local directory nor in this "
        "machine's Hugging Face cache. Download it once where the hub is reachable "
        "(manage.py clip_info --model clipmatch-tests/silent, or hf download "
        "clipmatch-tests/silent); with HF_HUB_OFFLINE=1 only the cache is used."
    )


@pytest.mark.django_db
def test_scoring_setup_never_asks_the_hub(silent_hub, settings):
    from clipmatch.services import model_version_active

    settings.CLIPMATCH = {**settings.CLIPMATCH, "MODEL": "clipmatch-tests/silent"}

    with pytest.raises(ModelLoadError, match="neither a local directory nor in"):
        model_version_active()

    assert silent_hub == []
