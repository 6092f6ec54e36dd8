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

The package, one job a module:

- :mod:`~affseg.methods.per_image.options`: the shared options (:class:`PerImageOptions`),
  their validation and the methods' full signatures;
- :mod:`~affseg.methods.per_image.losses`: Hungarian label alignment, EMA, the losses;
- :mod:`~affseg.methods.per_image.loops`: the three training loops (:func:`mmt`,
  :func:`kim`, :func:`kanezaki`);
- :mod:`~affseg.methods.per_image.postprocess`: from the final response to the labels
  (:class:`PerImageResult`);
- this module: :func:`run_per_image` and the registry adapters (``*_hierarchy``).

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
>>> from affseg.methods.per_image import run_per_image
>>> image = np.zeros((24, 32, 3), np.uint8); image[:, 16:] = 255
>>> run_per_image("mmt", image, max_iter=2, channels=4, input="rgb").labels.shape
(24, 32)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from affseg.errors import InputError
from affseg.grouping.hierarchy import Hierarchy
from affseg.methods.per_image.loops import kanezaki, kim, mmt
from affseg.methods.per_image.losses import (
    align_labels,
    continuity_loss,
    ema_alpha,
    ema_update,
    ensemble_response,
)
from affseg.methods.per_image.options import (
    DEFAULTS,
    PerImageOptions,
    adapter_of,
    option_names,
)
from affseg.methods.per_image.postprocess import PerImageResult, superpixel_vote

__all__ = [
    "DEFAULTS",
    "PerImageOptions",
    "PerImageResult",
    "align_labels",
    "continuity_loss",
    "ema_alpha",
    "ema_update",
    "ensemble_response",
    "kanezaki",
    "kanezaki_hierarchy",
    "kim",
    "kim_hierarchy",
    "mmt",
    "mmt_hierarchy",
    "run_per_image",
    "superpixel_vote",
]

#: The per-image methods by name.
_FUNCTIONS: dict[str, Callable[..., PerImageResult]] = {
    "mmt": mmt,
    "kim": kim,
    "kanezaki": kanezaki,
}


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
    known = option_names(name)
    bad = sorted(set(options) - set(known))
    if bad:
        raise InputError(
            f"method {name!r} takes no option {', '.join(bad)}; its options: {', '.join(known)}"
        )
    return fn(image, seed=seed, **options)


# ---------------------------------------------------------------------------- registry
# The adapters take ``**options``; adapter_of gives each the full option list of its
# method (inspect.signature), which the registry checks options against.


@adapter_of("kanezaki")
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


@adapter_of("kim")
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


@adapter_of("mmt")
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
