"""A run's parameters: the config, its checks, and the command-line options."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field, fields

LOSSES = ("contrastive", "bce", "both")
FREEZE = ("none", "vision", "text", "backbone")
WISE_ALPHAS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class FinetuneError(RuntimeError):
    """Bad input or a run that cannot go on; nothing is written for a model."""


@dataclass
class FinetuneConfig:
    """Everything that decides a run; stored in the report and the checkpoint."""

    base: str
    output: str
    train_csv: list[str] = field(default_factory=list)
    val_csv: list[str] = field(default_factory=list)
    regression_csv: str = ""
    regression_n: int = 400
    replay_csv: str = ""
    replay_n: int = 1000
    epochs: int = 3
    batch_size: int = 32
    lr: float = 2e-4
    weight_decay: float = 0.1
    warmup: float = 0.1
    loss: str = "both"
    freeze: str = "none"
    trainable_blocks: int = 2
    hard_negatives: int = 1
    wise_alphas: tuple[float, ...] = WISE_ALPHAS
    tolerance: float = 0.02
    device: str = "auto"
    seed: int = 0
    threads: int = 2
    name: str = ""

    def check(self) -> None:
        if self.loss not in LOSSES:
            raise FinetuneError(f"--loss must be one of {', '.join(LOSSES)}.")
        if self.freeze not in FREEZE:
            raise FinetuneError(f"--freeze must be one of {', '.join(FREEZE)}.")
        if self.epochs < 1 or self.batch_size < 2:
            raise FinetuneError("--epochs must be >= 1 and --batch-size >= 2.")
        if not 0 < self.lr < 1:
            raise FinetuneError("--lr must be between 0 and 1.")
        if not self.wise_alphas or any(not 0 <= a <= 1 for a in self.wise_alphas):
            raise FinetuneError("WiSE-FT mixing weights must lie in [0, 1].")

    def as_dict(self) -> dict:
        """The config as JSON-ready values (the report's "config")."""
        return {**asdict(self), "wise_alphas": list(self.wise_alphas)}

    def fingerprint(self) -> dict:
        """What a checkpoint must have been made with to be resumed: everything
        but where it runs (threads, device)."""
        data = self.as_dict()
        data.pop("threads")
        data.pop("device")
        return data


def add_arguments(parser: argparse.ArgumentParser, *, base_required: bool) -> None:
    """Options shared by this program and the Django command over it."""
    d = FinetuneConfig(base="", output="")
    parser.add_argument("--base", required=base_required, help="model directory")
    parser.add_argument("--output", required=True, help="directory for the result")
    parser.add_argument("--train-csv", action="append", default=[], type=str)
    parser.add_argument("--val-csv", action="append", default=[], type=str)
    parser.add_argument(
        "--regression-csv",
        default="",
        help="pairs the base model handles; default: a held-out synthetic catalog",
    )
    parser.add_argument("--regression-n", type=int, default=d.regression_n)
    parser.add_argument(
        "--replay-csv",
        default="",
        help="pairs the base model learnt from, mixed into training against "
        "forgetting; default with the default regression set: synthetic catalog "
        "pairs from training seeds",
    )
    parser.add_argument(
        "--replay-n", type=int, default=d.replay_n, help="0: no default replay"
    )
    parser.add_argument("--epochs", type=int, default=d.epochs)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay)
    parser.add_argument("--warmup", type=float, default=d.warmup, help="share of steps")
    parser.add_argument("--loss", choices=LOSSES, default=d.loss)
    parser.add_argument("--freeze", choices=FREEZE, default=d.freeze)
    parser.add_argument(
        "--trainable-blocks",
        type=int,
        default=d.trainable_blocks,
        help="with --freeze backbone: last blocks of each tower left trainable",
    )
    parser.add_argument("--hard-negatives", type=int, default=d.hard_negatives)
    parser.add_argument(
        "--wise-alphas",
        default=",".join(str(a) for a in d.wise_alphas),
        help="comma-separated WiSE-FT mixing weights to try on validation",
    )
    parser.add_argument("--tolerance", type=float, default=d.tolerance)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--threads", type=int, default=d.threads)
    parser.add_argument("--name", default="", help="model name (default: folder)")
    parser.add_argument(
        "--resume", action="store_true", help="continue an unfinished run"
    )


def config_from(options: dict, base: str) -> FinetuneConfig:
    """A FinetuneConfig from parsed options (argparse or a Django command's)."""
    try:
        alphas = tuple(float(a) for a in str(options["wise_alphas"]).split(","))
    except ValueError as exc:
        raise FinetuneError(f"--wise-alphas: {exc}") from exc
    # Every option named like a field is that field; these need converting.
    values = {
        f.name: options[f.name] for f in fields(FinetuneConfig) if f.name != "base"
    }
    values.update(
        output=str(options["output"]),
        train_csv=list(options["train_csv"]),
        val_csv=list(options["val_csv"]),
        wise_alphas=alphas,
    )
    return FinetuneConfig(base=base, **values)
