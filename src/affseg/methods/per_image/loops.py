"""The three per-image training loops: Kanezaki 2018, Kim 2020, Mutual Mean-Teaching.

Each method validates its options (:mod:`~affseg.methods.per_image.options`), builds the
network input at the working size, fits :class:`~affseg.models.per_image_net.PerImageNet`
to the one image by SGD and hands the final response to
:func:`~affseg.methods.per_image.postprocess.finish`. :func:`kanezaki` and :func:`kim` train
one network with their own loss (:func:`fit_one`); :func:`mmt` trains two networks and their
mean networks against each other.

References
----------
.. [1] Z. Wu, L. Guo, H. Zhang and D. Xu, "Unsupervised Image Segmentation using Mutual
   Mean-Teaching".
.. [2] W. Kim, A. Kanezaki and M. Tanaka, "Unsupervised learning of image segmentation based on
   differentiable feature clustering", IEEE Transactions on Image Processing, 2020.
.. [3] A. Kanezaki, "Unsupervised image segmentation by backpropagation", ICASSP 2018.

Examples
--------
>>> import numpy as np
>>> from affseg.methods.per_image.loops import kim
>>> image = np.zeros((24, 32, 3), np.uint8); image[:, 16:] = 255
>>> kim(image, max_iter=1, channels=4, input="rgb").iterations
1
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from skimage.segmentation import slic
from torch import nn

from affseg.errors import InputError
from affseg.methods.per_image.losses import (
    align_labels,
    continuity_loss,
    ema_alpha,
    ema_update,
    ensemble_response,
)
from affseg.methods.per_image.options import (
    PerImageOptions,
    check_image,
    check_values,
    shared_options,
)
from affseg.methods.per_image.postprocess import PerImageResult, finish, superpixel_vote
from affseg.models.per_image_net import PerImageNet, argmax_labels, input_tensor

# ---------------------------------------------------------------------------- shared


def _prepare(image: np.ndarray, opt: PerImageOptions) -> torch.Tensor:
    """The network input (1, C, h, w) at the working size."""
    return input_tensor(
        image, opt.max_side, opt.coords, opt.input, opt.n_components, opt.feature_weight
    )


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


def fit_one(
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
    max_iter, stop_at : int
    lr, momentum : float
        SGD settings.

    Returns
    -------
    int
        Iterations run.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Conv2d(3, 4, 1)
    >>> x = torch.randn(1, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    >>> fit_one(net, x, lambda r, lab: continuity_loss(r), 3, 0, 0.1, 0.9)
    3
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


# ---------------------------------------------------------------------------- methods


@shared_options("kanezaki")
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
        The shared options, :class:`~affseg.methods.per_image.options.PerImageOptions`
        (``channels``, ``max_iter``, ``target_segments``, ``input``, ``min_area``,
        ``merge``, ...).

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
    check_values({**locals(), **vars(opt)})
    check_image(image, opt)
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

    it = fit_one(net, x, loss_fn, opt.max_iter, opt.stop_at, opt.lr, opt.momentum)
    return finish(_response(net, x), image, opt, it, t0)


@shared_options("kim")
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
        The shared options, :class:`~affseg.methods.per_image.options.PerImageOptions`.

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
    check_values({**locals(), **vars(opt)})
    check_image(image, opt)
    t0 = time.perf_counter()
    x = _prepare(image, opt)
    net = _make_net(seed, opt.channels, n_conv, x.shape[1])

    def loss_fn(r: torch.Tensor, lab: torch.Tensor) -> torch.Tensor:
        return mu_sim * nn.functional.cross_entropy(r, lab[None]) + mu_con * continuity_loss(r)

    it = fit_one(net, x, loss_fn, opt.max_iter, opt.stop_at, opt.lr, opt.momentum)
    return finish(_response(net, x), image, opt, it, t0)


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


@shared_options("mmt")
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
    :func:`~affseg.methods.per_image.losses.align_labels`, plus ``beta`` x
    :func:`~affseg.methods.per_image.losses.continuity_loss`; symmetrically network 2; then
    both mean networks take an EMA step with coefficient
    :func:`~affseg.methods.per_image.losses.ema_alpha` (``warmup``:
    ``min(1 - 1/(step + 1), alpha)`` as in the original MMT code, else ``alpha``).
    The result (``output="ensemble"``) is the argmax of the mean of both mean networks'
    softmax responses, mean network 2 aligned into mean network 1's labels
    (:func:`~affseg.methods.per_image.losses.ensemble_response`); ``output="mean1"`` uses
    mean network 1 alone.

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
        The shared options, :class:`~affseg.methods.per_image.options.PerImageOptions`;
        the label count checked against ``target_segments`` / ``min_labels`` is mean
        network 1's (input and segments as in the paper: ``input="rgb"``,
        ``min_area=None``).

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
    check_values({**locals(), **vars(opt)})
    check_image(image, opt)
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
    return finish(response, image, opt, it, t0)
