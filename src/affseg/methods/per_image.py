"""Unsupervised segmentation of one image by fitting a small network to it.

Three methods share :class:`~affseg.models.per_image_net.PerImageNet`:

- :func:`kanezaki_hierarchy` (Kanezaki 2018): cross-entropy on the network's argmax labels
  refined by a majority vote inside SLIC superpixels;
- :func:`kim_hierarchy` (Kim, Kanezaki & Tanaka 2020): ``mu_sim`` x cross-entropy on the
  argmax labels + ``mu_con`` x continuity loss (mean L1 spatial difference of the response);
- :func:`mmt_hierarchy` (Mutual Mean-Teaching, Wu et al.): two networks with different
  initialisations, each with an exponential-moving-average "mean" copy; each network is
  trained on the argmax labels of the *other* mean network, mapped into its own label space
  by Hungarian matching on the label-overlap matrix (:func:`align_labels`), plus
  ``beta`` x TV loss of its response.

All run SGD (lr 0.1, momentum 0.9) on the image shrunk to ``max_side`` pixels on its longer
side (input: RGB, by default with frozen backbone feature channels, ``input``), stop after
``max_iter`` iterations or once the label count drops to ``min_labels`` (or
``target_segments`` if given), and upsample the final response bilinearly to the image size
before the argmax. By default (``min_area``) the label classes are then split into
connected segments and tiny ones merged; ``min_area=None`` keeps the label classes.
Optionally (``merge``, off by default) adjacent segments are then merged deterministically
by colour (:mod:`affseg.grouping.label_merging`).

References
----------
.. [1] Z. Wu, L. Guo, H. Zhang and D. Xu, "Unsupervised Image Segmentation using Mutual
   Mean-Teaching".
.. [2] W. Kim, A. Kanezaki and M. Tanaka, "Unsupervised learning of image segmentation based on
   differentiable feature clustering", IEEE Transactions on Image Processing, 2020.
.. [3] A. Kanezaki, "Unsupervised image segmentation by backpropagation", ICASSP 2018.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from skimage.segmentation import slic
from torch import nn

from affseg.errors import InputError
from affseg.grouping.hierarchy import Hierarchy
from affseg.grouping.relabel import absorb_small, sequential
from affseg.models.per_image_net import PerImageNet, argmax_labels, input_tensor


@dataclass(frozen=True)
class PerImageOptions:
    """Options shared by :func:`mmt`, :func:`kim` and :func:`kanezaki` (keyword options).

    Defaults chosen for speed on a CPU and by Hungarian pixel accuracy on BSDS500 *val*
    images (the first 5 and images 20-39 of the sorted ids; see BENCHMARKS.md); the papers
    use 100 channels, full resolution, up to 1000 iterations and stop at ``min_labels`` = 3.
    ``target_segments`` = 4 is shared by all three methods (compared at one segment count),
    and so are the input (RGB + 8 PCA components of frozen ImageNet EfficientNet-Lite0
    features: +0.03-0.04 on val[20:40] for mmt) and the output as connected segments of at
    least 1 % of the image (+0.05). The papers' setting: ``input="rgb"``, ``min_area=None``.

    Attributes
    ----------
    channels : int
        ``q``, the number of label channels of the network.
    max_iter, min_labels : int
        Stop after ``max_iter`` iterations or when at most ``min_labels`` labels remain.
    target_segments : int, optional
        Stop as soon as at most this many labels remain (replaces ``min_labels``); the
        final argmax then keeps only the ``target_segments`` most used labels. Default 4;
        None stops at ``min_labels`` as in the papers.
    max_side : int, optional
        Work with the longer image side shrunk to this (None: full resolution).
    coords : float
        Weight of (y, x) coordinate input channels (0: RGB only, as in the papers); see
        :func:`~affseg.models.per_image_net.image_tensor`.
    input : {"rgb", "backbone"}
        Per-pixel input: RGB (the papers) or (default) RGB + ``n_components`` PCA components
        of frozen ImageNet EfficientNet-Lite0 features times ``feature_weight``
        (:func:`~affseg.models.per_image_net.input_tensor`).
    n_components : int
    feature_weight : float
    min_area : float, optional
        None: segments are the label classes (the papers). A fraction of the image area
        (default 0.01): split the classes into 4-connected components and give those
        smaller than ``min_area`` x H x W pixels to the nearest other component.
    snap : int, optional
        Snap the output to about ``snap`` SLIC superpixels (compactness 10) of the
        full-resolution image by a majority vote in each (None: off).
    merge : float, optional
        Deterministic merge stage (None: off): touching output segments are merged while
        ``||mean Lab_a - mean Lab_b|| + merge_edge * mean Lab gradient on their border`` is
        below ``merge`` (:func:`~affseg.grouping.label_merging.merge_adjacent`). 17.5 with
        ``merge_edge`` 0.25 was chosen on BSDS500 val[20:40] (see BENCHMARKS.md).
    merge_edge : float
        Weight of the border edge strength in the merge criterion.
    lr, momentum : float
        SGD settings.

    Examples
    --------
    >>> PerImageOptions().max_side
    96
    >>> PerImageOptions.parse("kim", {"input": "rgb"}).input
    'rgb'
    """

    channels: int = 32
    max_iter: int = 60
    min_labels: int = 3
    target_segments: int | None = 4
    max_side: int | None = 96
    coords: float = 0.0
    input: str = "backbone"
    n_components: int = 8
    feature_weight: float = 1.0
    min_area: float | None = 0.01
    snap: int | None = None
    merge: float | None = None
    merge_edge: float = 0.0
    lr: float = 0.1
    momentum: float = 0.9

    @classmethod
    def parse(cls, method: str, options: dict[str, Any]) -> PerImageOptions:
        """The options of per-image method ``method`` from keyword arguments.

        Raises
        ------
        InputError
            An option the method does not take (the message lists its options).
        """
        names = [f.name for f in fields(cls)]
        bad = sorted(set(options) - set(names))
        if bad:
            known = [k for k in _signature_of(method).parameters if k not in ("image", "seed")]
            raise InputError(
                f"method {method!r} takes no option {', '.join(bad)}; "
                f"its options: {', '.join(known)}"
            )
        return cls(**options)

    @property
    def stop_at(self) -> int:
        """The label count at which the fit stops."""
        return int(self.target_segments if self.target_segments is not None else self.min_labels)


#: The shared defaults as a dict (name -> value).
DEFAULTS: dict[str, Any] = asdict(PerImageOptions())


@dataclass
class PerImageResult:
    """Output of a per-image fit.

    Attributes
    ----------
    labels : ndarray, shape (H, W), int32
        Labels 1..K at the image resolution.
    n_segments : int
        K, the final number of segments (label classes).
    iterations : int
        SGD iterations run.
    seconds : float
        Wall time of the fit.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((24, 32, 3), np.uint8); image[:, 16:] = 255
    >>> res = kim(image, max_iter=2, channels=4, input="rgb")
    >>> res.labels.shape, res.iterations <= 2
    ((24, 32), True)
    """

    labels: np.ndarray
    n_segments: int
    iterations: int
    seconds: float


# ---------------------------------------------------------------------------- helpers


def align_labels(source: np.ndarray, reference: np.ndarray, n_labels: int) -> np.ndarray:
    """Map ``source`` labels into ``reference``'s label space by Hungarian matching.

    The overlap matrix ``C[s, r] = #{pixels: source = s, reference = r}`` (zero-padded to
    ``n_labels`` x ``n_labels``) is matched one-to-one with maximum total overlap
    (``scipy.optimize.linear_sum_assignment``). Source labels left without a partner (more
    labels than the reference uses) take the unused reference labels.

    Parameters
    ----------
    source, reference : ndarray, same shape, integer labels in 0..n_labels-1
    n_labels : int
        Size of both label spaces.

    Returns
    -------
    ndarray, shape (n_labels,), int64
        A permutation ``perm`` of 0..n_labels-1; ``perm[source]`` is source in reference
        labels.

    References
    ----------
    Z. Wu, L. Guo, H. Zhang and D. Xu, "Unsupervised Image Segmentation using Mutual
    Mean-Teaching".

    Examples
    --------
    >>> import numpy as np
    >>> perm = align_labels(np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0]), 2)
    >>> perm.tolist()
    [1, 0]
    """
    s = np.asarray(source).ravel().astype(np.int64)
    r = np.asarray(reference).ravel().astype(np.int64)
    if s.shape != r.shape:
        raise InputError(f"label maps differ in size: {s.size} vs {r.size}")
    if s.size and (min(s.min(), r.min()) < 0 or max(s.max(), r.max()) >= n_labels):
        raise InputError(f"labels must lie in 0..{n_labels - 1}")
    overlap = np.bincount(s * n_labels + r, minlength=n_labels * n_labels)
    rows, cols = linear_sum_assignment(overlap.reshape(n_labels, n_labels), maximize=True)
    perm = np.empty(n_labels, dtype=np.int64)
    perm[rows] = cols
    return perm


@torch.no_grad()
def ema_update(mean_net: nn.Module, net: nn.Module, alpha: float) -> None:
    """``mean <- alpha * mean + (1 - alpha) * net`` for every parameter (buffers copied).

    Parameters
    ----------
    mean_net, net : nn.Module
        Same architecture.
    alpha : float
        In [0, 1].

    References
    ----------
    Z. Wu, L. Guo, H. Zhang and D. Xu, "Unsupervised Image Segmentation using Mutual
    Mean-Teaching".

    Examples
    --------
    >>> import torch
    >>> a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    >>> ema_update(a, b, 0.0)                           # alpha 0: copy
    >>> torch.equal(a.weight, b.weight)
    True
    """
    for pm, p in zip(mean_net.parameters(), net.parameters(), strict=True):
        pm.mul_(alpha).add_(p.detach(), alpha=1.0 - alpha)
    for bm, b in zip(mean_net.buffers(), net.buffers(), strict=True):
        bm.copy_(b)


def ema_alpha(step: int, alpha: float, warmup: bool) -> float:
    """EMA coefficient at ``step`` (0-based): ``min(1 - 1/(step + 1), alpha)`` with warm-up.

    Examples
    --------
    >>> ema_alpha(0, 0.99, warmup=True), ema_alpha(500, 0.99, warmup=True)
    (0.0, 0.99)
    >>> ema_alpha(0, 0.99, warmup=False)
    0.99
    """
    return min(1.0 - 1.0 / (step + 1), alpha) if warmup else alpha


def ensemble_response(r1: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
    """Average of two networks' softmax responses after aligning the second's labels.

    The channels of ``r2`` are permuted into ``r1``'s label space by :func:`align_labels`
    on their argmax label maps, then the two softmax maps are averaged.

    Parameters
    ----------
    r1, r2 : Tensor, shape (1, q, h, w)

    Returns
    -------
    Tensor, shape (1, q, h, w)
        Mean class probabilities in ``r1``'s label space.

    References
    ----------
    Z. Wu, L. Guo, H. Zhang and D. Xu, "Unsupervised Image Segmentation using Mutual
    Mean-Teaching".

    Examples
    --------
    >>> import torch
    >>> r = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    >>> torch.allclose(ensemble_response(r, r), torch.softmax(r, dim=1))
    True
    """
    q = r1.shape[1]
    perm = align_labels(argmax_labels(r2).numpy(), argmax_labels(r1).numpy(), q)
    p2 = torch.empty_like(r2)
    p2[:, torch.from_numpy(perm)] = torch.softmax(r2, dim=1)
    return 0.5 * (torch.softmax(r1, dim=1) + p2)


def _mmt_output(responses: list[torch.Tensor], output: str) -> torch.Tensor:
    """Class probabilities (1, q, h, w) of MMT's mean networks (``output`` as in :func:`mmt`)."""
    if output == "mean1":
        return torch.softmax(responses[0], dim=1)
    return ensemble_response(responses[0], responses[1])


