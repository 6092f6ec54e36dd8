"""The segmentation methods, one module each, and the registry that names them.

==============  =================================  ========================================
name            module                             what it is
==============  =================================  ========================================
ndd (default)   :mod:`affseg.methods.ndd`          neural diffusion distance (spec-diff-net)
spectral        :mod:`affseg.methods.spectral`     deep spectral clustering + KwikCluster
mmt, kim,       :mod:`affseg.methods.per_image`    unsupervised per-image CNNs (MMT, Kim
kanezaki                                           2020, Kanezaki 2018)
felzenszwalb,   :mod:`affseg.methods.baselines`    classical baselines as hierarchies
slic, ...
==============  =================================  ========================================

Guided depth super-resolution (HAM) is :mod:`affseg.methods.depth_sr`; semantic
segmentation into the MSRC-21 classes (NDD-guided weak supervision, CAM, supervised) is
:mod:`affseg.methods.wsss` (``affseg.semantic``). A method is a
callable ``fn(image, *, seed=0, **options) -> Hierarchy`` taking a validated RGB image
(H, W, 3) uint8; a flat method returns a one-level
:class:`~affseg.grouping.hierarchy.Hierarchy`. Methods are named here as
``"module:function"`` strings and imported on first use, so ``import affseg`` stays light
and a method's heavy dependencies load only when it runs. :func:`check_options` validates
option names and values against the method's signature, once, for the API and the CLI.

Example
-------
>>> from affseg.methods import check_options
>>> check_options("slic", {"compactness": 5.0})
{'compactness': 5.0}
>>> check_options("slic", {"bogus": 1})
Traceback (most recent call last):
...
affseg.errors.InputError: method 'slic' takes no option 'bogus'; its options: compactness, ...
"""

from __future__ import annotations

import ast
import collections.abc
import importlib
import inspect
import math
import numbers
import os
import types
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from affseg.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from affseg.grouping.hierarchy import Hierarchy

#: name -> "module:function"
METHODS: dict[str, str] = {
    "felzenszwalb": "affseg.methods.baselines:felzenszwalb_hierarchy",
    "slic": "affseg.methods.baselines:slic_hierarchy",
    "quickshift": "affseg.methods.baselines:quickshift_hierarchy",
    "ncut": "affseg.methods.baselines:ncut_hierarchy",
    "kmeans": "affseg.methods.baselines:kmeans_hierarchy",
    "ndd": "affseg.methods.ndd:ndd_hierarchy",
    "mmt": "affseg.methods.per_image:mmt_hierarchy",
    "kim": "affseg.methods.per_image:kim_hierarchy",
    "kanezaki": "affseg.methods.per_image:kanezaki_hierarchy",
    "spectral": "affseg.methods.spectral:spectral_hierarchy",
}

#: Semantic segmentation methods of :func:`affseg.methods.wsss.semantic` and their shipped
#: weights files (in ``affseg/weights/``).
SEMANTIC_METHODS: dict[str, str] = {
    "wsss": "wsss_msrc21.pt",
    "cam": "wsss_cam_msrc21.pt",
    "supervised": "wsss_supervised_msrc21.pt",
}
DEFAULT_SEMANTIC_METHOD = "wsss"

#: Methods of depth completion (:mod:`affseg.methods.depth_completion`): learned HAM, its
#: naive twin, and the classical colour-guided interpolation.
DEPTH_COMPLETION_METHODS: tuple[str, ...] = ("ham", "naive", "fgs")

#: The method ``affseg segment`` and :func:`affseg.segment` use when none is named.
DEFAULT_METHOD = "ndd"

#: Parameters every method takes that are not "options".
_RESERVED = ("image", "seed")

#: Default working resolution of :func:`run_method`: a larger image is downscaled so that
#: its longer side is this many pixels, segmented, and its labels upsampled (nearest) back
#: to full resolution. BSDS-sized photos (481 x 321) are untouched. ``working_side=None``
#: lifts the bound (memory and time then grow with the pixel count).
DEFAULT_WORKING_SIDE = 1024

#: Shorter image side (pixels) below which a method cannot work; others need 2 pixels.
#: ndd: its 1/8 feature grid must hold more nodes than its 50 eigenvectors; the per-image
#: CNNs pool twice.
MIN_SIDE: dict[str, int] = {"ndd": 64, "mmt": 4, "kim": 4, "kanezaki": 4}


