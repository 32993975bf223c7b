"""The losses both trainers use: CLIP's contrastive loss and a balanced binary one.

Both take L2-normalised embeddings (or logits) and a mask of what is known to
match, so that a pair known to match is never pushed apart as a negative.
torch is imported inside the functions (see training/optim.py for why).
"""

from __future__ import annotations

# CLIP caps its learnt temperature at 100 so the logits cannot blow up.
MAX_LOGIT_SCALE = 100


def logit_scale(model):
    """The model's temperature: exp of its learnt log-scale, capped."""
    return model.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)


def contrastive_loss(img, txt, known, scale):
    """CLIP's symmetric cross-entropy; image i's own text is text i.

    ``txt`` may hold more texts than there are images: the extra ones are hard
    negatives, extra columns of the image-to-text softmax only. ``known[i, j]``
    says text j is also true of image i; such columns (duplicates in the batch,
    generic captions) are masked out instead of used as negatives.
    """
    import torch
    import torch.nn.functional as F

    b = img.shape[0]
    target = torch.arange(b, device=img.device)
    logits = scale * img @ txt.T
    other = known.clone()
    other[target, target] = False
    i2t = F.cross_entropy(logits.masked_fill(other, float("-inf")), target)
    t2i_logits = logits[:, :b].T.masked_fill(other[:, :b].T, float("-inf"))
    t2i = F.cross_entropy(t2i_logits, target)
    return (i2t + t2i) / 2


def balanced_bce(logits, match):
    """Binary cross-entropy where matches and mismatches each carry half the loss,
    however few of either there are (all of it when only one kind is present).

    Unlike the softmax loss it pushes every matching pair's score above every
    mismatched one's, globally, which is what fixed thresholds rely on.
    """
    import torch.nn.functional as F

    losses = F.binary_cross_entropy_with_logits(logits, match.float(), reduction="none")
    parts = [losses[kind].mean() for kind in (match, ~match) if kind.any()]
    return sum(parts) / len(parts)
