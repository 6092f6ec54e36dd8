"""User-facing errors.

Every error that a user can cause (bad input, missing dataset, corrupt file) is an
:class:`AffsegError`; the command line prints its message as one line and exits with
status 2, never a traceback.

Examples
--------
>>> import affseg
>>> try:
...     affseg.segment(None)
... except affseg.AffsegError as exc:
...     print(type(exc).__name__)
InputError
>>> issubclass(InputError, ValueError), issubclass(DatasetNotFoundError, FileNotFoundError)
(True, True)
"""

from __future__ import annotations


class AffsegError(Exception):
    """Base class of the errors whose message is meant for the user, on one line.

    Examples
    --------
    >>> issubclass(InputError, AffsegError) and issubclass(CorruptFileError, AffsegError)
    True
    """


class InputError(AffsegError, ValueError):
    """An argument or a file has the wrong shape, dtype, channel count or content.

    Examples
    --------
    >>> from affseg.methods import check_options
    >>> check_options("slic", {"compactness": "high"})
    Traceback (most recent call last):
    ...
    affseg.errors.InputError: method 'slic' option compactness='high' has the wrong type: ...
    """


class DatasetNotFoundError(AffsegError, FileNotFoundError):
    """A dataset folder (or one of its split folders) is not where it was looked for.

    Examples
    --------
    >>> isinstance(DatasetNotFoundError("no BSDS500/ here"), FileNotFoundError)
    True
    """


class CorruptFileError(AffsegError, OSError):
    """A file exists but cannot be decoded (truncated image, broken .mat, ...).

    Examples
    --------
    >>> isinstance(CorruptFileError("truncated PNG"), OSError)
    True
    """


def first_line(exc: BaseException, limit: int = 160) -> str:
    """``"Type: first line of the message"``: a library error summarised for one line."""
    text = str(exc).strip().splitlines()
    if text and text[0].startswith("Weights only load failed"):
        # torch's safe unpickler: the file holds objects other than tensors (possibly code)
        return "refused by the safe loader: not plain tensors (a foreign or crafted file)"
    return f"{type(exc).__name__}: {text[0][:limit]}" if text else type(exc).__name__
