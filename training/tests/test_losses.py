"""The losses shared by train_mini and finetune, on hand-computable examples."""

from __future__ import annotations

import math

import pytest
import torch

from training.losses import balanced_bce, contrastive_loss, logit_scale

E = math.e


def test_a_known_match_is_no_negative_and_extra_texts_compete_only_for_images():
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # Texts 0 and 1 belong to images 0 and 1; text 2 is an extra hard negative,
    # worded like text 0.
    txt = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    known = torch.tensor([[True, False, True], [False, True, False]])
    unknown = torch.tensor([[True, False, False], [False, True, False]])

    masked = contrastive_loss(img, txt, known, torch.tensor(1.0))
    unmasked = contrastive_loss(img, txt, unknown, torch.tensor(1.0))

    # Image 0 sees texts 0 and 1 (2 is masked), image 1 all three; each text
    # sees the two images only. Unmasked, text 2 competes with text 0.
    image_1 = math.log(1 + 2 / E)
    t2i = math.log(1 + 1 / E)
    masked_i2t = (math.log(1 + 1 / E) + image_1) / 2
    unmasked_i2t = (math.log(2 + 1 / E) + image_1) / 2
    assert masked.item() == pytest.approx((masked_i2t + t2i) / 2)
    assert unmasked.item() == pytest.approx((unmasked_i2t + t2i) / 2)


def test_the_contrastive_loss_scales_the_cosines_by_the_temperature():
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    known = torch.eye(2, dtype=torch.bool)

    loss = contrastive_loss(img, img.clone(), known, torch.tensor(3.0))

    assert loss.item() == pytest.approx(math.log(1 + math.exp(-3)), abs=1e-6)


def test_matches_and_mismatches_each_carry_half_of_the_binary_loss():
    logits = torch.tensor([2.0, -1.0, 0.0, 3.0])
    match = torch.tensor([True, False, False, False])

    loss = balanced_bce(logits, match)

    matches = math.log(1 + math.exp(-2))
    mismatches = (math.log(1 + math.exp(-1)) + math.log(2) + math.log(1 + E**3)) / 3
    assert loss.item() == pytest.approx((matches + mismatches) / 2)


def test_a_batch_of_one_kind_gets_the_whole_binary_loss_not_nan():
    logits = torch.tensor([0.0, 1.0])

    loss = balanced_bce(logits, torch.tensor([False, False]))

    assert loss.item() == pytest.approx((math.log(2) + math.log(1 + E)) / 2)


def test_the_temperature_is_capped_at_a_hundred():
    model = torch.nn.Module()
    model.logit_scale = torch.nn.Parameter(torch.tensor(math.log(1000.0)))
    assert logit_scale(model).item() == pytest.approx(100.0)
    model.logit_scale.data.fill_(math.log(14.0))
    assert logit_scale(model).item() == pytest.approx(14.0)
