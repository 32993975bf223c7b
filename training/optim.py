"""AdamW, the warm-up-then-cosine schedule and the update step both trainers use.

``train_mini`` (the bundled model, from scratch) and ``finetune`` (any CLIP, from a
checkpoint) differ only in their numbers: the peak learning rate, the warm-up, and
where the cosine ends (2% of the peak for train_mini, zero for fine-tuning).
torch is imported inside the functions, so importing this module stays cheap for
the app, whose workers must not start torch before they fork.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

# CLIP's betas and eps: a lower beta2 and a larger eps than AdamW's defaults keep
# contrastive training stable.
BETAS = (0.9, 0.98)
EPS = 1e-6
MAX_GRAD_NORM = 1.0


def make_optimizer(params: Iterable, lr: float, weight_decay: float):
    """AdamW over the parameters that need gradients, without weight decay on
    biases, norms and scalars (everything with fewer than two dimensions)."""
    import torch

    params = [p for p in params if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": rest, "weight_decay": 0.0},
        ],
        lr=lr,
        betas=BETAS,
        eps=EPS,
    )


def warmup_cosine(step: int, total: int, warmup: int, floor: float = 0.0) -> float:
    """The learning rate at ``step`` as a share of the peak: linear warm-up over
    ``warmup`` steps, then a cosine from the peak down to ``floor`` at ``total``
    steps, staying there after."""
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))


def make_scheduler(optimizer, total: int, warmup: int, floor: float = 0.0):
    """A LambdaLR following warmup_cosine, stepped once per optimizer step."""
    import torch

    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, total, warmup, floor)
    )


def update(loss, optimizer, scheduler, params: list) -> None:
    """One step: gradients of ``loss``, clipped to norm 1, then the optimizer and
    the schedule move on."""
    import torch

    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
    optimizer.step()
    scheduler.step()