def _average(pred: torch.Tensor | None, new: torch.Tensor, alpha: float, step: int) -> torch.Tensor:
    """EMA of predictions: ``a * pred + (1 - a) * new`` with ``a = ema_alpha(step, alpha)``."""
    if pred is None:
        return new
    a = ema_alpha(step, alpha, True)
    return a * pred + (1.0 - a) * new


def continuity_loss(response: torch.Tensor) -> torch.Tensor:
    """Mean absolute vertical + horizontal difference of a response (Kim 2020; TV, L1).

    Parameters
    ----------
    response : Tensor, shape (1, q, h, w)

    Returns
    -------
    Tensor, scalar

    References
    ----------
    W. Kim, A. Kanezaki and M. Tanaka, "Unsupervised learning of image segmentation based
    on differentiable feature clustering", IEEE Transactions on Image Processing, 2020.

    Examples
    --------
    >>> import torch
    >>> float(continuity_loss(torch.zeros(1, 2, 3, 3)))
    0.0
    """
    dy = (response[:, :, 1:] - response[:, :, :-1]).abs().mean()
    dx = (response[:, :, :, 1:] - response[:, :, :, :-1]).abs().mean()
    return dy + dx


def superpixel_vote(labels: np.ndarray, superpixels: np.ndarray, n_labels: int) -> np.ndarray:
    """Replace every label by the most frequent label of its superpixel (Kanezaki 2018).

    Parameters
    ----------
    labels : ndarray, shape (h, w), int, values 0..n_labels-1
    superpixels : ndarray, shape (h, w), int, values 0..S-1
    n_labels : int

    Returns
    -------
    ndarray, shape (h, w), int64

    References
    ----------
    A. Kanezaki, "Unsupervised image segmentation by backpropagation", ICASSP 2018.

    Examples
    --------
    >>> import numpy as np
    >>> superpixel_vote(np.array([[0, 1, 1, 1]]), np.array([[0, 0, 1, 1]]), 2).tolist()
    [[0, 0, 1, 1]]
    """
    sp = superpixels.ravel().astype(np.int64)
    n_sp = int(sp.max()) + 1
    votes = np.bincount(sp * n_labels + labels.ravel(), minlength=n_sp * n_labels)
    return votes.reshape(n_sp, n_labels).argmax(axis=1)[sp].reshape(labels.shape)