def min_side(name: str | None) -> int:
    """The smallest shorter side (pixels) that method ``name`` accepts.

    Examples
    --------
    >>> min_side("ndd"), min_side("slic")
    (64, 2)
    """
    return MIN_SIDE.get(DEFAULT_METHOD if name is None else name, 2)


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """``["key=value", ...]`` -> options; values are Python literals where they parse.

    ``--set scales=64,256,1024`` gives a tuple, ``--set sigma=0.5`` a float, anything else a
    string.

    Examples
    --------
    >>> parse_sets(["scales=64,256", "sigma=0.5", "grouping=paper"])
    {'scales': (64, 256), 'sigma': 0.5, 'grouping': 'paper'}

    Raises
    ------
    InputError
        An item without ``=``.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise InputError(f"--set expects key=value, got {item!r}")
        try:
            value: Any = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        out[key] = value
    return out


def get_method(name: str | None) -> Callable[..., Hierarchy]:
    """Resolve a method name to its callable.

    Parameters
    ----------
    name : str or None
        A key of :data:`METHODS`; ``None`` means :data:`DEFAULT_METHOD`.

    Returns
    -------
    callable
        ``fn(image, *, seed=0, **options) -> Hierarchy``.

    Raises
    ------
    InputError
        Unknown name (the message lists the known ones).

    Examples
    --------
    >>> get_method("slic").__name__
    'slic_hierarchy'
    """
    key = DEFAULT_METHOD if name is None else name
    if not isinstance(key, str) or key not in METHODS:
        raise InputError(f"unknown method {key!r}; choose one of: {', '.join(sorted(METHODS))}")
    module, func = METHODS[key].split(":")
    return getattr(importlib.import_module(module), func)


def _hint(fn: Callable[..., Any], param: inspect.Parameter) -> Any:
    """The parameter's annotation as a typing object, or ``Any`` when it cannot be resolved."""
    ann = param.annotation
    if ann is inspect.Parameter.empty:
        return Any
    if isinstance(ann, str):
        target = inspect.unwrap(fn)
        namespace = {**vars(typing), **vars(collections.abc), "os": os}
        namespace.update(getattr(target, "__globals__", {}))
        try:
            return eval(ann, namespace)  # noqa: S307 - our own annotations, not user input
        except Exception:  # noqa: BLE001 - e.g. names imported under TYPE_CHECKING only
            return Any
    return ann


