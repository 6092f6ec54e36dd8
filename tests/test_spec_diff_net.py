"""spec-diff-net: losses against dense formulas, cache helpers, model, training, weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affseg.models.ndd_losses import (
    diffusion_kernel,
    hr_segment_loss,
    kernel_cosine,
    lr_kernel_loss,
    masked_cosine,
    sample_segment_nodes,
)
from affseg.train.ndd_cache import block_majority, prepare_item, snapped_size


# ----------------------------------------------------------------------------- losses
def test_lr_loss_matches_dense_formula() -> None:
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(2, 40, 6, dtype=torch.float64, generator=g)
    tau = torch.tensor(0.25, dtype=torch.float64)
    labels = torch.randint(0, 5, (2, 40), generator=g) * 7 - 3  # arbitrary label values
    k = torch.exp(-tau * torch.cdist(emb, emb) ** 2)
    kgt = (labels[:, :, None] == labels[:, None, :]).double()
    cos = (k * kgt).sum((1, 2)) / (torch.linalg.norm(k, dim=(1, 2)) *
                                   torch.linalg.norm(kgt, dim=(1, 2)))
    assert torch.allclose(diffusion_kernel(emb, tau), k, atol=1e-10)
    assert torch.allclose(kernel_cosine(k, labels), cos, atol=1e-12)
    assert torch.allclose(lr_kernel_loss(emb, tau, labels), -cos.mean(), atol=1e-10)


def test_lr_loss_is_minus_one_for_a_perfect_kernel() -> None:
    labels = torch.tensor([[0, 0, 1, 1, 1, 2]])
    emb = torch.nn.functional.one_hot(labels, 3).double() * 100.0  # far apart clusters
    assert lr_kernel_loss(emb, 1.0, labels).item() == pytest.approx(-1.0, abs=1e-12)


def test_lr_loss_gradient_flows() -> None:
    emb = torch.randn(1, 20, 4, requires_grad=True)
    tau = torch.tensor(0.5, requires_grad=True)
    lr_kernel_loss(emb, tau, torch.randint(0, 3, (1, 20))).backward()
    assert emb.grad is not None and torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0
    assert tau.grad is not None and torch.isfinite(tau.grad)


def test_hr_loss_matches_direct_cosine() -> None:
    g = torch.Generator().manual_seed(1)
    fine = torch.randint(1, 4, (8, 10), generator=g)
    maps = torch.rand(3, 8, 10, generator=g, dtype=torch.float64)
    segs = torch.tensor([1, 2, 3])
    direct = []
    for m, s in zip(maps, segs, strict=True):
        mask = (fine == s).double().ravel()
        direct.append(float(m.ravel() @ mask / (m.norm() * mask.norm())))
    assert hr_segment_loss(maps, fine, segs).item() == pytest.approx(-np.mean(direct), rel=1e-12)
    masks = torch.stack([fine == s for s in segs])
    assert masked_cosine(masks.double(), masks).numpy() == pytest.approx(np.ones(3))


def test_sample_segment_nodes_one_per_segment() -> None:
    labels = np.array([5, 5, 5, 2, 2, 9, 9, 9, 9, 1])
    rng = np.random.default_rng(0)
    nodes, segs = sample_segment_nodes(labels, rng)
    assert sorted(segs.tolist()) == [1, 2, 5, 9]
    assert (labels[nodes] == segs).all()
    nodes, segs = sample_segment_nodes(labels, rng, max_segments=2)
    assert sorted(segs.tolist()) == [5, 9]  # the two largest
    assert (labels[nodes] == segs).all()


# ----------------------------------------------------------------------------- cache helpers
def test_block_majority() -> None:
    lab = np.array([[[1, 1, 2, 2], [1, 3, 2, 2], [4, 4, 5, 6], [4, 5, 6, 5]]])
    assert block_majority(lab, 2).tolist() == [[[1, 2], [4, 5]]]
    rng = np.random.default_rng(0)
    big = rng.integers(0, 4, (2, 16, 24))
    got = block_majority(big, 8)
    for k in range(2):
        for i in range(2):
            for j in range(3):
                block = big[k, 8 * i:8 * i + 8, 8 * j:8 * j + 8].ravel()
                counts = np.bincount(block, minlength=4)
                assert got[k, i, j] == int(np.argmax(counts))  # ties -> smallest label


def test_prepare_item_sizes_and_flip() -> None:
    assert snapped_size(321, 481) == (320, 480)
    assert snapped_size(321, 481, 0.8) == (256, 384)
    img = np.zeros((50, 70, 3), np.uint8)
    img[:, :35] = 255
    ann = np.zeros((50, 70), np.int32)
    ann[:, 35:] = 1
    x, lab = prepare_item(img, [ann], 1.0, False)
    assert x.shape == (1, 3, 48, 64) and lab.shape == (1, 48, 64)
    xf, labf = prepare_item(img, [ann], 1.0, True)
    assert torch.equal(xf, x.flip(-1))
    assert np.array_equal(labf, lab[:, :, ::-1])
    assert lab[0, :, 0].max() == 0 and lab[0, :, -1].min() == 1