def _finite(v: Any) -> bool:
    return v is not None and math.isfinite(float(v))


#: Value rules of the options shared by mmt, kim and kanezaki: (test, what it must be).
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "lr": (lambda v: _finite(v) and v >= 0, "a finite number >= 0"),
    "momentum": (lambda v: _finite(v) and 0 <= v < 1, "in [0, 1)"),
    "min_area": (lambda v: v is None or (_finite(v) and v >= 0), "None or a finite number >= 0"),
    "snap": (lambda v: v is None or v >= 1, "None or >= 1"),
    "n_superpixels": (lambda v: v is None or v >= 1, "None or >= 1"),
    "compactness": (lambda v: _finite(v) and v > 0, "a positive number"),
    "merge": (lambda v: v is None or _finite(v), "None or a finite number"),
    "merge_edge": (_finite, "a finite number"),
    "coords": (lambda v: _finite(v) and v >= 0, "a finite number >= 0"),
    "feature_weight": (lambda v: _finite(v) and v >= 0, "a finite number >= 0"),
    "max_side": (lambda v: v is None or v >= 4, "None or >= 4"),
    "n_conv": (lambda v: v >= 1, ">= 1"),
    "beta": (lambda v: _finite(v) and v >= 0, "a finite number >= 0"),
    "mu": (lambda v: _finite(v) and v >= 0, "a finite number >= 0"),
}


