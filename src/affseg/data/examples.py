"""The built-in example photos (scikit-image's, loaded offline).

Example
-------
>>> from affseg.data.examples import EXAMPLES, load_example
>>> load_example("coffee").shape
(400, 600, 3)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from affseg.errors import InputError

if TYPE_CHECKING:  # numpy loads when an example does: `affseg --help` stays light
    import numpy as np

#: scikit-image photos bundled with the package (loaded offline by ``--example``).
EXAMPLES: tuple[str, ...] = (
    "astronaut", "cat", "chelsea", "coffee", "colorwheel", "hubble_deep_field",
    "immunohistochemistry", "retina", "rocket",
)  # fmt: skip


def load_example(name: str) -> np.ndarray:
    """A scikit-image example photo, shape (H, W, 3) uint8.

    Raises
    ------
    InputError
        Not one of :data:`EXAMPLES`.

    Examples
    --------
    >>> load_example("rocket").dtype
    dtype('uint8')
    """
    if name not in EXAMPLES:
        raise InputError(f"unknown example {name!r}; choose one of: {', '.join(EXAMPLES)}")
    from skimage import data

    from affseg.data.io import as_rgb

    return as_rgb(getattr(data, name)(), name=f"example {name}")
