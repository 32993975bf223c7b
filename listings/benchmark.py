"""`manage.py clip_benchmark`: the bare model, the seed's per-pair loop and the whole
pipeline through a real qcluster, interleaved on the same synthetic listings.

The command runs in two processes: the one a person starts makes a database, a
media folder and a queue name of the benchmark's own (`bench_environment`), and a
second `clip_benchmark` in that environment runs the arms (`benchmark_run`) and the
worker cluster; whatever either made is removed at the end. So the user's data and
queue are never touched, while the database engine, the broker and every setting
are the configured ones.
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np

BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "clipmatch/bundled/clipmatch-mini"
ARMS = ("bare_fp32", "bare_precision", "seed_loop", "end_to_end")
PRECISIONS = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
SELLER = "clip-benchmark"
# Photo kinds by share of all photos: what phones and scanners upload.
PHOTO_KINDS = (
    (("JPEG", (1600, 1200)), 0.5),
    (("JPEG", (3000, 2000)), 0.25),
    (("PNG", (800, 800)), 0.25),
)
# Photos per listing (mean 2.56) and windows of a description (mean 2.19; with the
# title's one window, 3.19 text windows per listing), by share of listings. A run
# has them in these shares (`_quota`), not drawn at random, so its averages hold.
PHOTO_COUNTS = ((1, 0.16), (2, 0.32), (3, 0.32), (4, 0.20))
DESCRIPTION_WINDOWS = ((1, 0.35), (2, 0.25), (3, 0.26), (4, 0.14))
# Where the scoring path spends a task's time, by the functions a profile of
# `listing_score` finds (part of the file's path, function name); the rest is the
# database, storage reads, hashing and routing. A function the engine no longer has
# counts in "database_and_other".
PROFILE_BUCKETS = {
    "decode": (("inference/images.py", "decode_image"),),
    "preprocess": (
        ("inference/engine.py", "image_inputs"),
        ("inference/engine.py", "text_chunks"),
        ("inference/engine.py", "text_inputs_for"),
    ),
    "forward": (  # any family's modeling_*.py
        ("transformers/models/", "get_image_features"),
        ("transformers/models/", "get_text_features"),
    ),
}


@dataclass(frozen=True)
class Photo:
    name: str
    data: bytes
    kind: str  # "JPEG 1600x1200"


@dataclass
class BenchListing:
    """One synthetic listing, the same content in every arm and every round."""

    title: str
    description: str
    category: str
    photos: list[Photo]
    windows_drawn: int  # the description's windows, at least
    paths: list[Path] = field(default_factory=list)  # the photos on disk (seed loop)


def _quota(rng: random.Random, table, n: int) -> list:
    """`n` values in the table's shares as nearly as `n` allows (largest
    remainders), in a seeded random order: a small run has the averages too."""
    exact = [(value, share * n) for value, share in table]
    counts = {value: int(x) for value, x in exact}
    by_remainder = sorted(exact, key=lambda item: item[1] - int(item[1]), reverse=True)
    for value, _ in by_remainder[: n - sum(counts.values())]:
        counts[value] += 1
    values = [value for value, count in counts.items() for _ in range(count)]
    rng.shuffle(values)
    return values


def photo_render(seed: int, size: tuple[int, int], fmt: str) -> bytes:
    """A photo-like image: a lit gradient, soft texture, objects and sensor noise,
    so that it compresses (and decodes) like a photo, not like a flat colour."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    width, height = size
    # Drawn at half size and enlarged: soft edges, as a lens gives them.
    w2, h2 = width // 2, height // 2
    gx = np.linspace(0, 1, w2, dtype=np.float32)[None, :]
    gy = np.linspace(0, 1, h2, dtype=np.float32)[:, None]
    a, b = rng.uniform(-1, 1, 2).astype(np.float32)
    light = (a * gx + b * gy - min(0, a) - min(0, b)) / (abs(a) + abs(b) + 1e-6)
    dark, bright = rng.uniform(20, 120, 3), rng.uniform(130, 250, 3)
    pixels = dark + (bright - dark) * light[..., None]
    texture = rng.normal(0, 18, (max(2, h2 // 20), max(2, w2 // 20), 3))
    soft = Image.fromarray(np.clip(texture + 128, 0, 255).astype(np.uint8))
    pixels += np.asarray(soft.resize((w2, h2), Image.BICUBIC), dtype=np.float32) - 128
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(6, 14))):
        x0, y0 = rng.uniform(0, w2), rng.uniform(0, h2)
        w, h = rng.uniform(0.05, 0.45) * w2, rng.uniform(0.05, 0.45) * h2
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        box = (x0, y0, x0 + w, y0 + h)
        if rng.random() < 0.5:
            draw.ellipse(box, fill=colour)
        else:
            draw.rectangle(box, fill=colour)
    image = image.resize(size, Image.BICUBIC)
    noise = rng.standard_normal((height, width, 3), dtype=np.float32) * 5
    noisy = np.asarray(image, dtype=np.float32) + noise
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, format="JPEG", quality=90)
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def workload_build(
    *, count: int, seed: int, windows: Callable[[str], int]
) -> list[BenchListing]:
    """`count` listings, the same for a seed; a description grows by sentences of
    the catalog's wording until it takes its drawn number of `windows`."""
    from training import catalog

    rng = random.Random(seed)
    photo_counts = _quota(rng, PHOTO_COUNTS, count)
    kinds = iter(_quota(rng, PHOTO_KINDS, sum(photo_counts)))
    targets = _quota(rng, DESCRIPTION_WINDOWS, count)
    listings = []
    for index, target in enumerate(targets):
        product = catalog.random_product(rng)
        description = catalog.product_description(product, rng)
        more: list[str] = []
        while windows(description) < target:
            if not more:  # another description of the same product, by sentence
                more = catalog.product_description(product, rng).split(". ")
            description += " " + more.pop(0).rstrip(".") + "."
        photos = []
        for number in range(photo_counts[index]):
            fmt, size = next(kinds)
            data = photo_render(rng.getrandbits(32), size, fmt)
            extension = "jpg" if fmt == "JPEG" else "png"
            photos.append(
                Photo(
                    f"listing-{index}-{number}.{extension}",
                    data,
                    f"{fmt} {size[0]}x{size[1]}",
                )
            )
        listings.append(
            BenchListing(
                title=catalog.product_title(product, rng),
                description=description,
                category=product.category,
                photos=photos,
                windows_drawn=target,
            )
        )
    return listings