def _check_values(values: dict[str, Any]) -> None:
    """Apply :data:`_RULES` to the options present in ``values`` (a method's locals)."""
    for name, (ok, what) in _RULES.items():
        if name in values and not ok(values[name]):
            raise InputError(f"option {name} must be {what}, got {values[name]!r}")


def _check(image: np.ndarray, opt: PerImageOptions) -> None:
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3
            and image.dtype == np.uint8):  # fmt: skip
        raise InputError(
            f"expected an RGB image (H, W, 3) uint8; got {getattr(image, 'shape', None)} "
            f"{getattr(image, 'dtype', type(image).__name__)}"
        )
    if opt.max_iter < 0:
        raise InputError(f"max_iter must be >= 0, got {opt.max_iter}")
    if opt.min_labels < 1:
        raise InputError(f"min_labels must be >= 1, got {opt.min_labels}")
    if opt.channels < 2:
        raise InputError(f"channels must be >= 2, got {opt.channels}")


def _prepare(image: np.ndarray, opt: PerImageOptions) -> torch.Tensor:
    """The network input (1, C, h, w) at the working size."""
    return input_tensor(
        image, opt.max_side, opt.coords, opt.input, opt.n_components, opt.feature_weight
    )


def _finish(
    response: torch.Tensor,
    image: np.ndarray,
    opt: PerImageOptions,
    iterations: int,
    t0: float,
) -> PerImageResult:
    """The one post-processing of all three methods: final labels (:func:`_final_labels`,
    optionally snapped to superpixels), then the optional merge stage."""
    labels = _final_labels(
        response,
        image.shape[:2],
        opt.target_segments,
        opt.min_area,
        _snap_superpixels(image, opt.snap),
    )
    labels = _merge(labels, image, opt.merge, opt.merge_edge)
    return PerImageResult(labels, int(labels.max()), iterations, time.perf_counter() - t0)