def _conforms(value: Any, hint: Any) -> bool:
    """Whether ``value`` is acceptable for the type ``hint`` (a small runtime type check)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return (
            isinstance(value, numbers.Real)
            and not isinstance(value, bool)
            and not math.isnan(float(value))
        )
    if hint is str:
        return isinstance(value, str)
    if hint in (os.PathLike,) or origin is os.PathLike:
        return isinstance(value, os.PathLike)
    if origin in (tuple, list, collections.abc.Sequence):
        if not isinstance(value, tuple | list) or len(value) == 0:
            return False
        item = args[0] if args else Any
        return all(_conforms(v, item) for v in value)
    return True  # a type this check does not know: the method validates it itself


def _describe(hint: Any) -> str:
    text = str(hint).replace("typing.", "").replace("collections.abc.", "")
    return text.replace("<class '", "").replace("'>", "")


def method_options(name: str | None) -> dict[str, inspect.Parameter]:
    """The options of method ``name`` (its keyword parameters other than image and seed).

    Examples
    --------
    >>> sorted(method_options("felzenszwalb"))
    ['default_scale', 'min_size', 'scales', 'sigma']
    """
    fn = get_method(name)
    params = inspect.signature(fn).parameters
    return {k: p for k, p in params.items() if k not in _RESERVED and p.kind is p.KEYWORD_ONLY}


def check_options(name: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """Validate option names and values of method ``name``; return the options to pass.

    Names must be keyword parameters of the method; values must match their annotated
    types (``int``, ``float``, ``str``, ``bool``, sequences, optionals, literals). A scalar
    given where a sequence is expected becomes a one-element tuple (``--set scales=64``).

    Parameters
    ----------
    name : str or None
        Registry name (``None``: the default method).
    options : dict
        Keyword options, e.g. from ``--set key=value``.

    Returns
    -------
    dict
        The options, with scalars promoted to tuples where a sequence is expected.

    Raises
    ------
    InputError
        An unknown option (the message lists the valid ones) or a value of the wrong type.

    Examples
    --------
    >>> check_options("felzenszwalb", {"scales": 64})      # a scalar where a sequence is expected
    {'scales': (64,)}
    >>> check_options("mmt", {"target_segments": "six"})
    Traceback (most recent call last):
    ...
    affseg.errors.InputError: method 'mmt' option target_segments='six' has the wrong type: ...
    """
    key = DEFAULT_METHOD if name is None else name
    fn = get_method(key)
    known = method_options(key)
    bad = sorted(k for k in options if k not in known)
    if bad:
        listed = ", ".join(repr(b) for b in bad)
        raise InputError(
            f"method {key!r} takes no option {listed}; its options: "
            f"{', '.join(sorted(known)) or 'none'}"
        )
    out: dict[str, Any] = {}
    for k, value in options.items():
        hint = _hint(fn, known[k])
        origin = typing.get_origin(hint)
        seq_hint = [
            a
            for a in ((hint,) if origin not in (typing.Union, types.UnionType) else hint.__args__)
            if typing.get_origin(a) in (tuple, list, collections.abc.Sequence)
        ]
        if seq_hint and isinstance(value, numbers.Real) and not isinstance(value, bool):
            value = (value,)
        if not _conforms(value, hint):
            raise InputError(
                f"method {key!r} option {k}={value!r} has the wrong type: expected "
                f"{_describe(hint)}, got {type(value).__name__}"
            )
        _check_value(key, k, value)
        out[k] = value
    return out


#: Largest magnitude of an integer option (a count, a size, a seed): beyond it no method
#: option means anything, and C code downstream would overflow.
MAX_INT_OPTION = 2**31 - 1

#: Largest Gaussian smoothing (pixels) of a method: beyond it the filter's support exceeds
#: any image the pixel limit admits.
MAX_SIGMA = 1000.0

#: Per method, the options whose values must lie in a range: name -> (low, high,
#: low_inclusive). A sequence option's every item is checked.
OPTION_RANGES: dict[str, dict[str, tuple[float, float, bool]]] = {
    "felzenszwalb": {
        "scales": (0, math.inf, False),
        "sigma": (0, MAX_SIGMA, True),
        "min_size": (0, math.inf, True),
        "default_scale": (0, math.inf, False),
    },
    "slic": {
        "n_segments": (1, 1_000_000, True),
        "default_segments": (1, math.inf, True),
        "sigma": (0, MAX_SIGMA, True),
    },
    "quickshift": {
        "max_dists": (0, math.inf, False),
        "kernel_size": (0, 100, False),
        "sigma": (0, MAX_SIGMA, True),
        "min_size": (0, math.inf, True),
        "default_max_dist": (0, math.inf, False),
    },
    "ncut": {
        "n_superpixels": (1, 10_000, True),
        "num_cuts": (1, 1000, True),
        "compactness": (0, math.inf, False),
        "sigma": (0, math.inf, False),
    },
    "kmeans": {"ks": (1, 1000, True), "n_iter": (1, 1000, True)},
    "ndd": {
        "n_leaves": (2, math.inf, True),
        "max_centres": (1, math.inf, True),
        "leaf_scale": (0, math.inf, False),
    },
    "spectral": {"min_size": (0, math.inf, True)},
}


def _check_value(method: str, name: str, value: Any) -> None:
    """Values every method refuses (non-finite numbers, integers beyond
    :data:`MAX_INT_OPTION`, thread counts beyond :func:`affseg.runtime.max_threads`) and
    the ranges of :data:`OPTION_RANGES`."""
    items = value if isinstance(value, tuple | list) else (value,)
    low, high, inclusive = OPTION_RANGES.get(method, {}).get(name, (-math.inf, math.inf, True))
    for v in items:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            continue
        bad = ""
        x = float(v) if not isinstance(v, numbers.Integral) else int(v)
        if not math.isfinite(x):
            bad = "a finite number"
        elif isinstance(x, int) and abs(x) > MAX_INT_OPTION:
            bad = f"at most {MAX_INT_OPTION} in magnitude"
        elif x < low or x > high or (x == low and not inclusive):
            op = ">=" if inclusive else ">"
            bad = f"{op} {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
        if bad:
            raise InputError(f"method {method!r} option {name}={value!r} must be {bad}")
    if name == "threads" and value is not None:
        from affseg.runtime import check_threads

        check_threads(value, f"method {method!r} option threads")


def run_method(image: np.ndarray, name: str | None = None, **options: Any) -> Hierarchy:
    """Validate ``image`` and the options, then run method ``name`` on it.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8 (or anything :func:`affseg.data.io.as_rgb` takes)
    name : str, optional
        Registry name; default :data:`DEFAULT_METHOD`.
    **options
        ``seed``, ``working_side`` (default :data:`DEFAULT_WORKING_SIDE`; ``None``: no bound) and
        the method's options. An image whose longer side exceeds ``working_side`` is segmented
        at that working resolution and the returned hierarchy is upsampled to the image's
        size (:meth:`~affseg.grouping.hierarchy.Hierarchy.upsampled`).

    Returns
    -------
    Hierarchy

    Raises
    ------
    InputError
        Bad image, seed, ``working_side`` or options; an image smaller than :func:`min_side`.

    Examples
    --------
    >>> from skimage import data
    >>> run_method(data.coffee(), "slic").n_segments[0] > 100
    True
    """
    from affseg.data.io import as_rgb

    seed = options.pop("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    working_side = options.pop("working_side", DEFAULT_WORKING_SIDE)
    key = DEFAULT_METHOD if name is None else name
    fn = get_method(key)
    checked = check_options(key, options)
    rgb = as_rgb(image)
    least = min_side(key)
    if working_side is not None and (
        isinstance(working_side, bool)
        or not isinstance(working_side, numbers.Integral)
        or working_side < least
    ):
        raise InputError(
            f"working_side must be None or an integer >= {least} (method {key!r}), "
            f"got {working_side!r}"
        )
    h, w = rgb.shape[:2]
    if min(h, w) < least:
        raise InputError(
            f"image of {w}x{h} pixels is too small for method {key!r}: its shorter side must "
            f"be at least {least} pixels"
        )
    if working_side is None or max(h, w) <= working_side:
        check_method_memory(key, h, w)
        return fn(rgb, seed=int(seed), **checked)
    work = working_image(rgb, int(working_side))
    if min(work.shape[:2]) < least:
        raise InputError(
            f"image of {w}x{h} pixels is too elongated for method {key!r} at working_side="
            f"{working_side}: the shorter side would drop below {least} pixels; raise working_side"
        )
    check_method_memory(key, *work.shape[:2])
    return fn(work, seed=int(seed), **checked).upsampled((h, w))


#: Peak memory of a method on an h x w working image: ``base + bytes per pixel x h w``
#: (peak resident set size of a child process at 512 x 341 and 1024 x 683; the per-image
#: CNNs work at their own bounded ``max_side``, so only the classical share counts).
METHOD_MEMORY_BASE = 350e6
METHOD_BYTES_PER_PIXEL: dict[str, float] = {"ndd": 1400.0, "spectral": 1400.0}
#: Bytes per pixel of the methods not listed (measured: slic 190; kept generous).
DEFAULT_BYTES_PER_PIXEL = 400.0


def method_memory(name: str, h: int, w: int) -> float:
    """Estimated peak memory (bytes) of method ``name`` on an ``h x w`` working image.

    Examples
    --------
    >>> round(method_memory("ndd", 683, 1024) / 1e9, 2)
    1.33
    """
    per_pixel = METHOD_BYTES_PER_PIXEL.get(name, DEFAULT_BYTES_PER_PIXEL)
    return METHOD_MEMORY_BASE + per_pixel * h * w


def working_size(h: int, w: int, working_side: int | None) -> tuple[int, int]:
    """(h, w) of the working image :func:`run_method` segments for an ``h x w`` image.

    Examples
    --------
    >>> working_size(3000, 4000, 1024), working_size(321, 481, 1024)
    ((768, 1024), (321, 481))
    """
    if working_side is None or max(h, w) <= working_side:
        return h, w
    scale = working_side / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def check_method_memory(
    name: str, h: int, w: int, extra: float = 0.0, what: str = "", hint: str = ""
) -> None:
    """Refuse in one line, before any work, a method whose estimated peak on an ``h x w``
    working image (plus ``extra`` bytes, e.g. full-resolution outputs) is above the memory
    limit (:func:`affseg.memory.check_memory`).

    Examples
    --------
    >>> check_method_memory("ndd", 683, 1024)     # the default working resolution fits
    >>> check_method_memory("ndd", 30000, 40000)
    Traceback (most recent call last):
    ...
    affseg.errors.InputError: method 'ndd' on 40000 x 30000 pixels would need about ...
    """
    from affseg.memory import check_memory

    check_memory(
        method_memory(name, h, w) + extra,
        what or f"method {name!r} on {w} x {h} pixels",
        hint
        or f"segment at a bounded working resolution (working_side / --working-side, default "
        f"{DEFAULT_WORKING_SIDE})",
    )


def working_image(rgb: np.ndarray, working_side: int) -> np.ndarray:
    """``rgb`` (H, W, 3) uint8 downscaled (Lanczos) so that its longer side is ``working_side``.

    Examples
    --------
    >>> import numpy as np
    >>> working_image(np.zeros((4000, 6000, 3), np.uint8), 1024).shape
    (683, 1024, 3)
    """
    import numpy as np
    from PIL import Image

    h, w = rgb.shape[:2]
    if max(h, w) <= working_side:
        return rgb
    wh, ww = working_size(h, w, working_side)
    small = Image.fromarray(np.ascontiguousarray(rgb)).resize((ww, wh), Image.Resampling.LANCZOS)
    return np.asarray(small)
