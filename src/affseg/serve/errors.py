"""The viewer's HTTP error: a status, one line for the client and extra response headers.

Raised anywhere in the viewer (:class:`~affseg.serve.viewer.Viewer`, the upload reader of
:mod:`affseg.serve.uploads`) and answered by the app (:func:`affseg.serve.app.create_app`)
as JSON ``{"error": message, "status": code}``.

Example
-------
>>> err = HTTPError(404, "unknown or expired image id")
>>> err.status, err.message, err.headers
(404, 'unknown or expired image id', None)
"""

from __future__ import annotations


class HTTPError(Exception):
    """An error answered as JSON with ``status`` (and extra response ``headers``).

    Parameters
    ----------
    status : int
        The HTTP status code (4xx or 5xx).
    message : str
        One line for the client.
    headers : dict of str to str, optional
        Extra response headers (e.g. ``Connection: close``).

    Examples
    --------
    >>> err = HTTPError(408, "the upload did not arrive", headers={"Connection": "close"})
    >>> err.status, str(err), err.headers["Connection"]
    (408, 'the upload did not arrive', 'close')
    """

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers
