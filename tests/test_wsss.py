"""Weakly supervised semantic segmentation (seed 001 Sect. 7): modules, training, CLI."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from affseg.cli import main
from affseg.models.wsss_net import (
    CAMNet,
    SegHead,
    WSSSNet,
    diffusion_kernel,
    mil_loss,
    region_mask,
    rfp,
    wsss_loss,
)

LEVELS = {"f8": 40, "f16": 112, "f32": 320, "head": 1280}


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: one torch thread is fastest (and kind to a shared machine)."""
    from affseg.runtime import torch_threads

    with torch_threads(1):
        yield


def _feats(b: int, h: int, w: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sizes = {"f8": (h, w), "f16": (-(-h // 2), -(-w // 2)), "f32": (-(-h // 4), -(-w // 4))}
    sizes["head"] = sizes["f32"]
    return {k: torch.randn(b, c, *sizes[k], generator=g) for k, c in LEVELS.items()}


def test_rfp_equals_dense_definition() -> None:
    rng = np.random.default_rng(0)
    n, d = 7, 3
    emb = rng.normal(size=(n, 4))
    k = np.exp(-0.8 * ((emb[:, None] - emb[None]) ** 2).sum(-1))
    f = rng.normal(size=(n, d))
    m = (k > 0.5).astype(float)
    dense = np.diag(1.0 / m.sum(1)) @ m @ f  # F_M = diag(M 1)^-1 M F
    kt = diffusion_kernel(torch.tensor(emb)[None], 0.8)
    np.testing.assert_allclose(kt[0].numpy(), k, atol=1e-10)
    got = rfp(torch.tensor(f)[None], region_mask(kt, 0.5))[0].numpy()
    np.testing.assert_allclose(got, dense, atol=1e-10)
    # every row pools at least the node itself
    assert np.all(np.diag(m) == 1)


def test_soft_rfp_is_dense_sigmoid_pooling_and_learns_mu() -> None:
    """Soft RFP: logits = diag(S 1)^-1 S (F H + b) with S = sigmoid((K_D - mu) / tau)."""
    net = WSSSNet(dim=8, soft_tau=0.05, mu=0.5).double()
    feats = {k: v.double() for k, v in _feats(1, 4, 6).items()}
    emb = torch.randn(1, 24, 5, generator=torch.Generator().manual_seed(2)).double() * 0.3
    out = net(feats, emb, 0.5)
    k = np.exp(-0.5 * ((emb[0, :, None] - emb[0, None]) ** 2).sum(-1).numpy())
    s = 1.0 / (1.0 + np.exp(-(k - 0.5) / 0.05))
    f = net.adapter(feats, (4, 6)).flatten(2).transpose(1, 2)[0]
    scores = net.pred(f).detach().numpy()
    dense = (s @ scores) / s.sum(1, keepdims=True)
    np.testing.assert_allclose(out["logits"][0].detach().numpy(), dense, atol=1e-8)
    total, _, _ = wsss_loss(out, torch.eye(21, dtype=torch.float64)[[3]])
    total.backward()
    assert net.mu_param is not None and net.mu_param.grad is not None
    assert float(net.mu_param.grad.abs()) > 0.0


def test_pcwap_weights_sum_to_one_per_class() -> None:
    net = WSSSNet(dim=16)
    out = net(_feats(2, 4, 6), torch.randn(2, 24, 5) * 0.3, torch.tensor([0.5, 0.5]))
    w = out["weights"]
    assert w.shape == (2, 24, 21)
    torch.testing.assert_close(w.sum(1), torch.ones(2, 21))
    torch.testing.assert_close(out["p_sg"].sum(-1), torch.ones(2, 24))


def test_mil_term_vanishes_for_perfect_prediction() -> None:
    y = torch.zeros(1, 21)
    y[0, [2, 5]] = 1
    p = torch.zeros(1, 10, 21)
    p[0, :6, 2] = 1
    p[0, 6:, 5] = 1
    assert float(mil_loss(p, y)) < 1e-5
    bad = torch.full((1, 10, 21), 1 / 21)
    assert float(mil_loss(bad, y)) > 0.1


def _synthetic_items(n: int = 8, h: int = 4, w: int = 6) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    items = []
    for i in range(n):
        c = i % 3
        feats = _feats(1, h, w, seed=i)
        feats["head"][0, c] += 3.0  # the class shows in the head features
        lab = torch.zeros(21)
        lab[c] = 1
        item = {k: v[0].half() for k, v in feats.items()}
        item.update(emb=torch.randn(h * w, 5, generator=g) * 0.3, tau=0.5, grid=[h, w])
        item.update(size=[8 * h, 8 * w], labels=lab, id=str(i))
        items.append(item)
    return items


def _args(**kw) -> argparse.Namespace:
    from affseg.train.wsss_args import add_arguments

    p = argparse.ArgumentParser()
    add_arguments(p)
    a = p.parse_args([])
    a.no_progress = True
    for k, v in kw.items():
        setattr(a, k, v)
    return a


@pytest.mark.parametrize("method", ["wsss", "cam"])
def test_few_steps_lower_the_loss(method: str) -> None:
    from affseg.train.wsss_stages import Pool, _batch, weak_model, weak_step

    torch.manual_seed(0)
    items = _synthetic_items()
    args = _args(dim=32, dropout=0.0)
    model = weak_model(method, "full", args)
    pool = Pool(items)
    batch = _batch(pool, list(range(8)))
    with torch.no_grad():
        before = float(weak_step(model, method, batch)["loss"])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(25):
        loss = weak_step(model, method, batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert float(weak_step(model, method, batch)["loss"]) < 0.7 * before


def test_losses_and_heads_shapes() -> None:
    f = _feats(2, 4, 6)
    y = torch.zeros(2, 21)
    y[:, 0] = 1
    for net in (WSSSNet(dim=16, use_rfp=False), WSSSNet(dim=16, share=False)):
        with torch.no_grad():
            total, cls, mil = wsss_loss(net(f, torch.randn(2, 24, 5), 0.5), y)
        assert torch.isfinite(total) and float(total) == pytest.approx(float(cls + mil))
    assert CAMNet(dim=16)(f, (4, 6))["cam"].shape == (2, 24, 21)
    assert SegHead(dim=16, hidden=16)(f, (4, 6)).shape == (2, 21, 4, 6)


COLOURS = [(0, 0, 0), (200, 40, 40), (30, 160, 30), (40, 40, 200), (220, 220, 40)]


def _toy_dataset(
    root: Path,
    k: int = 3,
    n_train: int = 3,
    n_val: int = 2,
    *,
    tags_csv: bool = True,
    uint16: bool = False,
    ignore: int = 255,
    size: tuple[int, int] = (64, 64),
) -> Path:
    """A canonical-layout dataset of K classes: image i shows classes in vertical bands
    (class c in its own colour), masks mark them, a border of ignore pixels; tags.csv
    (train only) lists each train image's classes."""
    rng = np.random.default_rng(k)
    root.mkdir(parents=True, exist_ok=True)
    pal = [COLOURS[c % len(COLOURS)] for c in range(k)]
    lines = [f"class{c} {c * 7 % 256} {c * 13 % 256} {(c * 29 + 1) % 256}" for c in range(k)]
    (root / "classes.txt").write_text("\n".join(lines) + "\n")
    tag_rows = []
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "masks" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            h, w = size
            present = sorted({0, (i + 1) % k, (i + 2) % k}) if k > 2 else [0, 1]
            m = np.zeros((h, w), np.int64)
            for j, c in enumerate(present):
                m[:, j * w // len(present) :] = c
            im = np.array([pal[c] for c in range(k)], np.uint8)[m]
            im = np.clip(im + rng.integers(0, 20, im.shape), 0, 255).astype(np.uint8)
            m[:2] = ignore
            stem = f"{split}{i}"
            Image.fromarray(im).save(root / "images" / split / f"{stem}.png")
            Image.fromarray(m.astype(np.uint16 if uint16 else np.uint8)).save(
                root / "masks" / split / f"{stem}.png"
            )
            if split == "train":
                tag_rows.append(f"{stem}," + ";".join(f"class{c}" for c in present))
    if tags_csv:
        (root / "tags.csv").write_text("\n".join(tag_rows) + "\n")
    return root


def _train_argv(root: Path, out: Path, method: str, cache: Path, *extra: str) -> list[str]:
    return ["train", "wsss", "--data", str(root), "--method", method, "--out", str(out),
            "--cache", str(cache), "--dim", "16", "--weak-steps", "3", "--seg-steps", "3",
            "--batch", "2", "--no-progress", *extra]  # fmt: skip


def test_weak_paths_never_read_pixel_labels(tmp_path: Path, monkeypatch, capsys) -> None:
    """WSSS / CAM training on a dataset of your own runs with every train mask read made to
    raise (tags only); the supervised reference is the one path that reads them. (21
    classes: the HAM refiner below is built for MSRC-21's class count.)"""
    from affseg.data.segdata import SegDataset

    root = _toy_dataset(tmp_path / "toy", k=21)
    rows = [
        "train0," + ";".join(f"class{c}" for c in range(0, 11)),
        "train1," + ";".join(f"class{c}" for c in range(10, 21)),
        "train2,class0;class3",
    ]
    (root / "tags.csv").write_text("\n".join(rows) + "\n")
    read_mask = SegDataset._read_mask

    def guarded(self, path):
        if "train" in Path(path).parts:
            raise AssertionError(f"pixel labels of train read: {path}")
        return read_mask(self, path)

    monkeypatch.setattr(SegDataset, "_read_mask", guarded)
    cache = tmp_path / "cache"
    for method in ("wsss", "cam"):
        assert main(_train_argv(root, tmp_path / method, method, cache)) == 0
        assert "mIoU" in capsys.readouterr().out
        blob = torch.load(tmp_path / method / "weights.pt", weights_only=True)
        assert blob["meta"]["classes"] == [f"class{c}" for c in range(21)]
        assert blob["meta"]["data"]["supervision"] == "image-level tags"
    # HAM refinement of the weak segmenters: trained on pseudo labels, images only
    from affseg.methods.seg_refine import load_refiner
    from affseg.methods.wsss import sha256_of
    from affseg.train import refine

    for method in ("wsss", "cam"):
        run = tmp_path / method
        extra = ["--no-joint", "--cross-fit", "2"] if method == "cam" else []
        argv = ["--run", str(run), "--data", str(root), "--cache", str(cache), "--crop", "32",
                *extra]  # fmt: skip
        assert refine.main(argv) == 0
        net, blob = load_refiner(run / "ham_hyperbolic_s0.pt", sha256_of(run / "weights.pt"))
        assert blob["method"] == method and blob["num_classes"] == 21
        joint = method == "wsss"  # the default: the head trains along, and is stored
        assert set(blob["record"]["val"]) == {"fai", "bilinear", "ham"} | (
            {"head"} if joint else set()
        )
        assert ("seg_state_dict" in blob) == joint and blob["scale"] == 2
    # the fully supervised reference is the one path that reads them, and says so
    with pytest.raises(AssertionError, match="pixel labels of train"):
        main(_train_argv(root, tmp_path / "sup", "supervised", cache))
    assert "reading the pixel masks" in capsys.readouterr().out


def test_pseudo_labels_keep_image_classes() -> None:
    from affseg.methods.wsss import pseudo_labels

    items = _synthetic_items(4)
    net = WSSSNet(dim=16)
    for kind, model in (("wsss", net), ("cam", CAMNet(dim=16))):
        for it, y in zip(items, pseudo_labels(model, kind, items), strict=True):
            assert y.shape == (4, 6)
            assert set(y.unique().tolist()) <= set(torch.nonzero(it["labels"])[:, 0].tolist())


def _error_line(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("affseg: error:")
    return err[0]


def test_semantic_cli_writes_class_maps(tmp_path: Path, capsys) -> None:
    from affseg.methods.wsss import METHODS, weights_dir

    if not (weights_dir() / METHODS["wsss"]).is_file():
        pytest.skip("shipped WSSS weights not present")
    im = np.zeros((60, 90, 3), np.uint8)
    im[:30] = (120, 160, 230)
    im[30:] = (40, 150, 40)
    src = tmp_path / "scene.png"
    Image.fromarray(im).save(src)
    out = tmp_path / "out"
    assert main(["semantic", str(src), "--out", str(out)]) == 0
    classes = np.asarray(Image.open(out / "scene.classes.png"))
    assert classes.shape == (60, 90) and classes.dtype == np.uint8
    assert classes.max() <= 20  # class indices 0..20 in the model's order (building = 0)
    overlay = np.asarray(Image.open(out / "scene.semantic.png"))
    assert overlay.ndim == 3 and overlay.shape[0] >= 60 and overlay.shape[1] > 90
    import affseg

    np.testing.assert_array_equal(affseg.semantic(im), classes)
    from affseg.methods.wsss import DEFAULT_CLASS_FILTER, DEFAULT_FUSE

    explicit = affseg.semantic(im, class_filter=DEFAULT_CLASS_FILTER, fuse=DEFAULT_FUSE)
    np.testing.assert_array_equal(explicit, classes)  # the default is the shipped rule
    # the class filter: CLI and Python API agree
    assert main(["semantic", str(src), "--out", str(out), "--class-filter", "0.1"]) == 0
    filtered = np.asarray(Image.open(out / "scene.classes.png"))
    np.testing.assert_array_equal(affseg.semantic(im, class_filter=0.1), filtered)
    # the segmenter alone (filter and fusion off): CLI and the plain segmenter path agree
    argv = ["semantic", str(src), "--out", str(out), "--class-filter", "0", "--fuse", "0"]
    assert main(argv) == 0
    plain = np.asarray(Image.open(out / "scene.classes.png"))
    from affseg.methods.wsss import extract, segment_item, shipped_segmenter

    np.testing.assert_array_equal(segment_item(shipped_segmenter("wsss"), extract(im)), plain)

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert "cannot decode" in _error_line(capsys, ["semantic", str(bad), "--out", str(out)])
    gray = tmp_path / "gray.png"
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(gray)
    assert "grayscale" in _error_line(capsys, ["semantic", str(gray), "--out", str(out)])
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tiny)
    assert "too small" in _error_line(capsys, ["semantic", str(tiny), "--out", str(out)])
    assert "nothing to label" in _error_line(capsys, ["semantic", "--out", str(out)])
    with pytest.raises(SystemExit):
        main(["semantic", str(src), "--out", str(out), "--method", "bogus"])


def test_network_rfp_is_pooled_features_times_classifier() -> None:
    """PRED after RFP equals softmax(F_M H + b) with F_M = diag(M 1)^-1 M F, densely."""
    net = WSSSNet(dim=8).double()
    feats = {k: v.double() for k, v in _feats(1, 4, 6).items()}
    emb = torch.randn(1, 24, 5, dtype=torch.float64) * 0.5
    out = net(feats, emb, 0.7)
    f = net.adapter(feats, (4, 6)).flatten(2).transpose(1, 2)[0].detach().numpy()
    e = emb[0].numpy()
    m = (np.exp(-0.7 * ((e[:, None] - e[None]) ** 2).sum(-1)) > 0.5).astype(float)
    fm = np.diag(1.0 / m.sum(1)) @ m @ f
    logits = fm @ net.pred.weight.detach().numpy().T + net.pred.bias.detach().numpy()
    np.testing.assert_allclose(out["logits"][0].detach().numpy(), logits, atol=1e-9)


def test_eval_semantic_refuses_bad_options(capsys) -> None:
    msg = _error_line(capsys, ["eval", "--task", "semantic", "--method", "slic"])
    assert "--task semantic takes --method" in msg
    msg = _error_line(capsys, ["eval", "--method", "wsss"])
    assert "add --task semantic" in msg


def test_weights_pinned_to_their_spec_diff_net(tmp_path: Path, monkeypatch) -> None:
    import affseg.methods.wsss as mw
    from affseg.errors import AffsegError

    blob = {"format": 1, "ndd_sha256": "0" * 64, "seg": {}}
    path = tmp_path / "w.pt"
    torch.save(blob, path)
    with pytest.raises(AffsegError, match="another spec-diff-net"):
        mw.load_weights(path)
    monkeypatch.setattr(mw, "NDD_SHA256", "1" * 64)
    mw.pinned_ndd.cache_clear()
    try:
        with pytest.raises(AffsegError, match="sha256 differs"):
            mw.pinned_ndd()
    finally:
        mw.pinned_ndd.cache_clear()


@pytest.mark.slow
def test_eval_semantic_on_val(msrc_dir: Path, tmp_path: Path) -> None:
    import json

    out = tmp_path / "r.json"
    root = str(msrc_dir.parent)
    argv = ["eval", "--task", "semantic", "--data", root, "--limit", "3", "--json", str(out)]
    assert main(argv) == 0
    res = json.loads(out.read_text())
    assert res["images"] == 3 and 0.0 <= res["miou"] <= 100.0 and res["units"] == "percent"
    assert np.asarray(res["confusion"]).shape == (21, 21)
    assert set(res["per_class"]) == set(
        __import__("affseg.data.msrc").data.msrc.MSRC21_CLASS_NAMES[1:]
    )


def test_ham_refiner_keeps_probabilities_and_learns() -> None:
    """A toy scene whose coarse scores are right far from a colour edge and wrong or
    ambiguous near it: training must move the refined labels towards the edge (better than
    the same propagation untrained, which only smooths), and the scores stay distributions.
    (A scene with spatially constant scores could not tell: any propagation keeps them.)"""
    from affseg.methods.seg_refine import refine, refiner_config
    from affseg.train.refine import train_refiner

    cfg = refiner_config(21, width=4, embed_dim=4, iterations=3)
    rng = np.random.default_rng(0)
    data = []
    for _ in range(2):
        x = torch.zeros(1, 3, 32, 32)
        x[:, 0, :, :16] = 1.0  # the edge at column 16: class 0 left, class 3 right
        t = torch.zeros(1, 32, 32, dtype=torch.long)
        t[:, :, 16:] = 3
        p = torch.full((1, 21, 32, 32), 0.01)
        p[:, 0, :, :10], p[:, 3, :, 22:] = 0.8, 0.8  # confident and right far from the edge
        p[:, 0, :, 10:22], p[:, 3, :, 10:22] = 0.4, 0.4
        p[:, 3, :, 10:16], p[:, 0, :, 16:22] = 0.45, 0.45  # slightly wrong near it
        p = p / p.sum(1, keepdim=True)
        data.append({"x": x + 0.05 * torch.from_numpy(rng.random(x.shape)).float(),
                     "p": p.half(), "t": t})  # fmt: skip
    image = (255 * data[0]["x"][0].permute(1, 2, 0)).byte().numpy()
    coarse, target = data[0]["p"][0].float(), data[0]["t"][0]

    def accuracy(epochs: int) -> float:
        args = argparse.Namespace(seed=0, lr=1e-2, epochs=epochs, crop=32)
        net, loss = train_refiner(data, args, config=cfg)
        out = refine(net, image, coarse)
        torch.testing.assert_close(out.sum(0), torch.ones(32, 32), atol=1e-3, rtol=0)  # fp16 in
        assert bool((out >= 0).all())
        assert epochs == 0 or np.isfinite(loss)
        return float((out.argmax(0) == target).float().mean())

    assert float((coarse.argmax(0) == target).float().mean()) == 0.625
    untrained, trained = accuracy(0), accuracy(20)
    assert trained >= untrained + 0.05, (untrained, trained)  # measured 0.75 -> 0.82


def test_class_filter_drops_classes_the_classifier_rejects() -> None:
    from affseg.errors import InputError
    from affseg.methods.wsss import filter_classes, image_class_probs, segment_item, semantic

    items = _synthetic_items(2)
    it = items[0]
    seg = SegHead(dim=8, hidden=8)
    cls = torch.full((21,), 0.01)
    cls[[2, 5]] = torch.tensor([0.9, 0.3])
    ids = segment_item(seg, it, mode="bilinear", class_probs=cls, class_filter=0.1)
    assert set(np.unique(ids).tolist()) <= {2, 5}  # class indices 0..20
    p = filter_classes(torch.rand(21, 4, 6), torch.zeros(21), 0.5)  # only the top class
    assert torch.allclose(p.sum(0), torch.ones(4, 6))
    assert image_class_probs(WSSSNet(dim=8), "wsss", items[1]).shape == (21,)
    with pytest.raises(InputError, match="need method 'wsss' or 'cam'"):
        semantic(np.zeros((64, 64, 3), np.uint8), "supervised", class_filter=0.1)
    with pytest.raises(InputError, match="need method 'wsss' or 'cam'"):
        semantic(np.zeros((64, 64, 3), np.uint8), "supervised", fuse=0.5)
    with pytest.raises(InputError, match=r"fuse must be in \[0, 1\]"):
        semantic(np.zeros((64, 64, 3), np.uint8), "wsss", fuse=1.5)


def test_weak_outputs_match_class_scores_and_classifier() -> None:
    """One pass of the weak network gives the pseudo-label maps and the image classifier."""
    from affseg.methods.wsss import class_scores, image_class_probs, weak_outputs

    it = _synthetic_items(1)[0]
    torch.manual_seed(0)
    for kind, net in (("wsss", WSSSNet(dim=8)), ("cam", CAMNet(dim=8))):
        cls, maps = weak_outputs(net, kind, it)
        assert maps.shape == (21, 4, 6)
        torch.testing.assert_close(cls, image_class_probs(net, kind, it))
        dense = class_scores(net, kind, [it])[0]  # (N, C), nodes in row-major grid order
        torch.testing.assert_close(maps, dense.t().reshape(21, 4, 6))


def test_fuse_scores_is_the_filtered_average() -> None:
    from affseg.methods.wsss import filter_classes, fuse_scores, segment_item

    g = torch.Generator().manual_seed(3)
    p = torch.rand(21, 4, 6, generator=g).softmax(0)
    w = torch.rand(21, 4, 6, generator=g)
    cls = torch.rand(21, generator=g)
    for a in (0.0, 0.3, 1.0):
        q = fuse_scores(p, w, cls, 0.4, a)
        keep = (cls > 0.4).float()
        keep[cls.argmax()] = 1.0
        pf = p * keep[:, None, None] / (p * keep[:, None, None]).sum(0)
        wf = (w + 1e-6) * keep[:, None, None]
        wf = wf / wf.sum(0)
        torch.testing.assert_close(q, (1 - a) * pf + a * wf)
        torch.testing.assert_close(q.sum(0), torch.ones(4, 6))
        assert bool((q[keep == 0] == 0).all())
    torch.testing.assert_close(fuse_scores(p, None, cls, 0.4, 0.0), filter_classes(p, cls, 0.4))
    torch.testing.assert_close(fuse_scores(p), p)  # no filter, no fusion: unchanged
    # the weak maps decide where the segmenter is flat: fuse 1 = the weak argmax
    it = _synthetic_items(1)[0]
    seg = SegHead(dim=8, hidden=8)
    maps = torch.zeros(21, 4, 6)
    maps[7] = 1.0
    ids = segment_item(seg, it, mode="bilinear", weak_probs=maps, fuse=1.0)
    assert set(np.unique(ids).tolist()) == {7}


def test_absence_weights_follow_label_cooccurrence() -> None:
    from affseg.train.wsss_stages import Pool, absence_weights

    # class 1 appears in 5 images, class 0 in 4 of them: P(0 | 1) = 4 / 5, so the one image
    # with class 1 but without class 0 weighs 1 / (1 - 4 / 5) = 5; class 2 is independent
    y = np.array([[1, 1, 0], [1, 1, 1], [1, 1, 0], [1, 1, 1], [0, 1, 0], [0, 0, 1]])
    w = absence_weights(y, cap=10.0)
    cond = np.array([[np.nan if a == b else (y[:, a] * y[:, b]).sum() / y[:, b].sum()
                      for b in range(3)] for a in range(3)])  # fmt: skip
    expect = []
    for row in y:
        top = max((cond[a, b] for b in np.flatnonzero(row) for a in np.flatnonzero(1 - row)),
                  default=0.0)  # fmt: skip
        expect.append(min(10.0, max(1.0, 1.0 / (1.0 - top))))
    np.testing.assert_allclose(w, expect)
    assert w[4] == pytest.approx(5.0)
    np.testing.assert_allclose(absence_weights(y, cap=2.0), np.minimum(expect, 2.0))
    np.testing.assert_array_equal(absence_weights(y, cap=0.0), np.ones(6))
    with pytest.raises(Exception, match="must be"):
        absence_weights(np.ones(3))
    # a weighted pool draws items in proportion to their weights
    items = [{"grid": [2, 3], "f8": torch.zeros(40, 2, 3), "f16": torch.zeros(112, 1, 2),
              "f32": torch.zeros(320, 1, 1), "head": torch.zeros(1280, 1, 1)}
             for _ in range(3)]  # fmt: skip
    pool = Pool(items, weights=np.array([1.0, 1.0, 8.0]))
    rng = np.random.default_rng(0)
    counts = np.bincount([pool.draw(rng, 1)[1][0] for _ in range(2000)], minlength=3)
    np.testing.assert_allclose(counts / 2000, [0.1, 0.1, 0.8], atol=0.03)
    with pytest.raises(Exception, match="positive"):
        Pool(items, weights=np.array([1.0, 0.0, 1.0]))


# ----------------------------------------------------------------------- working side
def test_upsampled_argmax_is_the_bilinear_resize_argmax() -> None:
    """The row-chunked resize picks the classes of F.interpolate(bilinear) at every pixel."""
    import torch.nn.functional as F

    from affseg.methods.wsss import upsampled_argmax

    g = torch.Generator().manual_seed(0)
    for c, (h, w), (big_h, big_w) in ((21, (24, 32), (301, 397)), (3, (5, 7), (64, 9))):
        probs = torch.rand(c, h, w, generator=g).softmax(0)
        ref = F.interpolate(probs[None], size=(big_h, big_w), mode="bilinear")[0].argmax(0)
        got = upsampled_argmax(probs, (big_h, big_w), chunk=c * big_w * 7)  # 7 rows a step
        assert got.shape == (big_h, big_w) and got.dtype == np.int64
        assert (got != ref.numpy()).sum() == 0
    ids = upsampled_argmax(probs, (64, 9), offset=1, dtype=np.uint8)
    assert ids.dtype == np.uint8 and ids.min() >= 1 and ids.max() <= 3


def _shipped_or_skip() -> None:
    from affseg.methods.wsss import METHODS, weights_dir

    if not (weights_dir() / METHODS["wsss"]).is_file():
        pytest.skip("shipped WSSS weights not present")


def test_semantic_works_at_a_bounded_working_side(monkeypatch) -> None:
    """A large image is labelled at the working side (labels at full resolution); an image
    within it is labelled exactly as without a bound."""
    import affseg.methods.wsss as W

    _shipped_or_skip()
    rng = np.random.default_rng(0)
    small = np.zeros((60, 90, 3), np.uint8)
    small[:30], small[30:] = (120, 160, 230), (40, 150, 40)
    small = np.clip(small + rng.integers(0, 10, small.shape), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(W.semantic(small), W.semantic(small, working_side=None))
    big = np.asarray(Image.fromarray(small).resize((450, 300), Image.Resampling.NEAREST))
    seen: list[tuple[int, ...]] = []
    extract = W.extract
    monkeypatch.setattr(W, "extract", lambda im, *a, **k: seen.append(im.shape) or extract(im))
    ids = W.semantic(big, working_side=90)
    assert seen == [(60, 90, 3)]  # the networks saw the working image only
    assert ids.shape == (300, 450) and ids.dtype == np.uint8 and ids.max() <= 20
    # the working image's labels, brought to full resolution, are what a plain resize gives
    work = W.semantic(W.working_rgb(big, 90))
    coarse = np.asarray(Image.fromarray(work).resize((450, 300), Image.Resampling.NEAREST))
    assert (ids == coarse).mean() > 0.9
    with pytest.raises(W.InputError, match="working side must be an integer >= 64"):
        W.semantic(small, working_side=10)


def test_semantic_without_bound_is_refused_before_allocating(monkeypatch) -> None:
    import affseg.methods.wsss as W

    monkeypatch.setenv("AFFSEG_MAX_MEMORY_GB", "1")
    monkeypatch.setattr(W, "extract", lambda *a, **k: pytest.fail("extract ran"))
    im = np.zeros((900, 1200, 3), np.uint8)
    with pytest.raises(W.InputError, match=r"would need about 5\.8 GB, above the limit of 1\.0"):
        W.semantic(im, working_side=None)
    with pytest.raises(W.InputError, match="AFFSEG_MAX_MEMORY_GB"):
        W.semantic(im, working_side=0)
    with pytest.raises(W.InputError, match="class_filter must be in"):
        W.semantic(im, class_filter=float("nan"))


def test_semantic_cli_options_are_checked(tmp_path: Path, capsys) -> None:
    src = tmp_path / "a.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(src)
    out = str(tmp_path / "out")
    for opt, value, needle in (
        ("--class-filter", "nan", "--class-filter must be a number in [0, 1]"),
        ("--class-filter", "-0.5", "--class-filter must be a number in [0, 1]"),
        ("--fuse", "inf", "--fuse must be a number in [0, 1]"),
        ("--working-side", "10", "--working-side must be >= 64"),
    ):
        assert needle in _error_line(capsys, ["semantic", str(src), "--out", out, opt, value])


def test_semantic_cli_reports_and_skips_a_bad_image_of_a_folder(tmp_path: Path, capsys) -> None:
    """Like segment: a failing image of a folder is reported and skipped, exit 1; exit 2 when
    every image failed; a bad file named on the command line stops the run first."""
    _shipped_or_skip()
    folder = tmp_path / "in"
    folder.mkdir()
    good = np.zeros((64, 80, 3), np.uint8)
    good[:32] = (120, 160, 230)
    Image.fromarray(good).save(folder / "a_good.png")
    (folder / "b_bad.png").write_bytes(b"not an image")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "c_tiny.png")
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["semantic", str(folder), "--out", str(out)]) == 1
    res = capsys.readouterr()
    assert "b_bad: FAILED" in res.out and "c_tiny: FAILED" in res.out
    assert "1 labelled, 2 failed of 3" in res.out and res.err == ""
    assert sorted(p.name for p in out.iterdir()) == ["a_good.classes.png", "a_good.semantic.png"]
    (folder / "a_good.png").unlink()
    line = _error_line(capsys, ["semantic", str(folder), "--out", str(out)])
    assert "cannot decode" in line  # the first failure
    # a named bad file: refused before any image is labelled
    line = _error_line(capsys, ["semantic", str(folder / "c_tiny.png"), str(folder / "b_bad.png"),
                                "--out", str(tmp_path / "o2")])  # fmt: skip
    assert "cannot decode" in line and not (tmp_path / "o2" / "c_tiny.classes.png").exists()


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory) -> tuple[Path, Path]:
    """A K = 3 dataset of your own and a `wsss` model trained on it (tiny steps)."""
    from affseg.runtime import torch_threads

    tmp = tmp_path_factory.mktemp("toy")
    root = _toy_dataset(tmp / "data")
    with torch_threads(1):
        assert main(_train_argv(root, tmp / "run", "wsss", tmp / "cache")) == 0
    return root, tmp / "run" / "weights.pt"


def test_weights_describe_themselves(toy_run, capsys) -> None:
    """weights.pt: classes, colours, K, ignore index, method, spec-diff-net sha256, rule,
    training-data fingerprint and val scores; weights_only loadable; `affseg info`."""
    import json

    from affseg.data.segdata import open_dataset
    from affseg.methods.wsss import NDD_SHA256, load_weights

    root, weights = toy_run
    blob = torch.load(weights, map_location="cpu", weights_only=True)
    meta = blob["meta"]
    ds = open_dataset(root)
    assert meta["classes"] == list(ds.classes) and meta["num_classes"] == 3
    assert meta["colours"] == ds.colours.tolist() and meta["ignore_index"] == 255
    assert meta["method"] == "wsss" and meta["ndd_sha256"] == NDD_SHA256
    assert meta["inference"] == {"class_filter": 0.2, "fuse": 0.75, "upsample": "fai"}
    assert meta["data"]["fingerprint"] == ds.fingerprint("train")
    assert meta["data"]["val_fingerprint"] == ds.fingerprint("val")
    assert meta["data"]["num_images"] == 3 and meta["data"]["split"] == "train"
    assert 0.0 <= meta["val"]["miou"] <= 100.0 and meta["val"]["split"] == "val"
    json.dumps(meta)  # JSON-able
    assert load_weights(weights)["meta"] == meta
    capsys.readouterr()
    assert main(["info", str(weights)]) == 0
    text = capsys.readouterr().out
    assert "K = 3" in text and "class2" in text and NDD_SHA256 in text
    assert meta["data"]["fingerprint"] in text
    assert main(["info", str(weights), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["classes"] == meta["classes"]


def test_semantic_and_eval_of_your_own_model(toy_run, tmp_path: Path, capsys) -> None:
    """`affseg semantic --weights`: class indices 0..K-1 (the masks' convention) and an
    overlay in the model's colours, the same as the Python API; `affseg eval --task
    semantic --data` scores it (JSON in percent, per-class names, confusion matrix)."""
    import json

    import affseg
    from affseg.methods.wsss import semantic

    root, weights = toy_run
    src = root / "images" / "val" / "val0.png"
    out = tmp_path / "sem"
    assert main(["semantic", str(src), "--weights", str(weights), "--out", str(out)]) == 0
    classes = np.asarray(Image.open(out / "val0.classes.png"))
    assert classes.dtype == np.uint8 and classes.shape == (64, 64) and classes.max() <= 2
    image = np.asarray(Image.open(src))
    np.testing.assert_array_equal(semantic(image, weights=weights), classes)
    np.testing.assert_array_equal(affseg.semantic(image, weights=str(weights)), classes)
    overlay = np.asarray(Image.open(out / "val0.semantic.png"))
    assert overlay.shape[1] > 64
    js = tmp_path / "r.json"
    argv = ["eval", "--task", "semantic", "--data", str(root), "--split", "val",
            "--weights", str(weights), "--json", str(js)]  # fmt: skip
    assert main(argv) == 0
    res = json.loads(js.read_text())
    assert res["units"] == "percent" and 0.0 <= res["miou"] <= 100.0
    assert set(res["per_class"]) == {"class0", "class1", "class2"}
    conf = np.asarray(res["confusion"])
    assert conf.shape == (3, 3) and conf.sum() == 2 * 62 * 64  # ignore rows left out
    for key in ("pixel_accuracy", "mean_class_accuracy", "images", "classes"):
        assert key in res
    # the eval pixels equal a direct count of prediction vs mask
    from affseg.data.segdata import open_dataset

    ds = open_dataset(root)
    direct = np.zeros((3, 3), np.int64)
    for stem in ds.stems("val"):
        im, m = ds.pair("val", stem)
        keep = m < 3
        np.add.at(direct, (m[keep], semantic(im, weights=weights)[keep]), 1)
    np.testing.assert_array_equal(conf, direct)
    # a model cannot be scored on another class list; MSRC-21 needs its own data
    bad = _toy_dataset(tmp_path / "k2", k=2)
    argv = ["eval", "--task", "semantic", "--data", str(bad), "--split", "val",
            "--weights", str(weights)]  # fmt: skip
    assert "not the model's" in _error_line(capsys, argv)


def test_train_checks_the_data_before_any_work(tmp_path: Path, capsys) -> None:
    """Missing tags, a class no train image carries, a bad option: one error line, and no
    cache or run is made."""
    import shutil

    root = _toy_dataset(tmp_path / "d", k=2)
    shutil.rmtree(root / "masks" / "train")  # a weakly supervised split: tags only ...
    (root / "tags.csv").write_text("train0,class0;class1\ntrain2,class1\n")  # ... train1: none
    cache, out = tmp_path / "cache", tmp_path / "run"
    msg = _error_line(capsys, _train_argv(root, out, "cam", cache))
    assert "train1" in msg and "labels are unknown" in msg
    assert not cache.exists()
    root3 = _toy_dataset(tmp_path / "d3", k=3)
    (root3 / "tags.csv").write_text("train0,class0\ntrain1,class0;class1\ntrain2,class1\n")
    msg = _error_line(capsys, _train_argv(root3, out, "cam", cache))
    assert "class2" in msg and "never sees" in msg
    msg = _error_line(capsys, _train_argv(root3, out, "cam", cache, "--val-split", "test"))
    assert "--val-split 'test'" in msg
    assert not cache.exists()


def test_k30_uint16_masks_and_pairs_of_folders(tmp_path: Path, capsys) -> None:
    """K = 30 classes with uint16 masks and an ignore index of 65535, given as pairs of
    folders (SPLIT=DIR): tags-only weak training, 30-class weights, class maps in range."""
    src = _toy_dataset(tmp_path / "d", k=30, n_train=3, n_val=1, tags_csv=False, uint16=True,
                       ignore=65535)  # fmt: skip
    rows = ["train0," + ";".join(f"class{c}" for c in range(0, 15)),
            "train1," + ";".join(f"class{c}" for c in range(10, 30)),
            "train2,class0;class29"]  # fmt: skip
    (tmp_path / "tags.csv").write_text("\n".join(rows) + "\n")
    argv = ["train", "wsss", "--method", "cam", "--out", str(tmp_path / "run"),
            "--images", f"train={src / 'images' / 'train'}",
            "--images", f"val={src / 'images' / 'val'}",
            "--masks", f"train={src / 'masks' / 'train'}",
            "--masks", f"val={src / 'masks' / 'val'}",
            "--classes", str(src / "classes.txt"), "--ignore-index", "65535",
            "--tags", str(tmp_path / "tags.csv"), "--cache", str(tmp_path / "cache"),
            "--dim", "16", "--weak-steps", "2", "--seg-steps", "2", "--batch", "2",
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    blob = torch.load(tmp_path / "run" / "weights.pt", weights_only=True)
    meta = blob["meta"]
    assert meta["num_classes"] == 30 and meta["ignore_index"] == 65535
    assert meta["data"]["layout"] == "pairs" and meta["val"]["split"] == "val"
    from affseg.methods.wsss import semantic

    im = np.asarray(Image.open(src / "images" / "val" / "val0.png"))
    ids = semantic(im, weights=tmp_path / "run" / "weights.pt")
    assert ids.dtype == np.uint8 and ids.max() < 30


def test_class_index_maps_above_255_classes_are_uint16() -> None:
    from affseg.methods.wsss import class_dtype, segment_item

    assert class_dtype(255) == np.uint8 and class_dtype(256) == np.uint16
    it = {"f8": torch.rand(40, 2, 3), "f16": torch.rand(112, 1, 2),
          "f32": torch.rand(320, 1, 1), "head": torch.rand(1280, 1, 1), "grid": [2, 3],
          "size": [16, 24]}  # fmt: skip
    seg = SegHead(num_classes=300, dim=8, hidden=8)
    with torch.no_grad():
        seg.net[-1].bias[:] = 0
        seg.net[-1].bias[290] = 100.0  # a class index above 255 wins everywhere
    ids = segment_item(seg, it)
    assert ids.dtype == np.uint16 and (ids == 290).all()
    ids = segment_item(seg, it, size=(40, 50))  # the row-chunked path too
    assert ids.dtype == np.uint16 and ids.shape == (40, 50) and (ids == 290).all()


def test_cache_follows_the_data_content(tmp_path: Path) -> None:
    """The cache is keyed by the split's content fingerprint: a changed image rebuilds it."""
    from affseg.data.segdata import open_dataset
    from affseg.train.wsss_cache import build_cache

    root = _toy_dataset(tmp_path / "d", n_train=2)
    ds = open_dataset(root)
    path = build_cache(None, "train", tmp_path / "c", dataset=ds.tags_only("train"),
                       progress=False)  # fmt: skip
    first = torch.load(path, weights_only=True)
    assert first["fingerprint"] == ds.fingerprint("train")
    assert [it["labels"].tolist() for it in first["items"]] == [[1, 1, 1], [1, 0, 1]]
    build_cache(None, "train", tmp_path / "c", dataset=ds, progress=False)
    assert torch.load(path, weights_only=True)["items"][0]["emb"].equal(first["items"][0]["emb"])
    im = np.asarray(Image.open(root / "images" / "train" / "train0.png")).copy()
    im[10:20, 10:20] = 255
    Image.fromarray(im).save(root / "images" / "train" / "train0.png")
    build_cache(None, "train", tmp_path / "c", dataset=open_dataset(root), progress=False)
    again = torch.load(path, weights_only=True)
    assert again["fingerprint"] != first["fingerprint"]
    assert not again["items"][0]["emb"].equal(first["items"][0]["emb"])


def test_shipped_weights_are_described_from_msrc21(tmp_path: Path, capsys) -> None:
    """Weights written before the metadata (format 1, the shipped files) get it from the
    MSRC-21 constants; `affseg info` prints it."""
    from affseg.data.msrc import MSRC21_CLASS_NAMES
    from affseg.methods.wsss import NDD_SHA256, load_weights
    from affseg.train.wsss import save_blob

    seg = SegHead(dim=8, hidden=8)
    val = {"miou": 0.5, "pixel_accuracy": 0.6, "mean_class_accuracy": 0.7}
    path = save_blob(tmp_path / "old.pt", "supervised", "full", None, seg, {"val": val})
    meta = load_weights(path)["meta"]
    assert meta["classes"] == list(MSRC21_CLASS_NAMES[1:]) and meta["num_classes"] == 21
    assert meta["colours"][0] == [128, 0, 0] and meta["ignore_index"] == 255
    assert meta["inference"]["class_filter"] is None and meta["ndd_sha256"] == NDD_SHA256
    assert meta["val"]["miou"] == pytest.approx(50.0)
    assert main(["info", str(path)]) == 0
    assert "building" in capsys.readouterr().out
    assert "not found" in _error_line(capsys, ["info", str(tmp_path / "missing.pt")])
    bad = tmp_path / "bad.pt"
    torch.save({"x": 1}, bad)
    assert "not a weights file" in _error_line(capsys, ["info", str(bad)])


def test_info_help_imports_no_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys\nfrom affseg.cli import main\n"
        "try:\n    main(['info', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'numpy', 'numba') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "[]", run.stdout[-300:]


def test_training_on_large_photos_works_at_the_working_side(tmp_path: Path, capsys) -> None:
    """Photos larger than the working side are cached at it (bounded grid), and val labels
    are scored at the full mask size."""
    from affseg.evaluation.semantic import evaluate
    from affseg.methods.wsss import DEFAULT_WORKING_SIDE
    from affseg.models.wsss_net import SegHead
    from affseg.train.wsss_cache import load_cache

    root = _toy_dataset(tmp_path / "big", k=3, n_train=2, n_val=1, size=(600, 1100))
    cache = tmp_path / "cache"
    assert main(_train_argv(root, tmp_path / "sup", "supervised", cache)) == 0
    assert "mIoU" in capsys.readouterr().out
    (item,) = load_cache(cache, "val")
    assert item["full_size"] == [600, 1100]
    h, w = item["size"]
    assert max(h, w) <= DEFAULT_WORKING_SIDE and abs(w / h - 1100 / 600) < 0.1
    assert tuple(item["grid"]) == (h // 8, w // 8)
    preds: dict = {}
    from affseg.data.segdata import open_dataset

    seg = SegHead(num_classes=3, dim=8, hidden=8)
    evaluate(seg, [item], open_dataset(data=root), "val", predictions=preds)
    assert preds["val0"].shape == (600, 1100)


@pytest.mark.parametrize("joint", [False, True])
def test_refiner_of_your_own_model_trains_and_refines(
    toy_run, tmp_path: Path, capsys, joint: bool
) -> None:
    """`affseg train refine` on a K = 3 run: a refiner pinned to the run's weights; the
    refined labels of `affseg semantic --refine` equal the Python API and the refiner's
    own propagation of the (bilinear) segmenter scores; another model's refiner is refused.
    Joint training (the default) stores its own head, which the refinement then uses, and
    works at half the resolution; the fixed-head refiner works at full resolution."""
    from affseg.methods.seg_refine import grid_to_image, load_refiner, refine, refiner_head
    from affseg.methods.wsss import batch_feats, extract, semantic, semantic_model
    from affseg.train import refine as refine_trainer

    root, weights = toy_run
    out = tmp_path / "ham.pt"
    mode = ["--joint"] if joint else ["--no-joint", "--cross-fit", "2", "--scale", "1"]
    argv = ["--run", str(weights.parent), "--data", str(root), "--crop", "32", "--out",
            str(out), "--geometry", "euclidean", *mode]  # fmt: skip
    assert refine_trainer.main(argv) == 0
    printed = capsys.readouterr().out
    assert "refined (euclidean)" in printed and ("jointly trained head" in printed) == joint
    net, blob = load_refiner(out)
    assert blob["num_classes"] == 3 and blob["config"]["geometry"] == "euclidean"
    assert blob["scale"] == (2 if joint else 1) and ("seg_state_dict" in blob) == joint
    src = root / "images" / "val" / "val0.png"
    image = np.asarray(Image.open(src))
    got = semantic(image, weights=weights, refine=out)
    assert got.shape == image.shape[:2]
    # independently: the head's fused probabilities, resized, propagated, upsampled, argmax
    model = semantic_model(weights=weights)
    head = refiner_head(blob, model["seg"])
    assert (head is model["seg"]) != joint
    if joint:  # the stored head differs from the run's (it was trained)
        before, after = model["seg"].state_dict(), head.state_dict()
        assert any(not torch.equal(before[k], after[k]) for k in before)
    item = extract(image)
    with torch.no_grad():
        p = head(batch_feats([item]), tuple(item["grid"]))[0].softmax(0)
    from affseg.methods.wsss import fuse_scores, upsampled_argmax, weak_outputs

    cls, maps = weak_outputs(model["weak"], "wsss", item)
    rule = model["meta"]["inference"]
    p = fuse_scores(p, maps, cls, rule["class_filter"], rule["fuse"])
    s = blob["scale"]
    small = (image.shape[0] // s, image.shape[1] // s)
    ref = refine(net, image, grid_to_image(p, small), s)
    want = upsampled_argmax(ref, image.shape[:2])
    np.testing.assert_array_equal(got, want)
    cli_out = tmp_path / "sem"
    argv2 = ["semantic", str(src), "--weights", str(weights), "--refine", str(out),
             "--out", str(cli_out)]  # fmt: skip
    assert main(argv2) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(cli_out / "val0.classes.png")), got)
    # a refiner pinned to other weights: one clear line
    argv3 = ["semantic", str(src), "--method", "cam", "--refine", str(out), "--out",
             str(cli_out)]  # fmt: skip
    assert "trained on the scores of other semantic weights" in _error_line(capsys, argv3)


def test_refiner_resolution_is_block_means_and_checked(tmp_path: Path) -> None:
    """A refiner of scale s sees the image as the means of its blocks (s x s where the size
    divides; otherwise the windows [floor(i H / h), ceil((i + 1) H / h)) that cover every
    pixel), needs scores of that size, and a file with a bad scale is one clear error."""
    from affseg.errors import AffsegError
    from affseg.methods.seg_refine import (
        build_refiner,
        load_refiner,
        refine,
        refiner_config,
        refiner_size,
        scaled_rgb,
    )

    rgb = np.random.default_rng(0).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    blocks = rgb[:8, :12].astype(np.float64).reshape(4, 2, 6, 2, 3).mean(axis=(1, 3)) / 255
    got = scaled_rgb(rgb[:8, :12], 2)[0].permute(1, 2, 0).double().numpy()
    np.testing.assert_allclose(got, blocks, atol=1e-6)
    windows = np.empty((4, 6, 3))
    for i in range(4):
        for j in range(6):
            y0, y1 = (i * 9) // 4, -((-(i + 1) * 9) // 4)
            x0, x1 = (j * 13) // 6, -((-(j + 1) * 13) // 6)
            windows[i, j] = rgb[y0:y1, x0:x1].astype(np.float64).mean(axis=(0, 1)) / 255
    got = scaled_rgb(rgb, 2)[0].permute(1, 2, 0).double().numpy()
    np.testing.assert_allclose(got, windows, atol=1e-6)
    assert refiner_size((9, 13), 2) == (4, 6)
    cfg = refiner_config(3, width=4, embed_dim=2, iterations=1)
    net = build_refiner(cfg)
    assert refine(net, rgb, torch.full((3, 4, 6), 1 / 3), scale=2).shape == (3, 4, 6)
    with pytest.raises(ValueError, match=r"expected \(4, 6\)"):
        refine(net, rgb, torch.full((3, 9, 13), 1 / 3), scale=2)
    bad = tmp_path / "bad.pt"
    torch.save({"format": 2, "kind": "seg_refiner", "config": cfg, "scale": 0,
                "state_dict": net.state_dict()}, bad)  # fmt: skip
    with pytest.raises(AffsegError, match="invalid scale 0"):
        load_refiner(bad)


def test_refine_options_are_checked_before_any_work(tmp_path: Path) -> None:
    """Joint training with cross-fitting, and non-positive sizes, are one clear error each,
    raised before the run folder is even read."""
    from affseg.errors import InputError
    from affseg.train import refine as refine_trainer

    run = ["--run", str(tmp_path / "no_such_run")]
    with pytest.raises(InputError, match="use one or the other"):
        refine_trainer.main([*run, "--cross-fit", "10"])
    for opt in ("--scale", "--batch", "--crop"):
        with pytest.raises(InputError, match=f"{opt} must be >= 1"):
            refine_trainer.main([*run, opt, "0"])
    with pytest.raises(InputError, match="--iterations must be >= 0"):
        refine_trainer.main([*run, "--iterations", "-1"])
