"""Depth / disparity error metrics over valid pixels.

RMSE, MAE, iRMSE and iMAE (on 1/depth), REL = mean |p - g| / g, and the threshold
accuracies delta_tau = fraction of pixels with max(g/p, p/g) < tau, tau = 1.25, 1.25^2,
1.25^3. Valid pixels: finite ground truth > 0 (and inside an optional mask).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from affseg.errors import InputError


def _as_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def depth_metrics(
    pred: Any, gt: Any, mask: Any | None = None, eps: float = 1e-8
) -> dict[str, float]:
    """Error metrics of a depth (or disparity) prediction.

    Parameters
    ----------
    pred : array-like, shape (H, W) (any shape equal to ``gt``)
        Predicted depth; values <= 0 are clamped to ``eps`` for the inverse and ratio
        metrics.
    gt : array-like, same shape
        Ground truth; pixels that are not finite or <= 0 are invalid.
    mask : array-like of bool, same shape, optional
        Further restricts the valid pixels.
    eps : float
        Floor of the prediction in 1/p and p/g.

    Returns
    -------
    dict
        ``rmse``, ``mae``, ``irmse``, ``imae``, ``rel``, ``delta1`` (1.25), ``delta2``
        (1.25^2), ``delta3`` (1.25^3), ``n_valid``.

    Examples
    --------
    >>> import numpy as np
    >>> m = depth_metrics(np.array([1.0, 2.0, 4.0]), np.array([1.0, 2.0, 2.0]))
    >>> round(m["rmse"], 4), round(m["mae"], 4), round(m["delta1"], 4), m["n_valid"]
    (1.1547, 0.6667, 0.6667, 3)
    """
    p = _as_array(pred)
    g = _as_array(gt)
    if p.shape != g.shape:
        raise InputError(f"prediction has shape {p.shape} but ground truth has {g.shape}")
    valid = np.isfinite(g) & (g > 0)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != g.shape:
            raise InputError(f"mask has shape {m.shape}; expected {g.shape}")
        valid &= m
    if not valid.any():
        raise InputError("no valid ground-truth pixels (finite and > 0)")
    p, g = p[valid], g[valid]
    if not np.isfinite(p).all():
        raise InputError("prediction holds NaN or inf on valid pixels")
    err = p - g
    pc = np.maximum(p, eps)
    ierr = 1.0 / pc - 1.0 / g
    ratio = np.maximum(g / pc, pc / g)
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "irmse": float(np.sqrt(np.mean(ierr**2))),
        "imae": float(np.mean(np.abs(ierr))),
        "rel": float(np.mean(np.abs(err) / g)),
        "delta1": float(np.mean(ratio < 1.25)),
        "delta2": float(np.mean(ratio < 1.25**2)),
        "delta3": float(np.mean(ratio < 1.25**3)),
        "n_valid": int(valid.sum()),
    }
