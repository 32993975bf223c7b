"""Fixtures shared by every app's tests: tiny real CLIP checkpoints and factories."""

from __future__ import annotations

import io
import json
import random
import time
from pathlib import Path

import pytest
from PIL import Image

BUNDLED_MODEL = Path(__file__).parent / "clipmatch" / "bundled" / "clipmatch-mini"
TINY_THRESHOLDS = {
    "title": {"pass": 0.5, "hold": -0.5},
    "description": {"pass": 0.5, "hold": -0.5},
    "category_top_k": 0,
}
TINY_TEXTS = [
    "a red striped sneaker",
    "blue dotted mug for coffee",
    "green handbag with checked pattern, leather",
    "a photo of a lamp",
    "black watch, shipping worldwide, returns accepted within thirty days",
]


def build_tiny_clip(path: Path, *, seed: int = 0, context: int = 16) -> Path:
    """Save a randomly initialised, really loadable CLIP checkpoint to `path`."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from training.tokenizer import build_tokenizer

    torch.manual_seed(seed)
    tokenizer = build_tokenizer(TINY_TEXTS * 4, vocab_size=600)
    tokenizer.model_max_length = context
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": context,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
        },
        projection_dim=16,
    )
    model = CLIPModel(config)
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
        tokenizer=tokenizer,
    )
    return _save_tiny(path, model, processor, f"tiny-clip-{seed}")


def _save_tiny(path: Path, model, processor, name: str) -> Path:
    """A save_pretrained folder with thresholds beside it, as clipmatch loads it."""
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    (path / "clipmatch.json").write_text(
        json.dumps({"name": name, "thresholds": TINY_THRESHOLDS})
    )
    return path


# Words for the tiny tokenizers of the other families: Latin and Chinese text, so
# that a multilingual tokenizer meets both.
FAMILY_TEXTS = [
    *TINY_TEXTS,
    "红色 条纹 运动鞋, 蓝色 杯子",
    "une chaise en bois, a lamp and a bottle",
]
# Families whose tiny checkpoints build_tiny_family makes, by config model_type.
TINY_FAMILIES = (
    "clip",
    "siglip",
    "siglip2",
    "altclip",
    "chinese_clip",
    "blip",
    "metaclip_2",
    "groupvit",
    "owlvit",
)
_TINY_TOWER = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
}


def _sentencepiece_model(path: Path, vocab_size: int = 150) -> Path:
    """A small unigram SentencePiece model trained on FAMILY_TEXTS (T5-style ids)."""
    import sentencepiece as spm

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(FAMILY_TEXTS * 8),
        model_writer=buffer,
        vocab_size=vocab_size,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        hard_vocab_limit=False,
        character_coverage=1.0,
        minloglevel=3,
    )
    path.mkdir(parents=True, exist_ok=True)
    (path / "spiece.model").write_bytes(buffer.getvalue())
    return path / "spiece.model"


def _bpe(specials: list[str]) -> tuple[dict, list]:
    """A small Metaspace BPE vocabulary and merges, the shape Gemma's tokenizer uses."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=200, special_tokens=specials, show_progress=False
    )
    tokenizer.train_from_iterator([t.lower() for t in FAMILY_TEXTS] * 4, trainer)
    data = json.loads(tokenizer.to_str())["model"]
    merges = [
        tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in data["merges"]
    ]
    return data["vocab"], merges


def _xlm_roberta_tokenizer(spm_dir: Path, context: int):
    """XLM-R's tokenizer (AltCLIP's, MetaCLIP 2's) over a small unigram vocabulary."""
    import sentencepiece as spm
    import transformers as tf

    pieces = spm.SentencePieceProcessor(model_file=str(_sentencepiece_model(spm_dir)))
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [
        (pieces.id_to_piece(n), pieces.get_score(n))
        for n in range(3, pieces.get_piece_size())
    ]
    return tf.XLMRobertaTokenizer(
        vocab=[*vocab, ("<mask>", 0.0)], model_max_length=context
    )


