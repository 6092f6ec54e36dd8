"""HAM refinement of semantic class scores at inference (the HAM paper's segmentation use).

A :class:`~affseg.models.ham.SegRefinePropagation` sees the image and a segmenter's class
probabilities (grid -> image by bilinear resizing) and propagates them with learned
affinities (hyperbolic: HAM; euclidean: its naive twin) at the image resolution divided by
the refiner's ``scale`` (1: the working image; 2, the default of new refiners: half of
it). Refiners are trained by ``affseg train refine`` (:mod:`affseg.train.refine`) on top of
one ``affseg train wsss`` run and are pinned to it: a refiner file stores the sha256 of the
weights file whose class scores it refines, and :func:`load_refiner` refuses another. A
refiner trained jointly with the segmentation head (``--joint``, the default) also stores
that head, which then replaces the run's head whenever the refiner is applied.

Refiner files (``torch.load(weights_only=True)`` safe): ``format`` 2, ``kind``
``"seg_refiner"``, ``config`` (:class:`SegRefinePropagation` arguments), ``classes``,
``num_classes``, ``base_sha256``, ``ndd_sha256``, ``state_dict``, optionally ``scale``
(default 1) and ``seg_state_dict`` (the jointly trained head), and the training
``record`` (its val scores). ``affseg semantic --refine FILE`` applies one.

References
----------
.. [1] Park et al., "Hyperbolic affinity learning for spatial propagation", ICML 2023.

Examples
--------
>>> import torch
>>> net = build_refiner(refiner_config(3, width=4, embed_dim=2, iterations=1))
>>> refine(net, np.zeros((13, 18, 3), np.uint8), torch.full((3, 13, 18), 1 / 3)).shape
torch.Size([3, 13, 18])
>>> refine(net, np.zeros((13, 18, 3), np.uint8), torch.full((3, 6, 9), 1 / 3), scale=2).shape
torch.Size([3, 6, 9])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from affseg.errors import AffsegError

#: The refiner configuration (kernels 3 and 5, 12 iterations, a ranked head, coarse
#: scores re-imposed in proportion to their confidence).
DEFAULT_CONFIG: dict[str, Any] = {
    "geometry": "hyperbolic",
    "k": 3,
    "iterations": 12,
    "width": 16,
    "embed_dim": 16,
    "kernels": (3, 5),
    "head": True,
    "c": 1.0,
    "c_param": "log",
    "reimpose": "confident",
}
#: Default resolution divisor of new refiners (they work at half the working image).
DEFAULT_SCALE = 2
#: Geometries of the affinity: HAM and its naive (euclidean) twin.
GEOMETRIES = ("hyperbolic", "euclidean")


def refiner_config(num_classes: int, geometry: str = "hyperbolic", **changes: Any) -> dict:
    """The refiner configuration for ``num_classes`` classes (and any overrides).

    Examples
    --------
    >>> cfg = refiner_config(11, "euclidean")
    >>> cfg["num_classes"], cfg["geometry"], cfg["kernels"]
    (11, 'euclidean', (3, 5))
    """
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry must be one of {GEOMETRIES}, got {geometry!r}")
    return {**DEFAULT_CONFIG, "num_classes": int(num_classes), "geometry": geometry, **changes}


def pad16(x: torch.Tensor, value: float | None = None) -> torch.Tensor:
    """Pad the last two dims of ``x`` to multiples of 16 (replicate, or constant ``value``).

    Examples
    --------
    >>> pad16(torch.zeros(1, 3, 20, 30)).shape
    torch.Size([1, 3, 32, 32])
    >>> pad16(torch.zeros(1, 5, 7, dtype=torch.long), -1)[0, -1, -1].item()
    -1
    """
    h, w = x.shape[-2:]
    pad = (0, (-w) % 16, 0, (-h) % 16)
    if value is None:
        return F.pad(x, pad, mode="replicate")
    return F.pad(x, pad, value=value)


def grid_to_image(probs: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(C, h, w) grid probabilities -> (C, H, W) by bilinear resizing.

    Examples
    --------
    >>> grid_to_image(torch.rand(3, 2, 3), (16, 24)).shape
    torch.Size([3, 16, 24])
    """
    return F.interpolate(probs[None].float(), size=size, mode="bilinear", align_corners=False)[0]


def build_refiner(config: dict[str, Any]) -> Any:
    """A fresh :class:`~affseg.models.ham.SegRefinePropagation` of a configuration.

    Examples
    --------
    >>> net = build_refiner(refiner_config(21, width=4, embed_dim=2, iterations=1))
    >>> net(torch.zeros(1, 3, 16, 16), torch.full((1, 21, 16, 16), 1 / 21)).shape
    torch.Size([1, 21, 16, 16])
    """
    from affseg.models.ham import SegRefinePropagation

    cfg = dict(config)
    cfg["kernels"] = tuple(cfg["kernels"])
    return SegRefinePropagation(**cfg)


