"""OpenAPI 3.0 description of the ``affseg serve`` HTTP API (``GET /api/openapi.json``).

Written by hand beside the routes of :func:`affseg.serve.app.create_app`; the tests check
that every ``/api`` route is described and fuzz the server from this description
(``tests/test_fuzz_http.py``).
"""

from __future__ import annotations

from typing import Any

from affseg import __version__

#: What the pattern of an image id is (16 lowercase hex digits, a content hash).
ID_PATTERN = "^[0-9a-f]{16}$"


def _error_responses(*codes: int) -> dict[str, Any]:
    why = {
        400: "Malformed request (bad id, parameter or form)",
        404: "Unknown or expired image id, unknown level or segmentation",
        408: "The upload's body did not arrive in time",
        413: "Upload too large (bytes or pixels), or the work exceeds the memory budget",
        415: "Not an image of an accepted format, or not a multipart form",
        422: "The image cannot be processed this way (too small / elongated for the method)",
        503: "The server is busy (queue full, too many requests at once); retry later",
    }
    ref = {"$ref": "#/components/schemas/Error"}
    return {
        str(c): {"description": why[c], "content": {"application/json": {"schema": ref}}}
        for c in codes
    }


def _binary(media: str, what: str) -> dict[str, Any]:
    return {
        "description": what,
        "content": {media: {"schema": {"type": "string", "format": "binary"}}},
    }