def _final_labels(
    response: torch.Tensor,
    shape: tuple[int, int],
    target: int | None = None,
    min_area: float | None = None,
    superpixels: np.ndarray | None = None,
) -> np.ndarray:
    """Argmax of a response upsampled bilinearly to ``shape``, as labels 1..K (H, W).

    With ``target``, the argmax runs over the ``target`` channels that label most pixels
    at the working resolution, so at most ``target`` label classes remain. With
    ``min_area`` (a fraction of the image), the label classes are split into 4-connected
    components and components under ``min_area`` x H x W pixels join the nearest other
    component (:func:`~affseg.methods.baselines.absorb_small`). With ``superpixels``
    (H, W), labels are first replaced by their superpixel's majority label
    (:func:`superpixel_vote`), which snaps segment borders to image edges.
    """
    with torch.no_grad():
        r = response
        if target is not None:
            counts = torch.bincount(argmax_labels(r).ravel(), minlength=r.shape[1])
            keep = torch.argsort(counts, descending=True, stable=True)[: max(1, int(target))]
            r = r[:, keep]
        if r.shape[2:] != shape:
            r = nn.functional.interpolate(r, size=shape, mode="bilinear", align_corners=False)
        lab = argmax_labels(r).numpy()
    if superpixels is not None:
        lab = superpixel_vote(lab, superpixels, int(lab.max()) + 1)
    if min_area is not None:
        return absorb_small(lab, max(1, round(min_area * shape[0] * shape[1])))
    return sequential(lab)


def _snap_superpixels(image: np.ndarray, n: int | None) -> np.ndarray | None:
    """SLIC superpixels (H, W) of the full-resolution image (about ``n``), or None."""
    if n is None:
        return None

    return slic(image, n_segments=int(n), compactness=10.0, start_label=0)


def _merge(
    labels: np.ndarray, image: np.ndarray, merge: float | None, merge_edge: float
) -> np.ndarray:
    """Labels (H, W) merged by :func:`~affseg.grouping.label_merging.merge_adjacent` on CIELAB
    colour (+ ``merge_edge`` x colour gradient) down to threshold ``merge`` (None: as is)."""
    if merge is None:
        return labels
    from affseg.grouping.label_merging import colour_cues, merge_adjacent

    feats, edges = colour_cues(image)
    return merge_adjacent(labels, feats, float(merge), edges=edges, edge_weight=merge_edge)


