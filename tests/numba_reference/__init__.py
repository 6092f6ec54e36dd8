"""The numba kernels that the package's compiled extensions replaced, kept verbatim as the
reference of ``tests/test_compiled_vs_numba.py`` (run with ``-m slow``; needs numba).
Not collected by pytest (see ``tests/conftest.py``)."""