def workload_summary(listings: list[BenchListing], windows) -> dict:
    kinds: dict[str, list[int]] = {}
    for listing in listings:
        for photo in listing.photos:
            kinds.setdefault(photo.kind, []).append(len(photo.data))
    n = len(listings)
    return {
        "listings": n,
        "photos_per_listing": round(sum(len(x.photos) for x in listings) / n, 2),
        "text_windows_per_listing": round(
            sum(windows(x.title) + windows(x.description) for x in listings) / n, 2
        ),
        "photos": {
            kind: {"count": len(sizes), "mean_bytes": int(statistics.mean(sizes))}
            for kind, sizes in sorted(kinds.items())
        },
    }


def random_vit_b32_build(path: Path, *, seed: int = 0) -> Path:
    """A randomly initialised CLIP of ViT-B/32's shape (CLIPConfig's defaults),
    saved like a real checkpoint: the bundled model's tokenizer at a 77-token
    context, CLIP's default 224-pixel image processor, the bundled thresholds."""
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
    )

    torch.manual_seed(seed)
    tokenizer = CLIPTokenizer.from_pretrained(BUNDLED_MODEL)
    tokenizer.model_max_length = 77
    config = CLIPConfig()
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(config.text_config, name, getattr(tokenizer, name))
    model = CLIPModel(config).eval()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer)
    processor.save_pretrained(path)
    bundled = json.loads((BUNDLED_MODEL / "clipmatch.json").read_text())
    meta = {
        "name": "random-vit-b32",
        "thresholds": bundled["thresholds"],
        "category_top_k": bundled["category_top_k"],
    }
    (path / "clipmatch.json").write_text(json.dumps(meta))
    return path


def precision_of(model) -> str:
    """The precision a loaded model's weights are in: fp32, bf16 or fp16."""
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    return {v: k for k, v in PRECISIONS.items()}.get(dtype, dtype)


def _dtype(precision: str):
    import torch

    return getattr(torch, PRECISIONS[precision])


def bare_model_load(path: Path, precision: str):
    from transformers import AutoModel

    return AutoModel.from_pretrained(path).to(_dtype(precision)).eval()


@dataclass
class BareInputs:
    """What the bare arms forward: already decoded, processed and tokenized."""

    images: list  # pixel_values batches
    texts: list  # text input batches