def _clip_tokenizer(context: int):
    from training.tokenizer import build_tokenizer

    tokenizer = build_tokenizer(FAMILY_TEXTS * 4, vocab_size=600)
    tokenizer.model_max_length = context
    return tokenizer


def _wordpiece_vocab() -> dict[str, int]:
    """BERT's special tokens, whole lower-cased words and every character."""
    words = {w.strip(",.").lower() for t in FAMILY_TEXTS for w in t.split()}
    chars = set("".join(FAMILY_TEXTS).lower()) - {" "}
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words)]
    tokens += sorted(chars) + [f"##{c}" for c in sorted(chars)]
    return {token: n for n, token in enumerate(dict.fromkeys(tokens))}


def build_tiny_family(
    path: Path, family: str, *, seed: int = 0, context: int = 16
) -> Path:
    """Save a randomly initialised, really loadable checkpoint of one model family
    (hidden size 32, one layer per tower), the way its authors' classes save it."""
    import torch
    import transformers as tf

    if family == "clip":
        return build_tiny_clip(path, seed=seed, context=context)
    torch.manual_seed(seed)
    vision = {"image_size": 32, "patch_size": 8, **_TINY_TOWER}
    spm_dir = path.with_name(f"{path.name}-spm")  # beside the checkpoint, not in it
    square = {"height": 32, "width": 32}
    if family == "siglip":
        tokenizer = tf.SiglipTokenizer(
            vocab_file=str(_sentencepiece_model(spm_dir)),
            model_max_length=context,
        )
        text = {"vocab_size": len(tokenizer), "max_position_embeddings": context}
        model = tf.SiglipModel(
            tf.SiglipConfig(text_config={**text, **_TINY_TOWER}, vision_config=vision)
        )
        images = tf.SiglipImageProcessor(size=square)
        processor = tf.SiglipProcessor(image_processor=images, tokenizer=tokenizer)
    elif family == "siglip2":
        vocab, merges = _bpe(["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"])
        # As google/siglip2-*: no BOS or EOS, left padding (the tokenizer's own).
        tokenizer = tf.Siglip2Tokenizer(
            vocab=vocab,
            merges=merges,
            add_bos_token=False,
            add_eos_token=False,
            model_max_length=context,
        )
        text = {"vocab_size": len(tokenizer), "max_position_embeddings": context}
        # NaFlex at the processor's defaults: 16-pixel patches, at most 256.
        naflex = {**_TINY_TOWER, "patch_size": 16, "num_patches": 256}
        model = tf.Siglip2Model(
            tf.Siglip2Config(text_config={**text, **_TINY_TOWER}, vision_config=naflex)
        )
        images = tf.Siglip2ImageProcessor(patch_size=16, max_num_patches=256)
        processor = tf.Siglip2Processor(image_processor=images, tokenizer=tokenizer)
    elif family == "altclip":
        tokenizer = _xlm_roberta_tokenizer(spm_dir, context)
        # RoBERTa positions start after the padding index: two more than usable.
        text = {
            "vocab_size": len(tokenizer),
            "max_position_embeddings": context + 2,
            "project_dim": 16,
        }
        model = tf.AltCLIPModel(
            tf.AltCLIPConfig(
                text_config={**text, **_TINY_TOWER},
                vision_config=vision,
                projection_dim=16,
            )
        )
        images = tf.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=square)
        processor = tf.AltCLIPProcessor(image_processor=images, tokenizer=tokenizer)
    elif family in ("chinese_clip", "blip"):
        tokenizer = tf.BertTokenizer(vocab=_wordpiece_vocab(), model_max_length=context)
        text = {"vocab_size": len(tokenizer), "max_position_embeddings": context}
        if family == "chinese_clip":
            model = tf.ChineseCLIPModel(
                tf.ChineseCLIPConfig(
                    text_config={**text, **_TINY_TOWER},
                    vision_config=vision,
                    projection_dim=16,
                )
            )
            images = tf.ChineseCLIPImageProcessor(size=square, crop_size=square)
            processor = tf.ChineseCLIPProcessor(
                image_processor=images, tokenizer=tokenizer
            )
        else:
            model = tf.BlipModel(
                tf.BlipConfig(
                    text_config={**text, **_TINY_TOWER},
                    vision_config=vision,
                    projection_dim=16,
                )
            )
            images = tf.BlipImageProcessor(size=square)
            processor = tf.BlipProcessor(image_processor=images, tokenizer=tokenizer)
    elif family in ("metaclip_2", "groupvit", "owlvit"):
        # Causal text towers pooled at the first end token, like CLIP's.
        if family == "metaclip_2":
            tokenizer = _xlm_roberta_tokenizer(spm_dir, context)
        else:
            tokenizer = _clip_tokenizer(context)
        text = {
            "vocab_size": len(tokenizer),
            "max_position_embeddings": context,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            **_TINY_TOWER,
        }
        images = tf.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=square)
        processor = tf.CLIPProcessor(image_processor=images, tokenizer=tokenizer)
        if family == "metaclip_2":
            config = tf.MetaClip2Config(
                text_config=text, vision_config=vision, projection_dim=16
            )
            model = tf.MetaClip2Model(config)
        elif family == "groupvit":
            grouping = {
                **_TINY_TOWER,
                "image_size": 32,
                "patch_size": 8,
                "depths": [1, 1],
                "num_group_tokens": [4, 0],
                "num_output_groups": [4, 2],
            }
            grouping.pop("num_hidden_layers")
            config = tf.GroupViTConfig(
                text_config=text,
                vision_config=grouping,
                projection_dim=16,
                projection_intermediate_dim=32,
            )
            model = tf.GroupViTModel(config)
        else:
            config = tf.OwlViTConfig(
                text_config=text, vision_config=vision, projection_dim=16
            )
            model = tf.OwlViTModel(config)
            images = tf.OwlViTImageProcessor(size=square, crop_size=square)
            processor = tf.OwlViTProcessor(image_processor=images, tokenizer=tokenizer)
    else:
        raise ValueError(f"No tiny builder for {family!r}")
    return _save_tiny(path, model, processor, f"tiny-{family}-{seed}")


