"""User-facing errors.

Every error that a user can cause (bad input, missing dataset, corrupt file) is an
:class:`AffsegError`; the command line prints its message as one line and exits with
status 2, never a traceback.
"""

from __future__ import annotations


class AffsegError(Exception):
    """Base class of the errors whose message is meant for the user, on one line."""


class InputError(AffsegError, ValueError):
    """An argument or a file has the wrong shape, dtype, channel count or content."""


class DatasetNotFoundError(AffsegError, FileNotFoundError):
    """A dataset folder (or one of its split folders) is not where it was looked for."""


class CorruptFileError(AffsegError, OSError):
    """A file exists but cannot be decoded (truncated image, broken .mat, ...)."""