def _response(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(x)


def _make_net(seed: int, channels: int, n_conv: int, in_channels: int = 3) -> PerImageNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = PerImageNet(in_channels, channels, n_conv)
    return net.to(memory_format=torch.channels_last).train()


def _n_labels(lab: torch.Tensor) -> int:
    return int(torch.unique(lab).numel())


# ---------------------------------------------------------------------------- methods


def _fit_one(
    net: nn.Module,
    x: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    max_iter: int,
    stop_at: int,
    lr: float,
    momentum: float,
) -> int:
    """SGD on one network until ``max_iter`` or at most ``stop_at`` labels remain.

    Parameters
    ----------
    net : nn.Module
        Maps ``x`` (1, C, h, w) to responses (1, q, h, w).
    x : Tensor, shape (1, C, h, w)
    loss_fn : callable
        ``(responses (1, q, h, w), argmax labels (h, w)) -> scalar loss``.

    Returns
    -------
    int
        Iterations run.
    """
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    it = 0
    while it < max_iter:
        it += 1
        r = net(x)
        lab = argmax_labels(r)
        loss = loss_fn(r, lab)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if _n_labels(lab) <= stop_at:
            break
    return it


def kanezaki(
    image: np.ndarray,
    *,
    seed: int = 0,
    n_conv: int = 2,
    n_superpixels: int | None = None,
    compactness: float = 100.0,
    **options: Any,
) -> PerImageResult:
    """Kanezaki (2018): CE on argmax labels refined by a majority vote in SLIC superpixels.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    seed : int
        Seed of the network initialisation.
    n_conv : int
        The number of conv3x3 blocks.
    n_superpixels : int, optional
        SLIC superpixel count at the working resolution; default one per 15 pixels (the
        reference's 10000 on a full 321 x 481 BSDS image).
    compactness : float
        SLIC compactness (reference: 100).
    **options
        The shared options, :class:`PerImageOptions` (``channels``, ``max_iter``,
        ``target_segments``, ``input``, ``min_area``, ``merge``, ...).

    Returns
    -------
    PerImageResult

    References
    ----------
    A. Kanezaki, "Unsupervised image segmentation by backpropagation", ICASSP 2018.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((24, 32, 3), np.uint8); image[:, 16:] = 255
    >>> res = kanezaki(image, max_iter=2, channels=4, input="rgb")
    >>> res.labels.shape, int(res.labels.min())
    ((24, 32), 1)
    """
    opt = PerImageOptions.parse("kanezaki", options)
    _check_values({**locals(), **vars(opt)})
    _check(image, opt)
    t0 = time.perf_counter()
    x = _prepare(image, opt)
    h, w = x.shape[2:]
    small = image
    if (h, w) != image.shape[:2]:
        small = x[0, :3].permute(1, 2, 0).numpy()
        small = (small - small.min()) / max(float(small.max() - small.min()), 1e-6)
    n_sp = max(2, round(h * w / 15)) if n_superpixels is None else int(n_superpixels)
    sp = slic(small, n_segments=n_sp, compactness=compactness, start_label=0,
              channel_axis=-1)  # fmt: skip
    net = _make_net(seed, opt.channels, n_conv, x.shape[1])

    def loss_fn(r: torch.Tensor, lab: torch.Tensor) -> torch.Tensor:
        target = torch.from_numpy(superpixel_vote(lab.numpy(), sp, opt.channels))
        return nn.functional.cross_entropy(r, target[None])

    it = _fit_one(net, x, loss_fn, opt.max_iter, opt.stop_at, opt.lr, opt.momentum)
    return _finish(_response(net, x), image, opt, it, t0)


def kim(
    image: np.ndarray,
    *,
    seed: int = 0,
    n_conv: int = 2,
    mu_sim: float = 1.0,
    mu_con: float = 5.0,
    **options: Any,
) -> PerImageResult:
    """Kim et al. (2020): ``mu_sim`` CE(response, argmax) + ``mu_con`` continuity loss.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    seed : int
        Seed of the network initialisation.
    n_conv : int
        The number of conv3x3 blocks.
    mu_sim, mu_con : float
        The two loss weights (``mu_con`` = 5 as in the reference code's reference-image
        variant; it beat 1 on val).
    **options
        The shared options, :class:`PerImageOptions`.

    Returns
    -------
    PerImageResult

    References
    ----------
    W. Kim, A. Kanezaki and M. Tanaka, "Unsupervised learning of image segmentation based
    on differentiable feature clustering", IEEE Transactions on Image Processing, 2020.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((24, 32, 3), np.uint8); image[:, 16:] = 255
    >>> kim(image, max_iter=2, channels=4, input="rgb").labels.shape
    (24, 32)
    """
    opt = PerImageOptions.parse("kim", options)
    _check_values({**locals(), **vars(opt)})
    _check(image, opt)
    t0 = time.perf_counter()
    x = _prepare(image, opt)
    net = _make_net(seed, opt.channels, n_conv, x.shape[1])

    def loss_fn(r: torch.Tensor, lab: torch.Tensor) -> torch.Tensor:
        return mu_sim * nn.functional.cross_entropy(r, lab[None]) + mu_con * continuity_loss(r)

    it = _fit_one(net, x, loss_fn, opt.max_iter, opt.stop_at, opt.lr, opt.momentum)
    return _finish(_response(net, x), image, opt, it, t0)


def mmt(
    image: np.ndarray,
    *,
    seed: int = 0,
    n_conv: int = 3,
    beta: float = 15.0,
    alpha: float = 0.99,
    warmup: bool = True,
    output: str = "ensemble",
    pred_alpha: float = 0.9,
    **options: Any,
) -> PerImageResult:
    """Mutual Mean-Teaching with Hungarian label alignment.

    Networks 1 and 2 start from seeds ``2 * seed`` and ``2 * seed + 1``; their mean networks
    start as copies. Each iteration: the mean networks label the image (argmax); network 1
    is trained with CE on mean-network 2's labels mapped into network 1's current labels by
    :func:`align_labels`, plus ``beta`` x :func:`continuity_loss`; symmetrically network 2;
    then both mean networks take an EMA step with coefficient :func:`ema_alpha` (``warmup``:
    ``min(1 - 1/(step + 1), alpha)`` as in the original MMT code, else ``alpha``).
    The result (``output="ensemble"``) is the argmax of the mean of both mean networks'
    softmax responses, mean network 2 aligned into mean network 1's labels
    (:func:`ensemble_response`); ``output="mean1"`` uses mean network 1 alone.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    seed : int
    n_conv : int
        ``M``, the number of conv3x3 blocks.
    beta : float
        Weight of the TV (continuity) loss (15, chosen on BSDS500 val images 20-29 over
        2, 5, 10, 15 at this reduced size; the paper does not state its value).
    alpha : float
        EMA coefficient (cap with ``warmup``, the original MMT schedule); 0.99 rather
        than the paper's 0.999 because the fit runs tens, not 1000, iterations (0.99 with
        ``pred_alpha`` 0.9 beat 0.9 by 0.008 on val[20:30], 5 seeds).
    warmup : bool
        Use the warm-up form of the EMA coefficient.
    output : {"ensemble", "mean1"}
        Label the image with both mean networks (default) or mean network 1 only.
    pred_alpha : float
        When > 0, the output probabilities are also averaged over the iterations
        (temporal ensembling: EMA with coefficient ``min(1 - 1/(t + 1), pred_alpha)``
        of the mean networks' output at every iteration t; default 0.9); 0: the last
        output only.
    **options
        The shared options, :class:`PerImageOptions`; the label count checked against
        ``target_segments`` / ``min_labels`` is mean network 1's (input and segments as in
        the paper: ``input="rgb"``, ``min_area=None``).

    Returns
    -------
    PerImageResult

    References
    ----------
    Z. Wu, L. Guo, H. Zhang and D. Xu, "Unsupervised Image Segmentation using Mutual
    Mean-Teaching".

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((24, 32, 3), np.uint8); image[:, 16:] = 255
    >>> res = mmt(image, max_iter=2, channels=4, input="rgb")
    >>> res.labels.shape, res.n_segments >= 1
    ((24, 32), True)
    """
    opt = PerImageOptions.parse("mmt", options)
    _check_values({**locals(), **vars(opt)})
    _check(image, opt)
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"alpha must lie in [0, 1], got {alpha}")
    if not 0.0 <= pred_alpha < 1.0:
        raise InputError(f"pred_alpha must lie in [0, 1), got {pred_alpha}")
    if output not in ("ensemble", "mean1"):
        raise InputError(f"unknown output {output!r}; choose one of: ensemble, mean1")
    t0 = time.perf_counter()
    x = _prepare(image, opt)
    c_in = x.shape[1]
    nets = [_make_net(2 * seed + k, opt.channels, n_conv, c_in) for k in (0, 1)]
    means = [_make_net(2 * seed + k, opt.channels, n_conv, c_in) for k in (0, 1)]
    for m in means:
        m.requires_grad_(False)
    opts = [torch.optim.SGD(n.parameters(), lr=opt.lr, momentum=opt.momentum) for n in nets]
    stop_at = opt.stop_at
    it = 0
    pred: torch.Tensor | None = None  # temporal average of the output probabilities
    stopped = False
    for it in range(1, opt.max_iter + 1):
        with torch.no_grad():
            mean_out = [m(x) for m in means]
            mean_labels = [argmax_labels(r).numpy() for r in mean_out]
            if pred_alpha > 0:
                pred = _average(pred, _mmt_output(mean_out, output), pred_alpha, it - 1)
        if it > 1 and len(np.unique(mean_labels[0])) <= stop_at:
            it -= 1
            stopped = True
            break
        for k in (0, 1):
            r = nets[k](x)
            own = argmax_labels(r).numpy()
            other = mean_labels[1 - k]
            perm = align_labels(other, own, opt.channels)
            target = torch.from_numpy(perm[other])
            loss = nn.functional.cross_entropy(r, target[None]) + beta * continuity_loss(r)
            opts[k].zero_grad(set_to_none=True)
            loss.backward()
            opts[k].step()
        a = ema_alpha(it, alpha, warmup)
        for m, n in zip(means, nets, strict=True):
            ema_update(m, n, a)
    if pred is not None and stopped:
        response = pred
    else:
        response = _mmt_output([_response(m, x) for m in means], output)
        if pred is not None:
            response = _average(pred, response, pred_alpha, it)
    return _finish(response, image, opt, it, t0)


