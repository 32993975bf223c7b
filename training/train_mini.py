"""Train clipmatch-mini, the small CLIP bundled with the app, on the synthetic catalog.

    python -m training.train_mini --output clipmatch/bundled/clipmatch-mini

Builds a ``transformers.CLIPModel`` from a small ``CLIPConfig``, trains it with CLIP's
symmetric contrastive loss plus NegCLIP-style hard negatives (the caption with one
attribute swapped as extra columns of the image-to-text softmax) and an auxiliary
pairwise sigmoid loss that makes raw cosines comparable across images, then saves
model, processor and ``clipmatch.json`` (thresholds and held-out metrics).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import random
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from training import catalog, evaluate_mini
from training.catalog import (
    ATTRIBUTES,
    CALIBRATION_SEED,
    CATEGORIES,
    COLOURS,
    HELDOUT_SEED,
    PATTERNS,
    TRAIN_SEED_LIMIT,
    all_products,
    generate_item,
    product_description,
    product_title,
    random_product,
    swap_attribute,
)
from training.tokenizer import BOS_ID, CONTEXT_LENGTH, EOS_ID, build_tokenizer

DATA_DIR = Path(__file__).resolve().parent / "data"
# Threshold calibration. "pass" lets at most 0.5% of mismatched pairs through; "hold"
# holds at most 2% of true pairs and, where the two kinds separate, 97% of mismatches.
HOLD_QUANTILE = 0.02
HOLD_MISMATCH_QUANTILE = 0.97
PASS_QUANTILE = 0.995
# category_top_k: smallest k with zero-shot top-k accuracy at least this high, both
# on photos at the model's size and on larger photos the processor downsamples.
TOP_K_ACCURACY = 0.99
LARGE_RENDER_SIZE = 192
PRODUCTS = all_products()
PRODUCT_ID = {p: i for i, p in enumerate(PRODUCTS)}
# (category, colour, pattern) indices per product id; -1 in a text's row means the
# text does not mention that attribute.
_VALUES = (CATEGORIES, tuple(COLOURS), PATTERNS)
PRODUCT_ATTRS = torch.tensor(
    [
        [_VALUES[a].index(getattr(p, name)) for a, name in enumerate(ATTRIBUTES)]
        for p in PRODUCTS
    ]
)
# Short generic captions like the app's category prompts, so "a photo of a mug."
# means something to the model even though listings never read like that.
PROMPT_TEMPLATES = (
    "a photo of a {}.",
    "a product photo of a {}.",
    "a {} for sale.",
    "a close-up photo of the {}.",
    "a picture of a {}",
    "{}",
    "the {}",
    "a {}",
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output", required=True, help="directory to save the model to")
    p.add_argument("--seed", type=int, default=0, help="training data/model seed")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--patch-size", type=int, default=16)
    p.add_argument("--n-images", type=int, default=24000, help="pre-rendered photos")
    p.add_argument("--vision-width", type=int, default=192)
    p.add_argument("--vision-layers", type=int, default=4)
    p.add_argument("--text-width", type=int, default=128)
    p.add_argument("--text-layers", type=int, default=3)
    p.add_argument("--projection-dim", type=int, default=128)
    p.add_argument("--vocab-size", type=int, default=2048)
    p.add_argument("--title-frac", type=float, default=0.6)
    p.add_argument(
        "--prompt-frac",
        type=float,
        default=0.15,
        help="share of title-step captions that are short generic prompts",
    )
    p.add_argument(
        "--hard-negatives",
        type=int,
        default=3,
        choices=range(4),
        help="swapped-attribute captions per image (0 = plain CLIP loss)",
    )
    p.add_argument("--sigmoid-weight", type=float, default=1.0)
    p.add_argument(
        "--attribute-weight",
        type=float,
        default=0.5,
        help="weight of the auxiliary attribute classifier on image embeddings",
    )
    p.add_argument(
        "--pair-frac",
        type=float,
        default=0.5,
        help="share of each batch drawn as pairs of photos differing in one attribute",
    )
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    p.add_argument("--eval-n", type=int, default=2000)
    p.add_argument("--monitor-every", type=int, default=500)
    p.add_argument(
        "--manifest-only",
        action="store_true",
        help="skip training; re-evaluate the model in --output and rewrite "
        "clipmatch.json (keeping the recorded train command)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="rendering processes")
    args = p.parse_args(argv)
    if not 0 <= args.seed < TRAIN_SEED_LIMIT:
        p.error(f"--seed must be in [0, {TRAIN_SEED_LIMIT}) to stay off held-out data")
    return args


# --------------------------------------------------------------------------- data


def _render(job: tuple[int, int, int]) -> tuple[bytes, int]:
    index, seed, size = job
    item = generate_item(index, seed=seed, size=size)
    return item.image.tobytes(), PRODUCT_ID[item.product]


def render_pool(n: int, seed: int, size: int, workers: int):
    """``n`` training photos as a uint8 (n, 3, size, size) tensor plus product ids.

    Cached under training/data/ (git-ignored) because rendering takes minutes.
    """
    # Keyed on the catalog's source too, so changing how products are drawn
    # never trains on stale photos.
    key = catalog.source_fingerprint()[:12]
    cache = DATA_DIR / f"pool-seed{seed}-n{n}-s{size}-{key}.npz"
    if cache.exists():
        data = np.load(cache)
        return torch.from_numpy(data["images"]), torch.from_numpy(data["products"])
    jobs = [(i, seed, size) for i in range(n)]
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            rendered = pool.map(_render, jobs, chunksize=256)
    else:
        rendered = [_render(j) for j in jobs]
    images = np.frombuffer(b"".join(r[0] for r in rendered), dtype=np.uint8)
    images = images.reshape(n, size, size, 3).transpose(0, 3, 1, 2).copy()
    products = np.array([r[1] for r in rendered], dtype=np.int64)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(cache, images=images, products=products)
    return torch.from_numpy(images), torch.from_numpy(products)


def tokenizer_corpus(n: int = 6000, seed: int = 0) -> list[str]:
    """Catalog titles and descriptions to learn the BPE vocabulary from."""
    rng = random.Random(f"clipmatch-tokenizer-{seed}")
    texts = []
    for _ in range(n):
        product = random_product(rng)
        texts.append(product_title(product, rng))
        texts.append(product_description(product, rng))
    return texts


def caption(product, kind: str, text_seed: int) -> tuple[str, list[int]]:
    """A caption of ``product`` in the wording fixed by ``text_seed``.

    Returns the text and the attribute row it pins down (-1 where unmentioned).
    ``kind`` is "title", "description" or "prompt".
    """
    rng = random.Random(text_seed)
    attrs = PRODUCT_ATTRS[PRODUCT_ID[product]].tolist()
    if kind == "prompt":
        template = PROMPT_TEMPLATES[int(rng.random() * len(PROMPT_TEMPLATES))]
        with_colour, with_pattern = rng.random() < 0.35, rng.random() < 0.2
        words = [product.category]
        if with_pattern:
            words.insert(0, product.pattern)
        else:
            attrs[2] = -1
        if with_colour:
            words.insert(0, product.colour)
        else:
            attrs[1] = -1
        return template.format(" ".join(words)), attrs
    title = product_title(product, rng)
    if kind == "title":
        return title, attrs
    return product_description(product, rng), attrs


def augment(images: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random horizontal flips and small shifts of a uint8 image batch."""
    b, _, h, w = images.shape
    flip = torch.rand(b, generator=gen) < 0.5
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    padded = F.pad(images.float(), (pad, pad, pad, pad), mode="replicate")
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    return torch.stack(
        [padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)]
    )