def openapi_schema(settings: Any = None) -> dict[str, Any]:
    """The OpenAPI 3.0 document of the viewer's API.

    Parameters
    ----------
    settings : affseg.serve.limits.Settings, optional
        Its limits appear in the descriptions (default: :class:`~affseg.serve.limits.Settings`).

    Returns
    -------
    dict
        JSON-able; every ``/api`` route with its parameters, request body and responses.

    Examples
    --------
    >>> doc = openapi_schema()
    >>> doc["openapi"], "/api/segment" in doc["paths"]
    ('3.0.3', True)
    >>> sorted(doc["paths"]["/api/segment"]["post"]["requestBody"]["content"])
    ['application/x-www-form-urlencoded', 'multipart/form-data']
    """
    from affseg.data.examples import EXAMPLES
    from affseg.methods import DEFAULT_METHOD, METHODS
    from affseg.serve.limits import Settings

    cfg = settings if settings is not None else Settings()
    methods = [DEFAULT_METHOD] + sorted(m for m in METHODS if m != DEFAULT_METHOD)
    id_param = {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "Image id (a content hash) from POST /api/segment",
        "schema": {"type": "string", "pattern": ID_PATTERN},
    }
    method_param = {
        "name": "method",
        "in": "path",
        "required": True,
        "description": "Segmentation method (registry name)",
        "schema": {"type": "string", "enum": methods},
    }
    level_param = {
        "name": "level",
        "in": "path",
        "required": True,
        "description": "Hierarchy level, 0 (finest) .. len(levels) - 1",
        "schema": {"type": "integer", "minimum": 0},
    }
    form_fields: dict[str, Any] = {
        "example": {"type": "string", "enum": list(EXAMPLES), "description": "Built-in image"},
        "id": {"type": "string", "pattern": ID_PATTERN, "description": "An uploaded image"},
        "method": {"type": "string", "enum": methods, "default": DEFAULT_METHOD},
        "wait": {
            "type": "string",
            "enum": ["1", "0", "true", "false", "no"],
            "default": "1",
            "description": "0 / false / no: answer at once (202) and poll",
        },
    }
    upload = {
        "type": "string",
        "format": "binary",
        "description": (
            f"Image file (PNG, JPEG, BMP, TIFF, WebP, PPM, GIF), at most "
            f"{cfg.max_upload_bytes} bytes and {cfg.max_pixels} pixels; EXIF orientation "
            "applied"
        ),
    }
    state_ref = {"$ref": "#/components/schemas/SegmentState"}
    png = _binary("image/png", "PNG image")
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "affseg serve",
            "version": __version__,
            "description": (
                "Local web viewer of segmentation hierarchies and neural-diffusion "
                "similarity. Every error is JSON {error, status} with a 4xx/5xx code."
            ),
        },
        "paths": {
            "/api/info": {
                "get": {
                    "summary": "Methods, built-in examples and the server's limits",
                    "responses": {
                        "200": {
                            "description": "Info",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Info"}
                                }
                            },
                        }
                    },
                }
            },
            "/api/health": {
                "get": {
                    "summary": "Cache, jobs, worker pool and memory",
                    "responses": {
                        "200": {
                            "description": "Health",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["ok"],
                                        "properties": {"ok": {"type": "boolean"}},
                                    }
                                }
                            },
                        }
                    },
                }
            },
            "/api/openapi.json": {
                "get": {
                    "summary": "This description",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.0 document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            "/api/segment": {
                "post": {
                    "summary": "Segment an uploaded image, a built-in example or an image id",
                    "description": (
                        "Give one of image (a file), example or id. With wait=1 (default) "
                        "the answer comes when the hierarchy is ready (200), else at once "
                        "(202) with the job's status to poll."
                    ),
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"image": upload, **form_fields},
                                },
                                "encoding": {"image": {"contentType": "application/octet-stream"}},
                            },
                            "application/x-www-form-urlencoded": {
                                "schema": {"type": "object", "properties": form_fields}
                            },
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "Done: the hierarchy's levels",
                            "content": {"application/json": {"schema": state_ref}},
                        },
                        "202": {
                            "description": "Queued or running",
                            "content": {"application/json": {"schema": state_ref}},
                        },
                        **_error_responses(400, 404, 408, 413, 415, 422, 503),
                    },
                }
            },
            "/api/segment/{id}/{method}": {
                "get": {
                    "summary": "State of a segmentation (poll after wait=0)",
                    "parameters": [id_param, method_param],
                    "responses": {
                        "200": {
                            "description": "queued / running / done / error",
                            "content": {"application/json": {"schema": state_ref}},
                        },
                        **_error_responses(400, 404, 413, 503),
                    },
                }
            },
            "/api/image/{id}.png": {
                "get": {
                    "summary": "The image as segmented (downscaled to max_side)",
                    "parameters": [id_param],
                    "responses": {"200": png, **_error_responses(400, 404, 503)},
                }
            },
            "/api/overlay/{id}/{method}/{level}.png": {
                "get": {
                    "summary": "One level's segments in their mean colour, boundaries yellow",
                    "parameters": [id_param, method_param, level_param],
                    "responses": {"200": png, **_error_responses(400, 404, 503)},
                }
            },
            "/api/labels/{id}/{method}/{level}.png": {
                "get": {
                    "summary": "One level's label map 1..K as a 16-bit PNG",
                    "parameters": [id_param, method_param, level_param],
                    "responses": {"200": png, **_error_responses(400, 404, 503)},
                }
            },
            "/api/ucm/{id}/{method}.mat": {
                "get": {
                    "summary": "The hierarchy as a BSDS ucm2 .mat file",
                    "parameters": [id_param, method_param],
                    "responses": {
                        "200": _binary("application/octet-stream", "MATLAB v5 file"),
                        **_error_responses(400, 404, 503),
                    },
                }
            },
            "/api/similarity/{id}.png": {
                "get": {
                    "summary": "Neural-diffusion similarity of pixel (y, x) as a heat map",
                    "parameters": [
                        id_param,
                        {
                            "name": "y",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "integer", "minimum": 0},
                        },
                        {
                            "name": "x",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "integer", "minimum": 0},
                        },
                    ],  # fmt: skip
                    "responses": {"200": png, **_error_responses(400, 404, 413, 422, 503)},
                }
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "status"],
                    "properties": {
                        "error": {"type": "string", "description": "One line"},
                        "status": {"type": "integer", "minimum": 400, "maximum": 599},
                    },
                },
                "Info": {
                    "type": "object",
                    "required": ["methods", "default_method", "examples", "limits"],
                    "properties": {
                        "methods": {"type": "array", "items": {"type": "string"}},
                        "default_method": {"type": "string"},
                        "examples": {"type": "array", "items": {"type": "string"}},
                        "limits": {"type": "object"},
                    },
                },
                "SegmentState": {
                    "type": "object",
                    "required": ["id", "method", "status", "width", "height"],
                    "properties": {
                        "id": {"type": "string", "pattern": ID_PATTERN},
                        "method": {"type": "string"},
                        "status": {
                            "type": "string",
                            "enum": ["queued", "running", "done", "error"],
                        },
                        "width": {"type": "integer"},
                        "height": {"type": "integer"},
                        "original_width": {"type": "integer"},
                        "original_height": {"type": "integer"},
                        "scale": {"type": "number"},
                        "levels": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "level": {"type": "integer"},
                                    "segments": {"type": "integer"},
                                },
                            },
                        },
                        "default_level": {"type": "integer"},
                        "seconds": {"type": "number"},
                        "elapsed": {"type": "number"},
                        "eta": {"type": "number"},
                        "progress": {"type": "number"},
                        "queue_position": {"type": "integer"},
                        "error": {"type": "string"},
                    },
                },
            }
        },
    }
