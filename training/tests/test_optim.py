"""The optimizer, schedule and update step shared by train_mini and finetune."""

from __future__ import annotations

import math

import pytest
import torch

from training.optim import make_optimizer, make_scheduler, update, warmup_cosine


def test_the_learning_rate_warms_up_linearly_then_falls_along_a_cosine():
    assert [warmup_cosine(s, 100, 10) for s in (0, 4, 9)] == [0.1, 0.5, 1.0]
    assert warmup_cosine(10, 100, 10) == 1.0
    assert warmup_cosine(55, 100, 10) == pytest.approx(0.5)
    assert warmup_cosine(100, 100, 10) == 0.0
    assert warmup_cosine(130, 100, 10) == 0.0  # stays at the end, never rises again


def test_the_bundled_models_schedule_ends_at_two_percent_of_the_peak():
    # train_mini: 3,000 steps, 100 of warm-up, a floor of 2%.
    assert warmup_cosine(0, 3000, 100, 0.02) == 0.01
    assert warmup_cosine(100, 3000, 100, 0.02) == 1.0
    assert warmup_cosine(1550, 3000, 100, 0.02) == pytest.approx(0.51)
    quarter = 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi / 4))
    assert warmup_cosine(825, 3000, 100, 0.02) == pytest.approx(quarter)
    assert warmup_cosine(3000, 3000, 100, 0.02) == pytest.approx(0.02)


def test_weight_decay_spares_biases_and_norms_and_frozen_parameters_are_left_out():
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 3), torch.nn.LayerNorm(3), torch.nn.Linear(3, 2)
    )
    model[2].weight.requires_grad_(False)

    optimizer = make_optimizer(model.parameters(), lr=0.01, weight_decay=0.05)

    decay, rest = optimizer.param_groups
    assert [p is model[0].weight for p in decay["params"]] == [True]
    assert {id(p) for p in rest["params"]} == {
        id(model[0].bias),
        id(model[1].weight),
        id(model[1].bias),
        id(model[2].bias),
    }
    assert (decay["weight_decay"], rest["weight_decay"]) == (0.05, 0.0)
    assert decay["betas"] == (0.9, 0.98) and decay["eps"] == 1e-6
    assert decay["lr"] == rest["lr"] == 0.01


def test_update_clips_the_gradient_to_norm_one_and_moves_the_schedule_on():
    weight = torch.nn.Parameter(torch.zeros(4))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    scheduler = make_scheduler(optimizer, total=10, warmup=4)
    assert optimizer.param_groups[0]["lr"] == 0.25

    update((100 * weight).sum(), optimizer, scheduler, [weight])

    # The gradient was 100 per entry (norm 200); clipped, each entry is 0.5,
    # and the step is taken at the warm-up's first learning rate, 0.25.
    assert weight.detach().tolist() == pytest.approx([-0.125] * 4)
    assert optimizer.param_groups[0]["lr"] == 0.5