# -------------------------------------------------------------------------- model


def build_model(args: argparse.Namespace, vocab_size: int):
    """A freshly initialised small ``CLIPModel``."""
    from transformers import CLIPConfig, CLIPModel

    heads = lambda width: max(1, width // 32)  # noqa: E731 - 32-dim heads
    config = CLIPConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": args.text_width,
            "intermediate_size": 4 * args.text_width,
            "num_hidden_layers": args.text_layers,
            "num_attention_heads": heads(args.text_width),
            "max_position_embeddings": CONTEXT_LENGTH,
            "bos_token_id": BOS_ID,
            "eos_token_id": EOS_ID,
            "pad_token_id": EOS_ID,
        },
        vision_config={
            "hidden_size": args.vision_width,
            "intermediate_size": 4 * args.vision_width,
            "num_hidden_layers": args.vision_layers,
            "num_attention_heads": heads(args.vision_width),
            "image_size": args.image_size,
            "patch_size": args.patch_size,
        },
        projection_dim=args.projection_dim,
    )
    return CLIPModel(config)


def build_processor(tokenizer, image_size: int):
    """A ``CLIPProcessor`` whose image processor outputs ``image_size`` pixels."""
    from transformers import CLIPImageProcessorPil, CLIPProcessor

    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
    )
    return CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


