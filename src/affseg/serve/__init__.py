"""``affseg serve``: a local web viewer of hierarchies and neural-diffusion similarity.

The app (:func:`affseg.serve.app.create_app`) is a Starlette ASGI application serving one
static page (``static/index.html``, plain JavaScript, no external assets) and the HTTP API
under ``/api/`` that the page uses (documented in :mod:`affseg.serve.app`). Install its
dependencies with ``pip install affseg[serve]``.
"""