def bare_inputs_prepare(engine, listings: list[BenchListing], batch_size: int):
    """Decode (as the app does), process and tokenize once, outside the timing;
    windows are batched by length, so that a batch pads little."""
    import torch

    from clipmatch.images import decode_image

    pictures = [decode_image(photo.data).image for x in listings for photo in x.photos]
    pixels = torch.cat(
        [
            engine.image_inputs(pictures[start : start + batch_size])["pixel_values"]
            for start in range(0, len(pictures), batch_size)
        ]
    )
    windows = [
        window
        for x in listings
        for text in (x.title, x.description)
        for window in engine.text_chunks(text)
    ]
    windows.sort(key=len)
    texts = [
        engine.text_inputs_for(windows[start : start + batch_size])
        for start in range(0, len(windows), batch_size)
    ]
    return BareInputs(list(pixels.split(batch_size)), texts)


def bare_run(model, inputs: BareInputs, precision: str) -> float:
    """Seconds for one forward per batch of images and of text windows."""
    import torch

    from clipmatch.inference.engine import _feature_tensor

    dtype = _dtype(precision)
    started = time.perf_counter()
    with torch.inference_mode():
        for pixels in inputs.images:
            _feature_tensor(
                model.get_image_features(pixel_values=pixels.to(dtype)), "image"
            )
        for batch in inputs.texts:
            _feature_tensor(model.get_text_features(**batch), "text")
    return time.perf_counter() - started


def seed_loop_run(model, processor, listings: list[BenchListing]) -> float:
    """Seconds for the seed's loop: open each photo file, then for each (photo,
    text) pair run the Hugging Face processor and forward one image and one text."""
    import torch
    from PIL import Image

    from clipmatch.inference.engine import _feature_tensor

    started = time.perf_counter()
    with torch.inference_mode():
        for listing in listings:
            for path in listing.paths:
                with Image.open(path) as opened:
                    image = opened.convert("RGB")
                for text in (listing.title, listing.description):
                    inputs = processor(
                        text=[text],
                        images=[image],
                        return_tensors="pt",
                        padding=True,
                        truncation=True,
                    )
                    a = _feature_tensor(
                        model.get_image_features(pixel_values=inputs["pixel_values"]),
                        "image",
                    )
                    b = _feature_tensor(
                        model.get_text_features(
                            input_ids=inputs["input_ids"],
                            attention_mask=inputs["attention_mask"],
                        ),
                        "text",
                    )
                    torch.nn.functional.cosine_similarity(a, b)
    return time.perf_counter() - started


# ---- the pipeline: listings saved through the service, scored by a real cluster


def _seller():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get_or_create(username=SELLER)[0]


def listings_save(listings: list[BenchListing], categories: dict) -> list[int]:
    """Create the listings as a seller does (`listing_create`); scoring is queued
    as each one commits."""
    from listings.services.lifecycle import listing_create

    seller = _seller()
    return [
        listing_create(
            seller=seller,
            title=x.title,
            description=x.description,
            category=categories[x.category],
            price=Decimal("19.99"),
            images=[(photo.name, photo.data) for photo in x.photos],
        ).pk
        for x in listings
    ]


def embeddings_forget(listings: list[BenchListing]) -> int:
    """Drop the cached vectors of these photos and texts (not the categories'),
    so that every round embeds its listings as new content."""
    from clipmatch.inference.images import sha256_hex
    from clipmatch.models import Embedding
    from clipmatch.services import text_hash

    hashes = [sha256_hex(p.data) for x in listings for p in x.photos]
    hashes += [text_hash(t) for x in listings for t in (x.title, x.description)]
    deleted, _ = Embedding.objects.filter(content_hash__in=hashes).delete()
    return deleted


def routed_wait(ids: list[int], timeout: float) -> dict:
    """Wait until none of `ids` is pending; when the last was routed (the time of
    its routing decision) and how many failed to score."""
    from django.db import close_old_connections
    from django.db.models import Max

    from listings.models import Listing, ListingDecision

    deadline = time.monotonic() + timeout
    pending = Listing.objects.filter(pk__in=ids, status=Listing.Status.PENDING)
    while time.monotonic() < deadline:
        close_old_connections()
        if not pending.exists():
            break
        time.sleep(0.1)
    else:
        raise TimeoutError(
            f"{pending.count()} of {len(ids)} listings still pending after "
            f"{timeout:g} s; see the worker log."
        )
    last = ListingDecision.objects.filter(
        listing_id__in=ids, from_status=Listing.Status.PENDING
    ).aggregate(last=Max("created_at"))["last"]
    failed = Listing.objects.filter(pk__in=ids).exclude(scoring_error="").count()
    return {"routed_at": last.timestamp(), "failed": failed}