@pytest.fixture(scope="session")
def tiny_family_dirs(tmp_path_factory) -> dict[str, Path]:
    """One tiny checkpoint per family, built once per test run."""
    root = tmp_path_factory.mktemp("families")
    return {name: build_tiny_family(root / name, name) for name in TINY_FAMILIES}


@pytest.fixture(scope="session", autouse=True)
def _remove_test_media():
    """The test settings give each run its own media folder; drop it afterwards."""
    import os
    import shutil

    from django.conf import settings

    yield
    if "CLIPMATCH_TEST_MEDIA_ROOT" not in os.environ:
        shutil.rmtree(settings.MEDIA_ROOT, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


@pytest.fixture(scope="session")
def bundled_model_dir() -> Path:
    if not (BUNDLED_MODEL / "config.json").exists():
        pytest.fail(f"The bundled model is missing from {BUNDLED_MODEL}.")
    return BUNDLED_MODEL


@pytest.fixture
def use_model(settings):
    """Point CLIPMATCH at a model directory (and optional thresholds) for one test."""

    def use(path: Path, thresholds: dict | None = None):
        settings.CLIPMATCH = {
            **settings.CLIPMATCH,
            "MODEL": str(path),
            "THRESHOLDS": thresholds or {},
        }

    return use


def png_bytes(colour=(200, 30, 30), size=(48, 40), mode="RGB", seed=0) -> bytes:
    """A small real PNG with a little noise so that every seed hashes differently."""
    rng = random.Random(seed)
    image = Image.new(mode, size, colour if mode == "RGB" else 128)
    image.putpixel((rng.randrange(size[0]), rng.randrange(size[1])), colour)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def mpo_bytes(colours=((10, 200, 10), (200, 10, 10)), size=(32, 24)) -> bytes:
    """A two-frame MPO, as phones save stereo and depth photos."""
    frames = [Image.new("RGB", size, c) for c in colours]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="MPO", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


class TaskRecorder:
    """Stands in for `listings.services.queueing.queue_task`: records the listing
    ids handed to the scoring task (not queued), and queues any other task as usual
    unless `hold_all` is set, when every task is recorded in `tasks` instead."""

    def __init__(self, queue_task):
        from listings.services.queueing import SCORE_TASK

        self.score_task = SCORE_TASK
        self.queue_task = queue_task
        self.scoring: list[int] = []
        self.tasks: list[tuple] = []
        self.hold_all = False

    def __call__(self, path: str, *args, task_name: str, **options) -> None:
        if path == self.score_task:
            self.scoring.append(args[0])
        if self.hold_all:
            self.tasks.append((path, *args))
        elif path != self.score_task:
            self.queue_task(path, *args, task_name=task_name, **options)


@pytest.fixture
def task_recorder(monkeypatch) -> TaskRecorder:
    from listings.services import queueing

    recorder = TaskRecorder(queueing.queue_task)
    monkeypatch.setattr(queueing, "queue_task", recorder)
    return recorder


@pytest.fixture
def queued(task_recorder) -> list[int]:
    """The ids of the listings queued for scoring, recorded instead of queued; any
    other task is queued as usual."""
    return task_recorder.scoring


@pytest.fixture
def queued_tasks(task_recorder) -> list[tuple]:
    """Every task handed to the queue as (task path, *arguments), none queued."""
    task_recorder.hold_all = True
    return task_recorder.tasks


@pytest.fixture
def sync_queue(monkeypatch):
    """Run async_task inline (django-q2 reads its settings once, at import)."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for the database the tests are using right now."""
    engine = settings_dict["ENGINE"]
    if engine.endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    if engine.endswith("postgresql"):
        user = settings_dict.get("USER") or ""
        password = (
            f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
        )
        auth = f"{user}{password}@" if user else ""
        host = settings_dict.get("HOST") or "localhost"
        port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
        return f"postgres://{auth}{host}{port}/{settings_dict['NAME']}"
    raise NotImplementedError(engine)


@pytest.fixture
def worker_env(settings, transactional_db):
    """Environment for a child process that must share this test's database."""
    import os

    from django.db import connection

    env = os.environ.copy()
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": database_url(connection.settings_dict),
            "Q_CLUSTER_NAME": settings.Q_CLUSTER["name"],
            "CLIPMATCH_MODEL": settings.CLIPMATCH["MODEL"],
            "CLIPMATCH_THRESHOLDS": json.dumps(settings.CLIPMATCH["THRESHOLDS"]),
            "CLIPMATCH_TEST_MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def wait_for(predicate, timeout: float, what: str, log: Path | None = None):
    """Poll `predicate` (on fresh database connections) until it is true."""
    from django.db import close_old_connections

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        close_old_connections()
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    pytest.fail(f"Timed out after {timeout}s waiting for {what}.\n{tail}")


@pytest.fixture
def qcluster(worker_env, tmp_path):
    """Start a real django-q2 cluster (`manage.py qcluster`) for one test."""
    from listings.workers import qcluster_start, qcluster_stop

    log_path = tmp_path / "qcluster.log"
    with log_path.open("w") as log:
        process = qcluster_start(env=worker_env, log=log)
        process.log_path = log_path
        yield process
        qcluster_stop(process, grace=5)


@pytest.fixture
def webhook_qcluster(worker_env, tmp_path):
    """Start the webhook cluster (`manage.py qcluster_webhooks`) for one test."""
    from listings.workers import qcluster_start, qcluster_stop

    log_path = tmp_path / "qcluster_webhooks.log"
    with log_path.open("w") as log:
        process = qcluster_start(env=worker_env, log=log, command="qcluster_webhooks")
        process.log_path = log_path
        yield process
        qcluster_stop(process, grace=5)
