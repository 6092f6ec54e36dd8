"""Options of the per-image methods: the shared options, their validation, the signatures.

:class:`PerImageOptions` holds the options that :func:`~affseg.methods.per_image.mmt`,
:func:`~affseg.methods.per_image.kim` and :func:`~affseg.methods.per_image.kanezaki` share
(they take them as ``**options``); :func:`check_values` and :func:`check_image` validate a
method's options and its image. Each method declares its full option list with the
:func:`shared_options` decorator: its own keywords plus the :class:`PerImageOptions`
fields, as one :class:`inspect.Signature` in :data:`SIGNATURES`, which is also what
``inspect.signature`` reports for the method and for its registry adapter
(:func:`adapter_of`). The registry (:func:`affseg.methods.check_options`) and the error
messages list the options from there.

Examples
--------
>>> from affseg.methods.per_image.options import SIGNATURES, PerImageOptions
>>> PerImageOptions(channels=8).stop_at
4
>>> list(SIGNATURES["kim"].parameters)[:3]
['image', 'seed', 'channels']
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

import numpy as np

from affseg.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class PerImageOptions:
    """Options shared by the per-image methods (keyword options of mmt, kim and kanezaki).

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
            raise InputError(
                f"method {method!r} takes no option {', '.join(bad)}; "
                f"its options: {', '.join(option_names(method))}"
            )
        return cls(**options)

    @property
    def stop_at(self) -> int:
        """The label count at which the fit stops."""
        return int(self.target_segments if self.target_segments is not None else self.min_labels)


#: The shared defaults as a dict (name -> value).
DEFAULTS: dict[str, Any] = asdict(PerImageOptions())


# ---------------------------------------------------------------------------- signatures

#: Per-image method name -> its full signature: ``image``, ``seed``, the
#: :class:`PerImageOptions` fields, then the method's own keywords. Filled by
#: :func:`shared_options` when the methods are defined.
SIGNATURES: dict[str, inspect.Signature] = {}


def full_signature(fn: Callable[..., Any]) -> inspect.Signature:
    """``fn``'s signature with ``**options`` replaced by the :class:`PerImageOptions` fields.

    The fields go after the first two parameters (``image``, ``seed``), as keyword-only
    parameters with the fields' defaults and annotations.

    Examples
    --------
    >>> def method(image, *, seed=0, depth=2, **options): ...
    >>> names = list(full_signature(method).parameters)
    >>> names[:4], names[-1]
    (['image', 'seed', 'channels', 'max_iter'], 'depth')
    >>> full_signature(method).parameters["channels"].default
    32
    """
    sig = inspect.signature(fn)
    own = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    shared = [
        inspect.Parameter(
            f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type
        )  # fmt: skip
        for f in fields(PerImageOptions)
    ]
    return sig.replace(parameters=own[:2] + shared + own[2:])


def shared_options(name: str) -> Callable[[F], F]:
    """Decorator of per-image method ``name``: its options are its keywords + the shared ones.

    Records :func:`full_signature` of the method in :data:`SIGNATURES` under ``name`` and
    sets it as the method's ``__signature__``, so that ``inspect.signature`` (and the
    registry's option check, :func:`affseg.methods.check_options`) sees every option.

    Examples
    --------
    >>> @shared_options("example")
    ... def example(image, *, seed=0, depth=2, **options): ...
    >>> "channels" in inspect.signature(example).parameters
    True
    >>> option_names("example")[-1]
    'depth'
    >>> _ = SIGNATURES.pop("example")
    """

    def decorate(fn: F) -> F:
        sig = full_signature(fn)
        SIGNATURES[name] = sig
        fn.__signature__ = sig  # type: ignore[attr-defined]
        return fn

    return decorate


def adapter_of(name: str) -> Callable[[F], F]:
    """Decorator of a registry adapter of per-image method ``name`` (returns a Hierarchy).

    The adapter takes ``(image, *, seed=0, **options)`` and passes them on; its
    ``__signature__`` becomes the method's full signature (:data:`SIGNATURES`) with return
    annotation ``Hierarchy``, so that the registry lists and type-checks the method's
    options. Method ``name`` must be defined (decorated by :func:`shared_options`) first.

    Examples
    --------
    >>> from affseg.methods.per_image import kim_hierarchy
    >>> sig = inspect.signature(kim_hierarchy)
    >>> sig.return_annotation, "mu_con" in sig.parameters
    ('Hierarchy', True)
    """

    def decorate(fn: F) -> F:
        fn.__signature__ = SIGNATURES[name].replace(  # type: ignore[attr-defined]
            return_annotation="Hierarchy"
        )
        return fn

    return decorate


def option_names(name: str) -> list[str]:
    """The options of per-image method ``name`` in signature order (not image or seed).

    Examples
    --------
    >>> from affseg.methods.per_image import mmt
    >>> option_names("mmt")[:2], option_names("mmt")[-1]
    (['channels', 'max_iter'], 'pred_alpha')
    """
    return [k for k in SIGNATURES[name].parameters if k not in ("image", "seed")]


# ---------------------------------------------------------------------------- validation


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


def check_values(values: dict[str, Any]) -> None:
    """Apply the value rules to the options present in ``values`` (a method's locals).

    Raises
    ------
    InputError
        An option outside its range (the message says what it must be).

    Examples
    --------
    >>> check_values({"lr": 0.1, "snap": None, "unrelated": -1})
    >>> check_values({"momentum": 1.0})
    Traceback (most recent call last):
    ...
    affseg.errors.InputError: option momentum must be in [0, 1), got 1.0
    """
    for name, (ok, what) in _RULES.items():
        if name in values and not ok(values[name]):
            raise InputError(f"option {name} must be {what}, got {values[name]!r}")


def check_image(image: np.ndarray, opt: PerImageOptions) -> None:
    """Check the image (RGB (H, W, 3) uint8) and the counts of ``opt``.

    Raises
    ------
    InputError
        Not an RGB uint8 image, or a negative ``max_iter``, ``min_labels`` < 1 or
        ``channels`` < 2.

    Examples
    --------
    >>> check_image(np.zeros((4, 5, 3), np.uint8), PerImageOptions())
    >>> check_image(np.zeros((4, 5), np.uint8), PerImageOptions())
    Traceback (most recent call last):
    ...
    affseg.errors.InputError: expected an RGB image (H, W, 3) uint8; got (4, 5) uint8
    """
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