class PairwiseHead(torch.nn.Module):
    """Training-only scale and bias for the sigmoid loss (not saved)."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(math.log(10.0)))
        self.bias = torch.nn.Parameter(torch.tensor(-5.0))

    def forward(self, cosines: torch.Tensor) -> torch.Tensor:
        return cosines * self.scale.exp() + self.bias


class AttributeHead(torch.nn.Module):
    """Training-only linear classifiers for category, colour and pattern (not saved).

    Shape is the slowest thing for a small ViT to pick up from the contrastive
    signal alone; a direct classification loss on the image embedding speeds it up.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.heads = torch.nn.ModuleList(
            torch.nn.Linear(dim, len(values)) for values in _VALUES
        )

    def forward(self, embeds: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
        return sum(
            F.cross_entropy(head(embeds), attrs[:, a])
            for a, head in enumerate(self.heads)
        ) / len(self.heads)


def sample_batch(
    size: int,
    pids: torch.Tensor,
    by_product: dict[int, torch.Tensor],
    pair_frac: float,
    rng: random.Random,
    gen: torch.Generator,
) -> torch.Tensor:
    """Pool indices for one batch; some come in pairs differing in one attribute.

    Paired photos are the hard negatives of the text-to-image direction: a caption
    must pick its photo over one of a same-coloured, same-patterned other product.
    """
    idx = torch.randint(0, len(pids), (size,), generator=gen)
    n_pairs = int(size * pair_frac) // 2
    for k in range(n_pairs):
        product = PRODUCTS[int(pids[idx[2 * k]])]
        # Category is the hardest attribute to see, so it is swapped most often.
        u = rng.random()
        attribute = "category" if u < 0.6 else "pattern" if u < 0.85 else "colour"
        partner = PRODUCT_ID[swap_attribute(product, attribute, rng)]
        choices = by_product[partner]
        idx[2 * k + 1] = choices[int(rng.random() * len(choices))]
    return idx


def clip_loss(
    img: torch.Tensor, txt: torch.Tensor, match: torch.Tensor, logit_scale
) -> torch.Tensor:
    """Symmetric CLIP loss; texts after the first len(img) are extra hard negatives.

    ``match[i, j]`` says text j is true of image i.  Such columns other than the
    target (duplicates in the batch, generic prompts, a 'swap' that landed on
    another item's product) are masked out rather than treated as negatives.
    """
    b = img.shape[0]
    target = torch.arange(b)
    scale = logit_scale.exp().clamp(max=100)
    logits = scale * img @ txt.T
    other = match.clone()
    other[target, target] = False
    i2t = F.cross_entropy(logits.masked_fill(other, float("-inf")), target)
    t2i_logits = logits[:, :b].T.masked_fill(other[:, :b].T, float("-inf"))
    t2i = F.cross_entropy(t2i_logits, target)
    return (i2t + t2i) / 2


def sigmoid_loss(
    img: torch.Tensor, txt: torch.Tensor, match: torch.Tensor, head: PairwiseHead
) -> torch.Tensor:
    """Binary loss on every image/text pair of the batch, matched or not.

    Unlike the softmax losses it pushes all true-pair cosines above all mismatched
    ones globally, which is what fixed pass/hold thresholds rely on.
    """
    losses = F.binary_cross_entropy_with_logits(
        head(img @ txt.T), match.float(), reduction="none"
    )
    # Matches are rare (about one per row), so positives and negatives each get
    # half of the loss.
    return (losses[match].mean() + losses[~match].mean()) / 2


def make_optimizer(params, lr: float, weight_decay: float):
    """AdamW without weight decay on biases, norms and scalars."""
    params = [p for p in params if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": rest, "weight_decay": 0.0},
        ],
        lr=lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )


def lr_at(step: int, total: int, warmup: int) -> float:
    """Linear warm-up then cosine decay to 2% of the peak."""
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t))


# ---------------------------------------------------------------------- calibrate


def calibrate(model, processor, n: int) -> dict:
    """Pass/hold cosine thresholds from a calibration split disjoint from eval."""
    scores, _, _ = evaluate_mini.score_split(model, processor, n, CALIBRATION_SEED)
    thresholds = {}
    for kind, by_name in scores.items():
        true = by_name["true"]
        mismatched = np.concatenate([by_name[k] for k in evaluate_mini.NEGATIVES])
        hold_q = min(
            float(np.quantile(true, HOLD_QUANTILE)),
            float(np.quantile(mismatched, HOLD_MISMATCH_QUANTILE)),
        )
        pass_q = float(np.quantile(mismatched, PASS_QUANTILE))
        # Pass is set from the mismatches alone: a listing passes unseen only when
        # almost no mismatch scores as high. Honest listings below it go to review,
        # which for well separated scores is very few.
        thresholds[kind] = {
            "pass": round(max(hold_q, pass_q), 4),
            "hold": round(hold_q, 4),
        }
    return thresholds, evaluate_mini.threshold_rates(scores, thresholds)


