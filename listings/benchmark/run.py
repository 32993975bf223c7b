"""The arms of `clip_benchmark`, run interleaved in the child process: the bare
model, the seed's per-pair loop and the pipeline through a real qcluster."""

from __future__ import annotations

import cProfile
import os
import pstats
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from listings.benchmark.workload import BenchListing, workload_build, workload_summary

ARMS = ("bare_fp32", "bare_precision", "seed_loop", "end_to_end")
PRECISIONS = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
SELLER = "clip-benchmark"
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
    # Hashes, quality measures, the reused-photo lookup and storing them; a decode
    # or forward inside it (a cached photo's, a crop's) would count twice, but the
    # benchmark's photos are neither cached nor anyone else's.
    "photo_signals": (("services/photos.py", "photos_check"),),
}


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

    from clipmatch.inference.engine import feature_tensor

    dtype = _dtype(precision)
    started = time.perf_counter()
    with torch.inference_mode():
        for pixels in inputs.images:
            feature_tensor(
                model.get_image_features(pixel_values=pixels.to(dtype)), "image"
            )
        for batch in inputs.texts:
            feature_tensor(model.get_text_features(**batch), "text")
    return time.perf_counter() - started


def seed_loop_run(model, processor, listings: list[BenchListing]) -> float:
    """Seconds for the seed's loop: open each photo file, then for each (photo,
    text) pair run the Hugging Face processor and forward one image and one text."""
    import torch
    from PIL import Image

    from clipmatch.inference.engine import feature_tensor

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
                    a = feature_tensor(
                        model.get_image_features(pixel_values=inputs["pixel_values"]),
                        "image",
                    )
                    b = feature_tensor(
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
    """Seconds from the first save to the last listing routed by the cluster,
    and the batches the workers scored them in."""
    embeddings_forget(listings)
    started = time.time()
    ids = listings_save(listings, categories)
    saved = time.time() - started
    done = routed_wait(ids, timeout)
    seconds = done["routed_at"] - started
    return {
        "seconds": seconds,
        "failed": done["failed"],
        "saved_s": round(saved, 2),
        "batches": batches_of(ids, started, seconds),
    }


def batches_of(ids: list[int], started: float, seconds: float) -> dict:
    """The batches the cluster scored these listings in, from their attempts (a
    batch's attempts share a worker and a start): how many, their sizes, and the
    share of the round's worker time spent inside one (start to last finish)."""
    from django.conf import settings
    from django.db.models import Count, Max

    from listings.models import ScoringAttempt

    rows = (
        ScoringAttempt.objects.filter(listing_id__in=ids)
        .values("worker", "started_at")
        .annotate(size=Count("id"), finished=Max("finished_at"))
        .order_by("started_at")
    )
    names: dict[str, int] = {}
    spans = [
        (
            names.setdefault(row["worker"], len(names)),
            row["size"],
            row["started_at"].timestamp() - started,
            row["finished"].timestamp() - started if row["finished"] else seconds,
        )
        for row in rows
    ]
    busy = sum(end - start for _, _, start, end in spans)
    workers = settings.Q_CLUSTER.get("workers") or 1
    return {
        "count": len(spans),
        # (worker, listings, start s, end s), in the order they started
        "spans": [
            [worker, size, round(start, 2), round(end, 2)]
            for worker, size, start, end in spans
        ],
        "busy_share": round(busy / (workers * seconds), 3) if seconds else None,
    }


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
    arms_run: tuple[str, ...] = ARMS,
) -> dict:
    """Run every arm (of `arms_run`) once per round, in turn, on the same
    listings; figures out. An arm not run has no figures, nor its ratios."""
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
    timelines: list[dict] = []
    peaks: dict[int, int] = {}
    with log_path.open("w") as log:
        cluster = qcluster_start(env=os.environ.copy(), log=log)
        try:
            _cluster_ready(cluster, log_path, worker_check_queue, worker_check_answered)
            for number in range(1, rounds + 1):
                for arm in arms_run:
                    torch.set_num_threads(threads)
                    if arm in bare:
                        took = bare_run(bare[arm][1], inputs, bare[arm][0])
                    elif arm == "seed_loop":
                        took = seed_loop_run(bare["bare_fp32"][1], processor, listings)
                    else:
                        result = e2e_round(listings, categories, timeout)
                        took, failed = result["seconds"], failed + result["failed"]
                        timelines.append({k: result[k] for k in ("saved_s", "batches")})
                        for pid, kb in process_group_memory(cluster.pid).items():
                            peaks[pid] = max(kb, peaks.get(pid, 0))
                    seconds[arm].append(took)
                    progress(
                        f"round {number}/{rounds}: {arm:<14} {count / took:6.2f} "
                        f"listings/s ({took:.1f} s)"
                    )
        finally:
            qcluster_stop(cluster, grace=30)
    profile = None
    if "end_to_end" in arms_run:
        progress("Profiling the scoring service in this process...")
        profile = scoring_profile(
            listings, categories, conf.get("TORCH_THREADS"), dump=profile_dump
        )
    # Rounded as reported: every ratio is the quotient of two printed figures.
    rates = {
        arm: round(_median_rate(count, seconds[arm]), 3) if seconds[arm] else None
        for arm in ARMS
    }
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
        for arm in arms_run
    }
    for arm in {"bare_fp32", "bare_precision"} & set(arms_run):
        arms[arm]["batch_size"] = batch_size
    if "end_to_end" in arms:
        worker_peaks = sorted(peaks.values(), reverse=True)
        arms["end_to_end"] |= {
            "failed": failed,
            "rounds_detail": timelines,
            "peak_memory_mb": {
                "max": round(worker_peaks[0] / 1024) if worker_peaks else None,
                "processes": [round(kb / 1024) for kb in worker_peaks],
            },
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
        "e2e_split": (
            e2e_split(profile, rates["end_to_end"], workers) if profile else None
        ),
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