def e2e_round(listings, categories, timeout: float) -> dict:
    """Seconds from the first save to the last listing routed by the cluster."""
    embeddings_forget(listings)
    started = time.time()
    ids = listings_save(listings, categories)
    done = routed_wait(ids, timeout)
    return {"seconds": done["routed_at"] - started, "failed": done["failed"]}


def process_group_memory(pgid: int) -> dict[int, int]:
    """Peak resident memory (VmHWM, kB) of each live process in a process group."""
    peaks = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[int(entry.name)] = int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or a kernel thread
    return peaks


def scoring_profile(
    listings, categories, threads: int, dump: Path | None = None
) -> dict:
    """A profile of the scoring service run in this process on the same listings,
    with the cluster stopped and a worker's thread count: seconds per listing in
    decoding, preprocessing, the forwards and everything else. With `dump`, the
    cProfile statistics are also written there (read them with `pstats`)."""
    import torch

    from listings.services.scoring import listing_score

    embeddings_forget(listings)
    ids = listings_save(listings, categories)  # queued to a queue nobody serves now
    torch.set_num_threads(threads)
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    for listing_id in ids:
        listing_score(listing_id=listing_id)
    profile.disable()
    total = time.perf_counter() - started
    if dump is not None:
        profile.dump_stats(dump)
    stats = pstats.Stats(profile).stats
    seconds = dict.fromkeys(PROFILE_BUCKETS, 0.0)
    for (filename, _, name), (_, _, _, cumulative, _) in stats.items():
        for bucket, functions in PROFILE_BUCKETS.items():
            if any(f in filename and name == n for f, n in functions):
                seconds[bucket] += cumulative
    seconds["database_and_other"] = max(0.0, total - sum(seconds.values()))
    return {"listings": len(ids), "seconds": total, "buckets": seconds}


def _median_rate(n: int, seconds: list[float]) -> float:
    return n / statistics.median(seconds)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def e2e_split(profile: dict, e2e_rate: float, workers: int) -> dict:
    """How a listing's share of worker time splits: the profile's buckets per
    listing, and what the cluster spent beyond them (queue, polling, idle, load)."""
    n = profile["listings"]
    per_listing = {k: v / n * 1000 for k, v in profile["buckets"].items()}
    worker_ms = workers / e2e_rate * 1000
    per_listing["queue_and_idle"] = max(0.0, worker_ms - sum(per_listing.values()))
    total = sum(per_listing.values())
    return {
        "method": (
            "cProfile of listings.services.scoring.listing_score run in-process on "
            f"the same {n} listings (cluster stopped, worker's torch threads); "
            "queue_and_idle is workers / end-to-end listings/s minus the service "
            "time per listing"
        ),
        "worker_ms_per_listing": round(worker_ms, 1),
        "ms_per_listing": {k: round(v, 1) for k, v in per_listing.items()},
        "shares": {k: round(v / total, 3) for k, v in per_listing.items()},
    }


