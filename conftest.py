"""Collection settings shared by the tests and the doctests of ``src/``.

Modules that need an optional stack (an extra in pyproject) are not collected for doctests
when that stack is absent: add ``"src/affseg/<path>": "<module the path needs>"`` to
``OPTIONAL`` (paths may be globs).
"""

from __future__ import annotations

import importlib.util

#: path glob (relative to the repository root) -> module that must be importable
OPTIONAL: dict[str, str] = {}

collect_ignore_glob = [
    path for path, module in OPTIONAL.items() if importlib.util.find_spec(module) is None
]
# the numba kernels the compiled extensions replaced: a reference for
# tests/test_compiled_vs_numba.py, not tests (their doctests would compile them)
collect_ignore_glob.append("tests/numba_reference/*")
