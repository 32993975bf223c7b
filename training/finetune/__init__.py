"""Fine-tune a CLIP checkpoint on labelled image-text pairs, safely, and measure it.

    python -m training.finetune --base clipmatch/bundled/clipmatch-mini \\
        --train-csv train.csv --val-csv val.csv --output runs/tuned

Runs without Django (on a GPU box alone if need be). Data are seed-format CSVs
(``image_path,text,label[,category]``). The loss is CLIP's contrastive loss over the
batch's matching pairs (both directions) and/or binary cross-entropy on every
labelled pair, on the cosine times the model's learnable temperature plus a
learnable bias. Hard negatives are mined from the data itself: an image against the
text of another product in the same category. Against forgetting: frozen towers or
blocks, a low learning rate with warm-up, and WiSE-FT (weights interpolated between
base and tuned) with the mixing weight chosen on validation. Base and result are
measured on validation and on a regression set the base model already handled; a
result that is worse on either beyond a tolerance is marked refused, with why.

Laid out like open_clip_train: ``params`` (the config and the options), ``data``
(pairs, images, negatives, batches), ``model`` (loading, freezing, embedding,
WiSE-FT mixing), ``loop`` (epochs, checkpoints, the WiSE-FT choice), ``report``
(metrics, the gate, what is written), ``run`` (one run end to end) and ``cli``.
The optimizer, schedule and losses are shared with train_mini (training/optim.py,
training/losses.py).
"""

from training.finetune.cli import main
from training.finetune.data import (
    PairSet,
    load_pairs,
    regression_csv_default,
    replay_csv_default,
)
from training.finetune.params import (
    FinetuneConfig,
    FinetuneError,
    add_arguments,
    config_from,
)
from training.finetune.report import REPORT_FILE, choose_alpha, summary
from training.finetune.run import finetune

__all__ = [
    "REPORT_FILE",
    "FinetuneConfig",
    "FinetuneError",
    "PairSet",
    "add_arguments",
    "choose_alpha",
    "config_from",
    "finetune",
    "load_pairs",
    "main",
    "regression_csv_default",
    "replay_csv_default",
    "summary",
]