def monitor(model, processor, n: int = 300) -> str:
    """Quick ROC-AUCs on a small slice of the calibration split, for the log."""
    model.eval()
    scores, _, _ = evaluate_mini.score_split(model, processor, n, CALIBRATION_SEED)
    model.train()
    table = evaluate_mini.auc_table(scores)
    return " ".join(
        f"{k[0]}:{a[:3]}={v:.3f}"
        for k, row in table.items()
        for a, v in row.items()
        if a != "other"
    )


# -------------------------------------------------------------------------- train


def train(args: argparse.Namespace, argv: Sequence[str]) -> dict:
    """Train, evaluate, calibrate and save; returns the clipmatch.json content."""
    torch.set_num_threads(max(1, min(args.threads, 2)))
    torch.manual_seed(args.seed)
    rng = random.Random(f"clipmatch-train-{args.seed}")
    gen = torch.Generator().manual_seed(args.seed)
    started = time.time()

    tokenizer = build_tokenizer(tokenizer_corpus(), args.vocab_size)
    processor = build_processor(tokenizer, args.image_size)
    model = build_model(args, len(tokenizer))
    head = PairwiseHead()
    attribute_head = AttributeHead(args.projection_dim)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"vocab {len(tokenizer)}, model {n_params / 1e6:.2f}M parameters", flush=True)

    images, pids = render_pool(args.n_images, args.seed, args.image_size, args.workers)
    print(f"{len(images)} training photos ready after {time.time() - started:.0f}s")
    mean = torch.tensor(processor.image_processor.image_mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(processor.image_processor.image_std).view(1, 3, 1, 1) * 255

    by_product = {
        pid: (pids == pid).nonzero().flatten() for pid in range(len(PRODUCTS))
    }
    missing = [PRODUCTS[p].name for p, ix in by_product.items() if len(ix) == 0]
    if missing and args.pair_frac:
        raise SystemExit(f"--n-images too small: no photo of {missing[:3]}...")
    params = [
        *model.parameters(),
        *head.parameters(),
        *attribute_head.parameters(),
    ]
    opt = make_optimizer(params, args.lr, args.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_at(s, args.steps, args.warmup)
    )
    model.train()
    t0, running = time.time(), 0.0
    for step in range(args.steps):
        idx = sample_batch(args.batch_size, pids, by_product, args.pair_frac, rng, gen)
        pixels = (augment(images[idx], gen) - mean) / std
        img_pid = pids[idx]
        step_kind = "title" if rng.random() < args.title_frac else "description"
        texts, negatives, attrs, neg_attrs = [], [], [], []
        for pid in img_pid.tolist():
            product, text_seed = PRODUCTS[pid], rng.getrandbits(64)
            kind = step_kind
            if kind == "title" and rng.random() < args.prompt_frac:
                kind = "prompt"
            text, row = caption(product, kind, text_seed)
            texts.append(text)
            attrs.append(row)
            for attr in rng.sample(ATTRIBUTES, args.hard_negatives):
                swapped = swap_attribute(product, attr, rng)
                text, row = caption(swapped, kind, text_seed)
                negatives.append(text)
                neg_attrs.append(row)
        tok = tokenizer(
            texts + negatives, padding=True, truncation=True, return_tensors="pt"
        )
        img_raw = evaluate_mini.pooled(model.get_image_features(pixel_values=pixels))
        img = F.normalize(img_raw, dim=-1)
        txt = F.normalize(
            evaluate_mini.pooled(
                model.get_text_features(
                    input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]
                )
            ),
            dim=-1,
        )
        txt_attrs = torch.tensor(attrs + neg_attrs)
        img_attrs = PRODUCT_ATTRS[img_pid]
        match = ((txt_attrs[None] == img_attrs[:, None]) | (txt_attrs[None] < 0)).all(
            -1
        )
        loss = clip_loss(img, txt, match, model.logit_scale)
        if args.sigmoid_weight:
            loss = loss + args.sigmoid_weight * sigmoid_loss(img, txt, match, head)
        if args.attribute_weight:
            loss = loss + args.attribute_weight * attribute_head(img_raw, img_attrs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        running += loss.item()
        if (step + 1) % 50 == 0:
            rate = (step + 1) / (time.time() - t0)
            eta = (args.steps - step - 1) / rate
            print(
                f"step {step + 1}/{args.steps} loss {running / 50:.3f} "
                f"scale {model.logit_scale.exp().item():.1f} "
                f"{rate:.2f} step/s eta {eta / 60:.1f} min",
                flush=True,
            )
            running = 0.0
        if args.monitor_every and (step + 1) % args.monitor_every == 0:
            print(f"  monitor @{step + 1}: {monitor(model, processor)}", flush=True)
    train_seconds = time.time() - started
    print(f"trained in {train_seconds / 60:.1f} min", flush=True)

    model.eval()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    if args.dtype == "float16":
        model = model.half()
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)

    return write_manifest(
        out,
        eval_n=args.eval_n,
        train_seconds=round(train_seconds),
        train_command="python -m training.train_mini " + shlex.join(argv),
    )


