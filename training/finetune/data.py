"""A run's data: labelled pairs read and checked, images preprocessed once,
the default regression and replay sets, mined hard negatives and batches."""

from __future__ import annotations

import random
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clipmatch.inference.pairs import Pair, PairsError, open_images, read_pairs
from training.finetune.params import FinetuneConfig, FinetuneError

DATA_DIR = Path(__file__).resolve().parent.parent / "data"  # training/data
PREPROCESS_CHUNK = 256  # images per call to the image processor


@dataclass
class PairSet:
    """Labelled pairs with their images preprocessed once, as model inputs."""

    pairs: list[Pair]
    images: dict  # the processor's tensors for the distinct images, one row each
    image_of: list[int]  # pair -> row of images
    group_of_image: list[int]
    group_of_text: dict[str, int]

    @property
    def n_images(self) -> int:
        return len(self.images["pixel_values"])

    def image_rows(self, rows: list[int]) -> dict:
        """The processor's tensors of some images, for a batch."""
        return {key: value[rows] for key, value in self.images.items()}

    @property
    def labels(self) -> list[int]:
        return [p.label for p in self.pairs]

    @property
    def texts(self) -> list[str]:
        return [p.text for p in self.pairs]


@dataclass
class RunData:
    """The pairs of every role, as read from their CSVs, and where two came from."""

    train: list[Pair]
    val: list[Pair]
    regression: list[Pair]
    replay: list[Pair]
    regression_csv: str
    replay_csv: str


def load_pairs(paths: Sequence[str | Path], role: str) -> list[Pair]:
    """Read labelled CSVs and open every image now, so a bad row stops the run
    before any training, with the row named."""
    pairs: list[Pair] = []
    for path in paths:
        try:
            rows = read_pairs(Path(path), require_label=True)
            open_images(rows)  # every image must decode; the error names the row
        except PairsError as exc:
            raise FinetuneError(f"{role} data: {exc}") from exc
        pairs.extend(rows)
    return pairs


def load_run_data(config: FinetuneConfig) -> RunData:
    """Every role's pairs; the regression and replay sets default to synthetic
    catalogs (replay only along with the default regression set)."""
    train = load_pairs(config.train_csv, "training")
    val = load_pairs(config.val_csv, "validation")
    regression_csv = config.regression_csv or str(
        regression_csv_default(config.regression_n)
    )
    regression = load_pairs([regression_csv], "regression")
    replay_csv = config.replay_csv
    if not replay_csv and not config.regression_csv and config.replay_n > 0:
        replay_csv = str(replay_csv_default(config.replay_n))
    replay = load_pairs([replay_csv], "replay") if replay_csv else []
    for pair in replay:  # mined negatives stay within the replayed domain
        pair.category = pair.category or "(replay)"
    for role, pairs in (("training", train), ("validation", val)):
        if {p.label for p in pairs} != {0, 1}:
            raise FinetuneError(f"The {role} data need both labels, 0 and 1.")
    return RunData(train, val, regression, replay, regression_csv, replay_csv)


def _groups(pairs: Sequence[Pair]) -> tuple[dict[Path, int], dict[str, int]]:
    """Connected components of images and texts joined by matching pairs.

    Two things in one component are known to match (two photos of one product
    described by a shared phrasing), so they are never used as each other's
    negatives.
    """
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in pairs:
        a, b = find(("i", str(p.path))), find(("t", p.text))
        if p.label == 1 and a != b:
            parent[a] = b
    ids: dict[tuple[str, str], int] = {}
    images, texts = {}, {}
    for p in pairs:
        images[p.path] = ids.setdefault(find(("i", str(p.path))), len(ids))
        texts[p.text] = ids.setdefault(find(("t", p.text)), len(ids))
    return images, texts


def prepare(pairs: list[Pair], engine) -> PairSet:
    """Decode each distinct image once and turn it into model inputs, through the
    engine's processor as the app does."""
    import torch

    paths = list(dict.fromkeys(p.path for p in pairs))
    index = {path: n for n, path in enumerate(paths)}
    first = {}
    for p in pairs:
        first.setdefault(p.path, p)
    images = open_images([first[path] for path in paths])
    chunks = [
        engine.image_inputs(images[start : start + PREPROCESS_CHUNK])
        for start in range(0, len(images), PREPROCESS_CHUNK)
    ]
    image_groups, text_groups = _groups(pairs)
    return PairSet(
        pairs=pairs,
        images={key: torch.cat([c[key] for c in chunks]) for key in chunks[0]},
        image_of=[index[p.path] for p in pairs],
        group_of_image=[image_groups[path] for path in paths],
        group_of_text=text_groups,
    )


def _cached_catalog(name: str, n: int, seed: int) -> Path:
    """A synthetic catalog CSV under training/data, written once and only ever
    seen whole: it is written aside and moved into place, so an interrupted
    writer never leaves a short catalog behind for the next run."""
    from training.catalog import write_catalog_csv

    folder = DATA_DIR / name
    csv_path = folder / "catalog.csv"
    if not csv_path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=DATA_DIR))
        write_catalog_csv(partial, n=n, seed=seed, size=128)
        try:
            partial.rename(folder)
        except OSError:  # another run finished first: keep its copy
            shutil.rmtree(partial, ignore_errors=True)
    return csv_path


def regression_csv_default(n: int) -> Path:
    """A held-out split of the synthetic catalog (the default regression set)."""
    from training.catalog import HELDOUT_SEED

    return _cached_catalog(f"regression-heldout-n{n}", n, HELDOUT_SEED)


def replay_csv_default(n: int) -> Path:
    """Pairs from the synthetic catalog's training seeds: rehearsal data from the
    domain of the default regression set, disjoint from it."""
    return _cached_catalog(f"replay-train-seed0-n{n}", n, 0)


def mine_negatives(data: PairSet, rng: random.Random, per_positive: int) -> list:
    """(image row, text) negatives: a matching pair's image against the text of a
    matching pair of another product, in the same category where one is given."""
    positives = [n for n, p in enumerate(data.pairs) if p.label == 1]
    by_category: dict[str, list[int]] = {}
    for n in positives:
        by_category.setdefault(data.pairs[n].category, []).append(n)
    mined = []
    for n in positives:
        pool = by_category[data.pairs[n].category]
        group = data.group_of_image[data.image_of[n]]
        for _ in range(per_positive):
            for _attempt in range(8):
                other = pool[int(rng.random() * len(pool))]
                if data.group_of_text[data.pairs[other].text] != group:
                    mined.append((data.image_of[n], data.pairs[other].text))
                    break
    return mined


def batches(data: PairSet, mined: list, batch_size: int, rng: random.Random):
    """Shuffled batches of (image row, text, label, text group) items."""
    items = [
        (data.image_of[n], p.text, p.label, data.group_of_text[p.text])
        for n, p in enumerate(data.pairs)
    ]
    items += [(img, text, 0, data.group_of_text[text]) for img, text in mined]
    rng.shuffle(items)
    return [items[s : s + batch_size] for s in range(0, len(items), batch_size)]


def items_per_epoch(data: PairSet, hard_negatives: int) -> int:
    """Pairs plus the negatives mined for each matching pair."""
    return len(data.pairs) + hard_negatives * sum(data.labels)
