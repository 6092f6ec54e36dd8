"""Colour-guided edge-aware smoothing: the fast global smoother (Min et al., TIP 2014).

The one wrapper of OpenCV contrib's ``ximgproc.fastGlobalSmootherFilter`` in affseg: a
weighted-least-squares smoothing whose neighbour weights (affinities) come from the colour
differences of an 8-bit guide, solved by separable 1-D passes. Used as the learned depth
models' initial map (:func:`affseg.models.depth_sr_fast.fgs_smooth`) and by the classical
baselines (:func:`affseg.methods.depth_baselines.fgs_complete`).

References
----------
.. [1] D. Min, S. Choi, J. Lu, B. Ham, K. Sohn and M. N. Do, "Fast Global Image Smoothing
   Based on Weighted Least Squares", IEEE TIP 2014.

Example
-------
>>> import numpy as np
>>> out = fast_global_smoother(np.zeros((4, 5, 3), np.uint8), np.full((4, 5), 2.0), 10.0, 4.0)
>>> out.shape, bool(np.allclose(out, 2.0))
((4, 5), True)
"""

from __future__ import annotations

import numpy as np


def fast_global_smoother(
    guide: np.ndarray, values: np.ndarray, lam: float, sigma: float
) -> np.ndarray:
    """Fast global smoothing of ``values`` guided by the colours of ``guide``.

    Parameters
    ----------
    guide : ndarray, shape (H, W, 3), uint8
    values : ndarray, shape (H, W)
        Converted to float32.
    lam : float
        Smoothness weight (larger: smoother).
    sigma : float
        Colour scale of the neighbour weights (8-bit units).

    Returns
    -------
    ndarray, shape (H, W), float32

    References
    ----------
    D. Min, S. Choi, J. Lu, B. Ham, K. Sohn and M. N. Do, "Fast Global Image Smoothing
    Based on Weighted Least Squares", IEEE TIP 2014.

    Examples
    --------
    >>> import numpy as np
    >>> fast_global_smoother(np.zeros((3, 3, 3), np.uint8), np.eye(3), 1.0, 4.0).dtype
    dtype('float32')
    """
    import cv2

    return cv2.ximgproc.fastGlobalSmootherFilter(
        np.ascontiguousarray(guide, dtype=np.uint8),
        np.ascontiguousarray(values, dtype=np.float32),
        lam,
        sigma,
    )