def write_manifest(
    out: Path, *, eval_n: int, train_seconds: int | None, train_command: str
) -> dict:
    """Evaluate and calibrate the saved model in ``out``; write clipmatch.json."""
    # Evaluate what was saved (fp16 round trip included), the way the app loads it.
    model, processor = evaluate_mini.load(str(out))
    thresholds, rates = calibrate(model, processor, eval_n)
    metrics = evaluate_mini.evaluate(
        model, processor, eval_n, HELDOUT_SEED, thresholds=thresholds
    )
    large = evaluate_mini.evaluate(
        model, processor, eval_n, HELDOUT_SEED, LARGE_RENDER_SIZE, thresholds
    )
    accuracies = [metrics["category_topk_accuracy"], large["category_topk_accuracy"]]
    top_k = next(
        (k for k in (1, 2, 3) if min(a[k] for a in accuracies) >= TOP_K_ACCURACY), 3
    )
    manifest = {
        "name": "clipmatch-mini",
        "categories": list(CATEGORIES),
        "thresholds": thresholds,
        "category_top_k": top_k,
        "category_prompt_templates": list(evaluate_mini.PROMPT_TEMPLATES),
        "context_length": CONTEXT_LENGTH,
        "image_size": model.config.vision_config.image_size,
        "metrics": metrics,
        f"metrics_render_{LARGE_RENDER_SIZE}": large,
        "calibration": {
            "split": {"seed": CALIBRATION_SEED, "n": eval_n},
            "method": (
                "Raw image/text cosines (L2-normalised projected embeddings) on a "
                f"calibration split (catalog seed {CALIBRATION_SEED}), disjoint from "
                "the training seeds and from the evaluation split. Mismatched pairs "
                "are the same wording with the category, colour or pattern swapped, "
                "or another product's text. pass = "
                f"{PASS_QUANTILE:.1%} quantile of mismatched-pair cosines, so about "
                f"{1 - PASS_QUANTILE:.1%} of mismatches pass; hold = the lower of "
                f"the {HOLD_QUANTILE:.0%} quantile of true-pair cosines (about "
                f"{1 - HOLD_QUANTILE:.0%} of true pairs score above it) and the "
                f"{HOLD_MISMATCH_QUANTILE:.0%} quantile of mismatched-pair cosines "
                f"(about {HOLD_MISMATCH_QUANTILE:.0%} of mismatches are held). Scores "
                "in [hold, pass) need review. category_top_k is the "
                "smallest k whose zero-shot top-k category accuracy, with category "
                "vectors ensembled over category_prompt_templates, is at least "
                f"{TOP_K_ACCURACY:.0%} on the evaluation split for photos rendered at "
                f"the model's size and at {LARGE_RENDER_SIZE} px."
            ),
            "rates": rates,
        },
        "train_seconds": train_seconds,
        "train_command": train_command,
    }
    (out / "clipmatch.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(evaluate_mini.format_table(metrics))
    print(json.dumps(manifest["thresholds"]), f"category_top_k={top_k}")
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if not args.manifest_only:
        train(args, argv)
        return 0
    torch.set_num_threads(max(1, min(args.threads, 2)))
    out = Path(args.output)
    old = json.loads((out / "clipmatch.json").read_text())
    write_manifest(
        out,
        eval_n=args.eval_n,
        train_seconds=old.get("train_seconds"),
        train_command=old["train_command"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