def refiner_size(size: tuple[int, int], scale: int) -> tuple[int, int]:
    """The (h, w) a refiner of resolution divisor ``scale`` works at for an image of ``size``.

    Examples
    --------
    >>> refiner_size((360, 480), 2), refiner_size((13, 18), 2), refiner_size((1, 5), 4)
    ((180, 240), (6, 9), (1, 1))
    """
    return max(1, int(size[0]) // int(scale)), max(1, int(size[1]) // int(scale))


def scaled_rgb(rgb: np.ndarray, scale: int) -> torch.Tensor:
    """(H, W, 3) uint8 image -> (1, 3, h, w) float in [0, 1] at :func:`refiner_size`
    (area averaging: the mean of each ``scale`` x ``scale`` block where ``scale`` divides
    the size, otherwise of the windows ``[floor(i H / h), ceil((i + 1) H / h))``, which
    cover every pixel).

    Examples
    --------
    >>> scaled_rgb(np.full((4, 6, 3), 255, np.uint8), 2).shape
    torch.Size([1, 3, 2, 3])
    """
    x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float() / 255.0
    size = refiner_size(tuple(x.shape[-2:]), scale)
    if size == tuple(x.shape[-2:]):
        return x
    return F.interpolate(x, size=size, mode="area")


@torch.no_grad()
def refine(refiner: Any, rgb: np.ndarray, probs: torch.Tensor, scale: int = 1) -> torch.Tensor:
    """Refine the class probabilities of an (H, W, 3) uint8 image.

    Parameters
    ----------
    refiner : SegRefinePropagation
    rgb : ndarray, shape (H, W, 3), uint8
    probs : Tensor, shape (C, h, w)
        Class probabilities at :func:`refiner_size` ``((H, W), scale)``.
    scale : int
        The refiner's resolution divisor (its file's ``scale``).

    Returns
    -------
    Tensor, shape (C, h, w)

    Examples
    --------
    >>> net = build_refiner(refiner_config(21, width=4, embed_dim=2, iterations=1))
    >>> p = torch.full((21, 13, 18), 1 / 21)
    >>> refine(net, np.zeros((13, 18, 3), np.uint8), p).shape
    torch.Size([21, 13, 18])
    """
    x = scaled_rgb(rgb, scale)
    h, w = x.shape[-2:]
    if tuple(probs.shape[-2:]) != (h, w):
        raise ValueError(f"probabilities of size {tuple(probs.shape[-2:])}; expected {(h, w)}")
    out = refiner.eval()(pad16(x), pad16(probs[None].float()))
    return out[0, :, :h, :w]


def refiner_head(blob: dict[str, Any], seg: Any) -> Any:
    """The segmentation head a refiner file goes with: the head trained jointly with it
    (``seg_state_dict``), on ``seg``'s configuration, or ``seg`` itself.

    Examples
    --------
    >>> from affseg.models.wsss_net import SegHead
    >>> seg = SegHead(num_classes=3, dim=8, hidden=8, levels={"f8": 4})
    >>> refiner_head({}, seg) is seg
    True
    >>> joint = refiner_head({"seg_state_dict": seg.state_dict()}, seg)
    >>> joint is seg, joint.training
    (False, False)
    """
    state = blob.get("seg_state_dict")
    if state is None:
        return seg
    from affseg.models.wsss_net import SegHead

    head = SegHead(**seg.config)
    try:
        head.load_state_dict(state)
    except (RuntimeError, KeyError) as exc:
        raise AffsegError(
            f"the refiner's segmentation head does not fit the weights: {exc}"
        ) from None
    return head.eval()


def load_refiner(path: str | Path, base_sha256: str | None = None) -> tuple[Any, dict]:
    """A refiner of ``affseg train refine`` and its file's content.

    Parameters
    ----------
    path : path-like
        The refiner file.
    base_sha256 : str, optional
        sha256 of the semantic weights whose scores will be refined: a refiner trained on
        another file's scores is refused.

    Returns
    -------
    net : SegRefinePropagation
        In eval mode.
    blob : dict
        The file's content (``config``, ``classes``, ``record``, ...).

    Raises
    ------
    AffsegError
        Missing or unreadable file, not a refiner, or trained on other weights.

    Examples
    --------
    >>> net, blob = load_refiner("runs/camvid/sup0/ham_hyperbolic_s0.pt")  # doctest: +SKIP
    >>> blob["classes"][:2]                                                # doctest: +SKIP
    ['Sky', 'Building']
    """
    p = Path(path)
    if not p.is_file():
        raise AffsegError(f"refiner not found: {p} (train one with `affseg train refine`)")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise AffsegError(f"cannot read refiner {p}: {exc}") from None
    if not isinstance(blob, dict) or blob.get("kind") != "seg_refiner" or "state_dict" not in blob:
        raise AffsegError(f"{p} is not a refiner file of `affseg train refine`")
    scale = blob.get("scale", 1)
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise AffsegError(f"refiner {p} has an invalid scale {scale!r}")
    if base_sha256 is not None and blob.get("base_sha256") != base_sha256:
        raise AffsegError(
            f"refiner {p} was trained on the scores of other semantic weights (sha256 "
            f"{blob.get('base_sha256')}); these weights have sha256 {base_sha256}"
        )
    net = build_refiner(blob["config"])
    try:
        net.load_state_dict(blob["state_dict"])
    except (RuntimeError, KeyError) as exc:
        raise AffsegError(f"refiner {p} does not match its configuration: {exc}") from None
    return net.eval(), blob