# ---------------------------------------------------------------------------- registry


def run_per_image(name: str, image: np.ndarray, *, seed: int = 0, **options: Any) -> PerImageResult:
    """Run per-image method ``name`` (``"mmt"``, ``"kim"`` or ``"kanezaki"``).

    Raises
    ------
    InputError
        Unknown method or an option it does not take (the message lists its options).

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((24, 32, 3), np.uint8); image[:, 16:] = 255
    >>> run_per_image("kim", image, max_iter=1, channels=4, input="rgb").labels.shape
    (24, 32)
    >>> run_per_image("kim", image, bogus=1)
    Traceback (most recent call last):
    ...
    affseg.errors.InputError: method 'kim' takes no option bogus; its options: channels, ...
    """
    if name not in _FUNCTIONS:
        raise InputError(f"unknown per-image method {name!r}; choose one of: mmt, kim, kanezaki")
    fn = _FUNCTIONS[name]
    known = [k for k in _signature_of(name).parameters if k not in ("image", "seed")]
    bad = sorted(set(options) - set(known))
    if bad:
        raise InputError(
            f"method {name!r} takes no option {', '.join(bad)}; its options: {', '.join(known)}"
        )
    return fn(image, seed=seed, **options)


def kanezaki_hierarchy(image: np.ndarray, *, seed: int = 0, **options: Any) -> Hierarchy:
    """:func:`kanezaki` as a one-level :class:`Hierarchy` (registry method ``kanezaki``).

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((24, 32, 3), np.uint8); image[:, 16:] = 255
    >>> kanezaki_hierarchy(image, max_iter=2, channels=4, input="rgb").n_segments[0] >= 1
    True
    """
    return Hierarchy.flat(run_per_image("kanezaki", image, seed=seed, **options).labels)


