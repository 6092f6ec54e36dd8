"""spec-diff-net: losses against dense formulas, cache helpers, model, training, weights."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from affseg.errors import InputError
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
    labels = torch.randint(0, 5, (2, 40), generator=g) * 7 + 3  # arbitrary label values
    k = torch.exp(-tau * torch.cdist(emb, emb) ** 2)
    kgt = (labels[:, :, None] == labels[:, None, :]).double()
    cos = (k * kgt).sum((1, 2)) / (
        torch.linalg.norm(k, dim=(1, 2)) * torch.linalg.norm(kgt, dim=(1, 2))
    )
    assert torch.allclose(diffusion_kernel(emb, tau), k, atol=1e-10)
    assert torch.allclose(kernel_cosine(k, labels), cos, atol=1e-12)
    assert torch.allclose(lr_kernel_loss(emb, tau, labels), -cos.mean(), atol=1e-10)


def test_void_nodes_are_left_out_of_the_lr_loss_and_the_hr_loss() -> None:
    # negative labels are void: the cosine equals the one of the labelled sub-kernel
    g = torch.Generator().manual_seed(1)
    emb = torch.randn(1, 30, 4, dtype=torch.float64, generator=g)
    labels = torch.randint(0, 3, (1, 30), generator=g)
    labels[0, ::4] = -1
    keep = labels[0] >= 0
    k = diffusion_kernel(emb, 0.5)
    sub = k[0][keep][:, keep][None]
    assert torch.allclose(kernel_cosine(k, labels), kernel_cosine(sub, labels[:, keep]))
    assert float(kernel_cosine(k, torch.full((1, 30), -1))[0]) == 0.0  # nothing labelled
    # sampling never picks a void segment
    nodes, segs = sample_segment_nodes(labels[0].numpy(), np.random.default_rng(0))
    assert (segs >= 0).all() and (labels[0].numpy()[nodes] == segs).all()
    # HR: void pixels count neither for nor against a row
    fine = torch.tensor([[0, 0, 1, -1]])
    rows = torch.tensor([[[1.0, 1.0, 0.0, 5.0]]])
    assert float(hr_segment_loss(rows, fine, torch.tensor([0]))) == pytest.approx(-1.0)


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
                block = big[k, 8 * i : 8 * i + 8, 8 * j : 8 * j + 8].ravel()
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


# ----------------------------------------------------------------------------- model
#: A small diffusion configuration so that the tests stay fast (the shipped model uses
#: the defaults: k = 17, Ne = 50).
SMALL = {"k": 7, "n_eig": 16, "n_inner": 10, "grad_inner": 2}


@pytest.fixture(scope="module")
def backbone():
    from affseg.backbones import load_backbone

    return load_backbone()


@pytest.fixture(scope="module")
def model(backbone):
    from affseg.models.spec_diff_net import SpecDiffNet

    torch.manual_seed(0)
    return SpecDiffNet(backbone=backbone, **SMALL)


def _two_region_image(h: int = 64, w: int = 96) -> torch.Tensor:
    """(1, 3, h, w): a textured left half and a differently coloured right half."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, h, w, generator=g) * 0.2
    x[:, 0, :, : w // 2] += 0.7
    x[:, 2, :, w // 2 :] += 0.7
    return x.clamp(0, 1)


def test_encode_shapes_and_upsample(model) -> None:
    x = _two_region_image(70, 100)  # not multiples of 16: resized to 64 x 96 inside
    with torch.no_grad():
        out = model.encode(x)
        assert out.grid == (8, 12) and out.image_size == (70, 100)
        n = 8 * 12
        assert out.embedding.shape[:2] == (1, n)
        assert out.features.shape == (1, model.head.out_channels, 8, 12)
        rows = model.similarity_rows(out, [0, 5, n - 1])
        assert rows.shape == (1, 3, n)
        k = model.kernel(out)
        assert torch.allclose(rows[0], k[0, [0, 5, n - 1]], atol=1e-5)
        assert torch.allclose(k[0].diagonal(), torch.ones(n), atol=1e-5)
        up = model.upsample(rows.reshape(1, 3, 8, 12), out)
    assert up.shape == (1, 3, 70, 100)
    assert torch.isfinite(up).all()
    with pytest.raises(InputError):
        model.upsample(rows.reshape(1, 3, 12, 8), out)
    with pytest.raises(InputError):
        model.encode(torch.rand(1, 1, 32, 32))


def test_upsample_preserves_constants(model) -> None:
    x = _two_region_image()
    with torch.no_grad():
        out = model.encode(x)
        up = model.upsample(torch.full((1, 2, *out.grid), 0.25), out)
    assert torch.allclose(up, torch.full_like(up, 0.25), atol=1e-5)


def _tiny_item(model, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """A cache item built from a synthetic image with a two-region annotation."""
    h, w = x.shape[-2:]
    with torch.no_grad():
        feats = model.backbone(x)
    item = {f"f{s}": f[0].half() for s, f in zip((2, 4, 8, 16), feats, strict=True)}
    lab = np.zeros((1, h, w), np.int64)
    lab[:, :, w // 2 :] = 1
    item["grid"] = torch.from_numpy(block_majority(lab, 8).astype(np.int16))
    item["half"] = torch.from_numpy(block_majority(lab, 2).astype(np.int16))
    return item


def test_training_steps_decrease_the_loss(backbone) -> None:
    from affseg.models.spec_diff_net import SpecDiffNet
    from affseg.train.ndd import _param_groups, sample_loss

    torch.manual_seed(0)
    net = SpecDiffNet(backbone=backbone, **SMALL)
    item = _tiny_item(net, _two_region_image())
    opt = torch.optim.Adam(_param_groups(net, 1e-3))
    losses = []
    for step in range(12):
        rng = np.random.default_rng([0, step])
        opt.zero_grad()
        loss, lv, hv = sample_loss(
            net, item, rng, crop=96, use_hr=step >= 6, hr_segments=4, hr_weight=1.0
        )
        loss.backward()
        opt.step()
        losses.append(lv)
        if step >= 6:
            assert -1.0 <= hv <= 0.0
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


def test_weights_round_trip(tmp_path, model) -> None:
    from affseg.models.spec_diff_net import load_pretrained, save_weights

    with torch.no_grad():
        for p in model.head.parameters():
            p.add_(0.01)
    path = save_weights(model, tmp_path / "w.pt", {"steps": 3, "note": "test"})
    blob = torch.load(path, weights_only=True)
    assert blob["record"]["steps"] == 3
    assert blob["config"]["k"] == SMALL["k"] and blob["config"]["n_eig"] == SMALL["n_eig"]
    assert not any(k.startswith("backbone.") for k in blob["state_dict"])
    loaded = load_pretrained(path, backbone=model.backbone)
    for k, v in model.trainable_state_dict().items():
        assert torch.equal(loaded.trainable_state_dict()[k], v), k
    x = _two_region_image()
    with torch.no_grad():
        a, b = model.eval().encode(x), loaded.encode(x)
    assert torch.allclose(a.embedding, b.embedding)


def test_missing_weights_error(tmp_path) -> None:
    from affseg.errors import AffsegError
    from affseg.models.spec_diff_net import load_pretrained

    with pytest.raises(AffsegError, match="weights not found"):
        load_pretrained(tmp_path / "nope.pt")


# ----------------------------------------------------------------------------- CLI
def _fake_bsds(root, n_images: int = 2) -> None:
    """A tiny BSDS500 tree: 48 x 64 photos of two halves, two annotations each."""
    import scipy.io
    from PIL import Image

    for split in ("train", "val"):
        img_dir = root / "BSDS500" / "images" / split
        gt_dir = root / "BSDS500" / "groundTruth" / split
        img_dir.mkdir(parents=True)
        gt_dir.mkdir(parents=True)
        for i in range(n_images):
            x = (_two_region_image(48, 64)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
            Image.fromarray(np.roll(x, 8 * i, axis=1)).save(img_dir / f"{i}.jpg")
            seg = np.ones((48, 64), np.uint16)
            seg[:, 32:] = 2
            seg = np.roll(seg, 8 * i, axis=1)
            cell = np.empty((1, 2), dtype=object)
            for k in range(2):
                cell[0, k] = {"Segmentation": seg, "Boundaries": np.zeros_like(seg)}
            scipy.io.savemat(gt_dir / f"{i}.mat", {"groundTruth": cell})


def test_cli_train_and_resume(tmp_path) -> None:
    import json

    from affseg.cli import train as train_cli
    from affseg.models.spec_diff_net import load_pretrained

    _fake_bsds(tmp_path)
    out = tmp_path / "run"
    parser = argparse.ArgumentParser()
    train_cli.add_parser(parser.add_subparsers())
    common = [
        "train",
        "ndd",
        "--data",
        str(tmp_path),
        "--out",
        str(out),
        "--crop",
        "32",
        "--batch",
        "1",
        "--scales",
        "1.0",
        "--val-images",
        "1",
        "--no-progress",
        "--checkpoint-minutes",
        "0",
        "--window",
        "7",
        "--n-eig",
        "16",
        "--n-inner",
        "10",
    ]
    args = parser.parse_args(common + ["--steps", "2"])
    assert args.func(args) == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]
    assert (out / "cache" / "manifest.json").is_file()
    # resume to 4 steps: continues at step 3, same log file
    args = parser.parse_args(common + ["--steps", "4", "--resume"])
    assert args.func(args) == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert log[-1]["stage"] == 2 and log[-1]["hr_loss"] is not None
    assert all(-1.0 <= r["lr_loss"] <= 0.0 and 0.0 <= r["val_cosine"] <= 1.0 for r in log)
    net = load_pretrained(out / "spec_diff_net.pt")
    assert net.record["steps"] == 4 and net.record["splits"] == ["train"]
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ck["step"] == 4


def test_cli_train_missing_data(tmp_path) -> None:
    from affseg.cli import main

    code = main(
        ["train", "ndd", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--steps", "1"]
    )
    assert code == 2
