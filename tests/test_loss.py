"""InfoNCE with in-batch negatives against a direct computation."""

from __future__ import annotations

import math

import pytest
import torch

from embaug.train import info_nce_loss


def reference_loss(anchors: torch.Tensor, positives: torch.Tensor, tau: float) -> float:
    """-mean_i log( exp(cos(a_i, p_i) / tau) / sum_j exp(cos(a_i, p_j) / tau) ), by hand."""
    a, p = anchors.double().tolist(), positives.double().tolist()

    def cos(u, v):
        dot = sum(x * y for x, y in zip(u, v))
        return dot / math.sqrt(sum(x * x for x in u) * sum(y * y for y in v))

    total = 0.0
    for i in range(len(a)):
        logits = [cos(a[i], p[j]) / tau for j in range(len(p))]
        top = max(logits)
        log_denominator = top + math.log(sum(math.exp(x - top) for x in logits))
        total += -(logits[i] - log_denominator)
    return total / len(a)


@pytest.mark.parametrize(
    ("batch", "dim", "tau", "seed"), [(8, 16, 0.05, 0), (5, 3, 0.5, 1), (16, 32, 1.0, 2)]
)
def test_matches_hand_computation(batch, dim, tau, seed):
    gen = torch.Generator().manual_seed(seed)
    anchors = torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    positives = anchors + 0.7 * torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    loss = info_nce_loss(anchors, positives, tau)
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(reference_loss(anchors, positives, tau), rel=1e-9, abs=1e-9)


def test_float32_matches_too():
    gen = torch.Generator().manual_seed(3)
    anchors, positives = torch.randn(12, 24, generator=gen), torch.randn(12, 24, generator=gen)
    loss = info_nce_loss(anchors, positives, 0.05).item()
    assert loss == pytest.approx(reference_loss(anchors, positives, 0.05), rel=1e-5)


def test_perfectly_aligned_orthogonal_batch_gives_near_zero_loss():
    anchors = torch.eye(8, dtype=torch.float64) * 3.0
    loss = info_nce_loss(anchors, anchors.clone() * 0.5, 0.05).item()
    # diagonal cos 1, off-diagonal cos 0: loss = log(1 + 7 exp(-20)) ~ 1.4e-8
    assert loss == pytest.approx(math.log1p(7 * math.exp(-20)), rel=1e-6)
    assert 0 <= info_nce_loss(anchors.float(), anchors.float(), 0.05).item() < 1e-6


def test_uniform_similarities_give_log_batch_size():
    anchors = torch.ones(6, 4)  # every anchor equally similar to every positive
    assert info_nce_loss(anchors, torch.ones(6, 4), 0.05).item() == pytest.approx(math.log(6), rel=1e-6)


def test_invariant_to_vector_norms_but_not_to_temperature():
    gen = torch.Generator().manual_seed(4)
    anchors, positives = torch.randn(10, 8, generator=gen), torch.randn(10, 8, generator=gen)
    base = info_nce_loss(anchors, positives, 0.1).item()
    scales = torch.rand(10, 1, generator=gen) * 5 + 0.1
    assert info_nce_loss(anchors * scales, positives, 0.1).item() == pytest.approx(base, rel=1e-5)
    assert info_nce_loss(anchors, positives, 0.05).item() != pytest.approx(base, rel=1e-3)


def test_one_direction_only():
    """Anchor -> positive: rows are anchors, so swapping the roles changes the loss in general."""
    gen = torch.Generator().manual_seed(5)
    anchors, positives = torch.randn(7, 5, generator=gen), torch.randn(7, 5, generator=gen)
    forward = info_nce_loss(anchors, positives, 0.2).item()
    backward = info_nce_loss(positives, anchors, 0.2).item()
    assert forward == pytest.approx(reference_loss(anchors, positives, 0.2), rel=1e-5)
    assert backward == pytest.approx(reference_loss(positives, anchors, 0.2), rel=1e-5)
    assert abs(forward - backward) > 1e-3


def test_gradient_flows_to_both_sides():
    gen = torch.Generator().manual_seed(6)
    anchors = torch.randn(4, 6, generator=gen, requires_grad=True)
    positives = torch.randn(4, 6, generator=gen, requires_grad=True)
    info_nce_loss(anchors, positives, 0.05).backward()
    assert anchors.grad is not None and anchors.grad.abs().sum() > 0
    assert positives.grad is not None and positives.grad.abs().sum() > 0