def benchmark_run(
    *,
    count: int,
    rounds: int,
    seed: int,
    precision: str | None,
    threads: int,
    batch_size: int,
    timeout: float,
    work_dir: Path,
    progress: Callable[[str], None],
    profile_dump: Path | None = None,
) -> dict:
    """Run every arm once per round, in turn, on the same listings; figures out."""
    import torch
    from django.conf import settings
    from django.db import connection
    from transformers import AutoProcessor
    from transformers.utils import logging as hf_logging

    from clipmatch import conf
    from clipmatch.services import category_vectors, prompt_templates_for
    from listings.demo import categories_ensure
    from listings.workers import (
        qcluster_start,
        qcluster_stop,
        worker_check_answered,
        worker_check_queue,
    )

    hf_logging.disable_progress_bar()
    load_before = os.getloadavg()
    active = _active_model()
    engine = active.engine()
    e2e_precision = precision_of(engine.model)
    # Once the engine has a precision setting, the engine's own dtype is it; until
    # then --precision applies to the bare arm only (and is noted below).
    arm_precision = precision or e2e_precision
    path = Path(engine.source.path)

    def windows(text: str) -> int:
        return len(engine.text_chunks(text))

    progress(f"Rendering {count} listings' photos (seed {seed})...")
    listings = workload_build(count=count, seed=seed, windows=windows)
    photo_dir = work_dir / "photos"
    photo_dir.mkdir(exist_ok=True)
    for listing in listings:
        for photo in listing.photos:
            listing.paths.append(photo_dir / photo.name)
            listing.paths[-1].write_bytes(photo.data)
    workload = workload_summary(listings, windows)
    categories = categories_ensure(sorted({x.category for x in listings}))
    names = list(categories)
    # A running marketplace has its categories' vectors cached already.
    category_vectors(
        version=active.version,
        names=names,
        templates=prompt_templates_for(active.source),
        engine=active.engine,
    )
    bare = {
        "bare_fp32": ("fp32", bare_model_load(path, "fp32")),
        "bare_precision": (arm_precision, bare_model_load(path, arm_precision)),
    }
    processor = AutoProcessor.from_pretrained(path)
    inputs = bare_inputs_prepare(engine, listings, batch_size)

    log_path = work_dir / "qcluster.log"
    seconds: dict[str, list[float]] = {arm: [] for arm in ARMS}
    failed = 0
    peaks: dict[int, int] = {}
    with log_path.open("w") as log:
        cluster = qcluster_start(env=os.environ.copy(), log=log)
        try:
            _cluster_ready(cluster, log_path, worker_check_queue, worker_check_answered)
            for number in range(1, rounds + 1):
                for arm in ARMS:
                    torch.set_num_threads(threads)
                    if arm in bare:
                        took = bare_run(bare[arm][1], inputs, bare[arm][0])
                    elif arm == "seed_loop":
                        took = seed_loop_run(bare["bare_fp32"][1], processor, listings)
                    else:
                        result = e2e_round(listings, categories, timeout)
                        took, failed = result["seconds"], failed + result["failed"]
                        for pid, kb in process_group_memory(cluster.pid).items():
                            peaks[pid] = max(kb, peaks.get(pid, 0))
                    seconds[arm].append(took)
                    progress(
                        f"round {number}/{rounds}: {arm:<14} {count / took:6.2f} "
                        f"listings/s ({took:.1f} s)"
                    )
        finally:
            qcluster_stop(cluster, grace=30)
    progress("Profiling the scoring service in this process...")
    profile = scoring_profile(
        listings, categories, conf.get("TORCH_THREADS"), dump=profile_dump
    )
    # Rounded as reported: every ratio is the quotient of two printed figures.
    rates = {arm: round(_median_rate(count, seconds[arm]), 3) for arm in ARMS}
    precisions = {
        "bare_fp32": "fp32",
        "bare_precision": arm_precision,
        "seed_loop": "fp32",
        "end_to_end": e2e_precision,
    }
    same = next(
        (a for a in ("bare_precision", "bare_fp32") if precisions[a] == e2e_precision),
        None,
    )
    workers = settings.Q_CLUSTER.get("workers")
    arms = {
        arm: {
            "precision": precisions[arm],
            "seconds": seconds[arm],
            "listings_per_s": [round(count / s, 3) for s in seconds[arm]],
            "median_listings_per_s": rates[arm],
            "vs_bare_fp32": _ratio(rates[arm], rates["bare_fp32"]),
        }
        for arm in ARMS
    }
    arms["bare_fp32"]["batch_size"] = arms["bare_precision"]["batch_size"] = batch_size
    arms["end_to_end"]["failed"] = failed
    worker_peaks = sorted(peaks.values(), reverse=True)
    arms["end_to_end"]["peak_memory_mb"] = {
        "max": round(worker_peaks[0] / 1024) if worker_peaks else None,
        "processes": [round(kb / 1024) for kb in worker_peaks],
    }
    notes = []
    if same != "bare_precision":
        notes.append(
            f"end to end ran at {e2e_precision} (the engine's precision), the bare "
            f"arm at {arm_precision}: e2e_vs_bare_same_precision uses "
            f"{same or 'no arm'}."
        )
    if failed:
        notes.append(f"{failed} listings failed to score end to end; see the log.")
    return {
        "model": {
            "path": str(path),
            "name": engine.source.name,
            "parameters": sum(p.numel() for p in engine.model.parameters()),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
        },
        "settings": {
            "database": connection.vendor,
            "broker": "redis" if settings.Q_CLUSTER.get("redis") else "orm",
            "debug": settings.DEBUG,
            "workers": workers,
            "worker_torch_threads": conf.get("TORCH_THREADS"),
            "worker_batch_size": conf.get("BATCH_SIZE"),
            "bare_and_seed_threads": threads,
        },
        "workload": workload,
        "rounds": rounds,
        "arms": arms,
        "ratios": {
            "e2e_vs_bare_same_precision": _ratio(
                rates["end_to_end"], rates[same] if same else None
            ),
            "e2e_vs_seed_loop": _ratio(rates["end_to_end"], rates["seed_loop"]),
            "e2e_vs_bare_fp32": _ratio(rates["end_to_end"], rates["bare_fp32"]),
        },
        "e2e_split": e2e_split(profile, rates["end_to_end"], workers),
        "notes": notes,
    }