def kim_hierarchy(image: np.ndarray, *, seed: int = 0, **options: Any) -> Hierarchy:
    """:func:`kim` as a one-level :class:`Hierarchy` (registry method ``kim``).

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((24, 32, 3), np.uint8); image[:, 16:] = 255
    >>> kim_hierarchy(image, max_iter=2, channels=4, input="rgb").n_segments[0] >= 1
    True
    """
    return Hierarchy.flat(run_per_image("kim", image, seed=seed, **options).labels)


def mmt_hierarchy(image: np.ndarray, *, seed: int = 0, **options: Any) -> Hierarchy:
    """:func:`mmt` as a one-level :class:`Hierarchy` (registry method ``mmt``).

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((24, 32, 3), np.uint8); image[:, 16:] = 255
    >>> mmt_hierarchy(image, max_iter=2, channels=4, input="rgb").n_segments[0] >= 1
    True
    """
    return Hierarchy.flat(run_per_image("mmt", image, seed=seed, **options).labels)


def _full_signature(fn: Callable[..., Any]) -> inspect.Signature:
    """``fn``'s signature with ``**options`` replaced by the :class:`PerImageOptions` fields."""
    sig = inspect.signature(fn)
    own = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    shared = [
        inspect.Parameter(
            f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type
        )  # fmt: skip
        for f in fields(PerImageOptions)
    ]
    return sig.replace(parameters=own[:2] + shared + own[2:])


_FUNCTIONS: dict[str, Callable[..., PerImageResult]] = {
    "mmt": mmt,
    "kim": kim,
    "kanezaki": kanezaki,
}
_SIGNATURES = {name: _full_signature(fn) for name, fn in _FUNCTIONS.items()}


def _signature_of(name: str) -> inspect.Signature:
    return _SIGNATURES[name]


# The full option lists are discoverable by inspect.signature (the registry validates
# options against these): the methods' own keywords plus the shared PerImageOptions.
for _name, _fn in _FUNCTIONS.items():
    _fn.__signature__ = _SIGNATURES[_name]  # type: ignore[attr-defined]
_HIERARCHIES = {"mmt": mmt_hierarchy, "kim": kim_hierarchy, "kanezaki": kanezaki_hierarchy}
for _name, _hier in _HIERARCHIES.items():
    _hier.__signature__ = _SIGNATURES[_name].replace(  # type: ignore[attr-defined]
        return_annotation="Hierarchy"
    )