def _active_model():
    from clipmatch.services import model_version_active

    return model_version_active()


def _cluster_ready(cluster, log_path, queue, answered, timeout: float = 120) -> None:
    check = queue()
    deadline = time.monotonic() + timeout
    while not answered(check):
        if cluster.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                "The worker cluster did not run a task; its log:\n"
                + log_path.read_text()[-3000:]
            )
        time.sleep(0.2)


# ---- the benchmark's own environment: database, media, queue


@dataclass
class BenchEnvironment:
    """What the benchmark made for itself, to hand its child and remove after."""

    work_dir: Path
    env: dict[str, str]
    drop: Callable[[], None]


def bench_environment(*, model: str, precision: str | None) -> BenchEnvironment:
    """A fresh database of the configured kind (SQLite: a file in a temporary
    folder; PostgreSQL: a new database on the configured server), a media folder
    and a queue name of its own on the configured broker."""
    import tempfile

    from django.conf import settings
    from django.db import connection

    work_dir = Path(tempfile.mkdtemp(prefix="clip-benchmark-"))
    tag = uuid.uuid4().hex[:8]
    env = os.environ.copy()
    vendor = connection.vendor
    if vendor == "sqlite":
        url = f"sqlite:///{work_dir / 'benchmark.sqlite3'}"
        drop_db = None
    elif vendor == "postgresql":
        url, drop_db = _postgres_database(connection, f"clip_benchmark_{tag}")
    else:
        raise NotImplementedError(
            f"The benchmark runs on SQLite or PostgreSQL, not {vendor}."
        )
    media = str(work_dir / "media")
    queue = f"clip-benchmark-{tag}"
    env.update(
        {
            "DATABASE_URL": url,
            "CLIPMATCH_MEDIA_ROOT": media,
            "CLIPMATCH_TEST_MEDIA_ROOT": media,  # config.settings.test reads this one
            "Q_CLUSTER_NAME": queue,
            "CLIPMATCH_MODEL": model,
            "PYTHONUNBUFFERED": "1",
            # As in production: with DEBUG on (config.settings.local's default),
            # Django formats and keeps every query, which the workers would pay
            # for in time (about a fifth of a listing's scoring) and memory.
            "DJANGO_DEBUG": "false",
        }
    )
    if precision:
        env["CLIPMATCH_PRECISION"] = precision  # read once the engine has the setting
    redis_url = settings.Q_CLUSTER.get("redis")

    def drop() -> None:
        import shutil

        try:
            if redis_url:
                import redis

                client = redis.Redis.from_url(redis_url)
                keys = list(client.scan_iter(f"django_q:{queue}:*"))
                if keys:
                    client.delete(*keys)
            if drop_db is not None:
                drop_db()
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)

    return BenchEnvironment(work_dir=work_dir, env=env, drop=drop)


def _postgres_database(connection, name: str):
    from urllib.parse import quote

    params = connection.settings_dict
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    user = quote(params.get("USER") or "")
    password = f":{quote(params['PASSWORD'])}" if params.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = params.get("HOST") or "localhost"
    port = f":{params['PORT']}" if params.get("PORT") else ""

    def drop() -> None:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"postgres://{auth}{host}{port}/{name}", drop


def child_run(args: list[str], env: dict[str, str], **popen):
    """`manage.py ARGS` in the benchmark's environment, to its end: on a Ctrl-C
    (which the child gets too, and which stops its cluster) it is waited for, so
    that nothing it started outlives the command."""
    import subprocess

    from django.conf import settings

    process = subprocess.Popen(
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *args],
        cwd=settings.BASE_DIR,
        env=env,
        **popen,
    )
    try:
        out, err = process.communicate()
    except KeyboardInterrupt:
        process.wait()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)
