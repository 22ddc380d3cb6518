"""The OpenAPI document of the public API, served by the master at `GET /openapi.json`.

Written by hand from the routes; `tests/test_openapi.py` keeps it true (every public route of
the master is in it with the same methods, and nothing else is).
"""

from __future__ import annotations

from typing import Any

from pulzar import __version__

_ENVELOPE = {
    "type": "object",
    "required": ["data", "status", "msg"],
    "properties": {
        "data": {},
        "status": {"type": "string", "enum": ["ok", "ko"]},
        "msg": {"type": "string"},
    },
}


def _envelope(data: dict[str, Any] | None = None) -> dict[str, Any]:
    if data is None:
        return {"$ref": "#/components/schemas/Envelope"}
    return {
        "allOf": [
            {"$ref": "#/components/schemas/Envelope"},
            {"type": "object", "properties": {"data": data}},
        ]
    }


def _json(description: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _envelope(data)}},
    }


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "bad key, parameter or body",
        401: "a token is required",
        403: "credential refused",
        404: "not found",
        405: "method not allowed",
        408: "request body stalled",
        409: "create-only write of an existing key",
        412: "If-Match does not match",
        413: "over [general] maxsize",
        503: "no live volume",
        504: "timed out",
        507: "volume full",
    }
    return {str(c): _json(text[c]) for c in codes}


def _redirect(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"Location": {"schema": {"type": "string"}, "description": "where to go"}},
    }


# The key rules (pulzar.core.keys) as a pattern: segments of any characters but '/' and the
# control characters, none empty, '.' or '..'. The 1024-byte limit is in the description.
_CHAR = "[^/\\u0000-\\u001f\\u007f-\\u009f]"
_START = "[^/.\\u0000-\\u001f\\u007f-\\u009f]"
_SEGMENT = f"(?:{_START}{_CHAR}*|\\.{_START}{_CHAR}*|\\.\\.{_CHAR}+)"
_KEY = {
    "name": "key",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": f"^{_SEGMENT}(?:/{_SEGMENT})*$"},
    "example": "docs/a.txt",
    "description": "the key, percent-decoded once ('%2F' is a '/'), '/' added in front: any "
    "UTF-8 but control characters, no empty, '.' or '..' segment, at most 1024 bytes (else 400)",
}
_PREFIX = {
    "name": "prefix",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"},
    "description": "a plain string prefix of the keys (percent-decoded once, '/' added in front)",
}
#: Job and schedule ids are unsigned 64-bit numbers.
_U64 = 2**64 - 1
_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 0, "maximum": _U64},
}
_JOB_NAME = "[A-Za-z_][A-Za-z0-9_]*/[A-Za-z_][A-Za-z0-9_]*"
_NODE = {
    "name": "node",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "a node's id or name",
}
_TEMPORAL = {
    "name": "temporal",
    "in": "query",
    "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": 36500},
    "description": "days until the value expires",
}
_REPLICAS = {
    "name": "replicas",
    "in": "query",
    "schema": {"type": "integer", "minimum": 1, "maximum": 16},
}
_CONDITIONS = [
    {
        "name": "If-None-Match",
        "in": "header",
        "schema": {"type": "string", "enum": ["*"]},
        "description": "create-only",
    },
    {
        "name": "If-Match",
        "in": "header",
        "schema": {"type": "string", "pattern": '^(\\*|(W/)?"?([0-9]+|[0-9a-fA-F]{64})"?)$'},
        "description": "compare-and-swap: an ETag (as served) or a version; '*': the key exists",
    },
]
_ENTRY = {
    "type": "object",
    "properties": {
        "key": {"type": "string"},
        "size": {"type": "integer"},
        "version": {"type": "integer"},
        "created": {"type": "string"},
        "modified": {"type": "string"},
        "expires": {"type": ["string", "null"]},
        "etag": {"type": "string"},
        "content_type": {"type": "string"},
    },
}
_NODE_INFO = {
    "type": "object",
    "properties": {
        "node": {"type": "string"},
        "id": {"type": "string"},
        "url": {"type": "string"},
        "percent": {"type": "number"},
        "load": {"type": "number"},
        "synch": {"type": "boolean"},
        "state": {"type": "string", "enum": ["alive", "suspect", "dead"]},
    },
}
_JOB_ID = {"type": "object", "properties": {"job_id": {"type": "integer"}}}
_PUT = {
    "tags": ["keys"],
    "parameters": [_KEY, _TEMPORAL, _REPLICAS, *_CONDITIONS],
    "requestBody": {
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    },
    "responses": {
        "307": _redirect("send the same PUT to this volume URL (it carries a write ticket)"),
        **_errors(400, 401, 403, 409, 412, 413, 503, 507),
    },
}


def _get(
    summary: str,
    data: dict[str, Any] | None,
    *params: dict[str, Any],
    errors: tuple[int, ...] = (400, 401, 403),
    tag: str = "admin",
) -> dict[str, Any]:
    return {
        "get": {
            "tags": [tag],
            "summary": summary,
            "parameters": list(params),
            "responses": {"200": _json("ok", data), **_errors(*errors)},
        }
    }


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the master's public API."""
    paths: dict[str, Any] = {
        "/add_key/{key}": {"put": {**_PUT, "summary": "store a value (307 to a volume)"}},
        "/get_node/{key}": {
            "put": {**_PUT, "summary": "same as PUT /add_key"},
            **_get(
                "a volume URL with a write ticket, for direct uploads",
                {"type": "object", "properties": {"node": {"type": "string"}}},
                _KEY,
                _TEMPORAL,
                _REPLICAS,
                *_CONDITIONS,
                {"name": "size", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                errors=(400, 401, 403, 409, 412, 413, 503, 507),
                tag="keys",
            ),
        },
        "/get_key/{key}": {
            "get": {
                "tags": ["keys"],
                "summary": "read a value (307 to a volume holding it)",
                "parameters": [_KEY],
                "responses": {
                    "307": _redirect("the volume that serves the bytes"),
                    **_errors(400, 401, 403, 404, 503),
                },
            }
        },
        "/delete_key/{key}": {
            "delete": {
                "tags": ["keys"],
                "summary": "delete a key",
                "parameters": [_KEY],
                "responses": {"200": _json("key deleted"), **_errors(400, 401, 403, 404)},
            }
        },
        "/list_keys": _get(
            "list every key",
            None,
            {
                "name": "limit",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
            },
            {"name": "after", "in": "query", "schema": {"type": "string"}},
            tag="keys",
        ),
        "/list_keys/{prefix}": _get(
            "list keys starting with a prefix",
            {
                "type": "object",
                "properties": {
                    "keys": {"type": "array", "items": _ENTRY},
                    "next": {"type": ["string", "null"]},
                },
            },
            _PREFIX,
            {
                "name": "limit",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
            },
            {"name": "after", "in": "query", "schema": {"type": "string"}},
            tag="keys",
        ),
        "/stat_key/{key}": _get(
            "a key's metadata and replicas", _ENTRY, _KEY, errors=(400, 401, 403, 404), tag="keys"
        ),
        "/admin/status": _get("LMDB statistics of the key index", {"type": "object"}),
        "/admin/network": _get("every volume", {"type": "array", "items": _NODE_INFO}),
        "/admin/network/{node}": {
            **_get("one volume", _NODE_INFO, _NODE, errors=(401, 403, 404)),
            "delete": {
                "tags": ["admin"],
                "summary": "forget a volume that is no longer alive",
                "parameters": [_NODE],
                "responses": {"200": _json("node forgotten"), **_errors(401, 403, 404, 409)},
            },
        },
        "/admin/drain/{node}": {
            "post": {
                "tags": ["admin"],
                "summary": "move a volume's copies away",
                "parameters": [
                    _NODE,
                    {"name": "undo", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": _json("draining", _NODE_INFO), **_errors(401, 403, 404)},
            }
        },
        "/admin/restore": {
            **_get("progress of an index rebuild", {"type": "object"}),
            "post": {
                "tags": ["admin"],
                "summary": "rebuild the index from volumes",
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "volumes": {"type": "array", "items": {"type": "string"}},
                                    "force": {"type": "boolean"},
                                },
                            }
                        }
                    }
                },
                "responses": {"202": _json("restore started"), **_errors(400, 401, 403, 409)},
            },
        },
        "/admin/restore_node/{key}": _get(
            "a volume URL for loading a backup's value with its version and times",
            {"type": "object"},
            _KEY,
            {
                "name": "version",
                "in": "query",
                "required": True,
                "schema": {"type": "integer", "minimum": 1, "maximum": 2**53 - 1},
            },
            *(
                {
                    "name": n,
                    "in": "query",
                    "required": n != "expires",
                    "schema": {"type": "number", "minimum": 0, "maximum": 253402300799},
                    "description": "epoch seconds",
                }
                for n in ("created", "modified", "expires")
            ),
            {"name": "size", "in": "query", "schema": {"type": "integer", "minimum": 0}},
            errors=(400, 401, 403, 413, 503, 507),
        ),
        "/health": _get("200 when a volume is live", None, errors=(503,), tag="cluster"),
        "/metrics": {
            "get": {
                "tags": ["cluster"],
                "summary": "Prometheus metrics (text format)",
                "responses": {"200": {"description": "metrics"}, **_errors(401, 403)},
            }
        },
        "/openapi.json": {
            "get": {
                "tags": ["cluster"],
                "summary": "this document",
                "responses": {"200": {"description": "OpenAPI document"}},
            }
        },
        "/extension/{tail}": {
            method: {
                "tags": ["extensions"],
                "summary": "run an extension: /extension/{app_id}/args",
                "parameters": [
                    {"name": "tail", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": _json("the extension's result"),
                    **_errors(400, 401, 403, 404, 413, 503, 504),
                },
            }
            for method in ("get", "put")
        },
        "/launch_job/{name}": {
            "post": {
                "tags": ["jobs"],
                "summary": "launch job group/name (admin token)",
                "parameters": [
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": f"^/?{_JOB_NAME}/?$"},
                    }
                ],
                "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {
                    "200": _json("Job added with id N", _JOB_ID),
                    **_errors(400, 401, 403, 404),
                },
            }
        },
        "/cancel_job/{id}": {
            "post": {
                "tags": ["jobs"],
                "summary": "cancel a schedule or a run (admin token)",
                "parameters": [_ID],
                "responses": {"200": _json("cancelled", _JOB_ID), **_errors(400, 401, 403, 404)},
            }
        },
        "/admin/jobs": _get(
            "the job board",
            {"type": "object"},
            {
                "name": "limit",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
            },
            tag="jobs",
        ),
        "/admin/jobs/{id}": _get(
            "one run, with result and log",
            {"type": "object"},
            _ID,
            errors=(400, 401, 403, 404),
            tag="jobs",
        ),
        "/admin/all_jobs": _get(
            "every run record, newest first",
            {"type": "object"},
            {
                "name": "limit",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
            },
            {
                "name": "after",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": _U64},
            },
            tag="jobs",
        ),
        "/admin/scheduled_jobs": _get("every schedule", {"type": "array"}, tag="jobs"),
        "/admin/scheduled_jobs/{which}": _get(
            "runs of schedules that ended ok / failed, or one schedule by id",
            None,
            {
                "name": "which",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": "^(ok|failed|[0-9]+)$"},
            },
            errors=(400, 401, 403, 404),
            tag="jobs",
        ),
        "/admin/backup/jobs": {
            **_get(
                "raw run records for a backup, oldest first",
                {"type": "object"},
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
                },
                {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                tag="jobs",
            ),
            "post": {
                "tags": ["jobs"],
                "summary": "load run and schedule records from a backup (admin token)",
                "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {"200": _json("job records loaded"), **_errors(400, 401, 403, 409)},
            },
        },
        "/admin/backup/schedules": _get(
            "raw schedule records for a backup", {"type": "array"}, tag="jobs"
        ),
        "/admin/job_catalog": _get("jobs and their documentation", {"type": "array"}, tag="jobs"),
        "/admin/jobs/deploy": {
            "post": {
                "tags": ["jobs"],
                "summary": "upload job files (admin token)",
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["files"],
                                "properties": {
                                    "files": {
                                        "type": "object",
                                        "propertyNames": {"pattern": f"^{_JOB_NAME}\\.py$"},
                                        "additionalProperties": {"type": "string"},
                                    }
                                },
                            }
                        }
                    }
                },
                "responses": {"200": _json("deployed"), **_errors(400, 401, 403)},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Pulzar",
            "version": __version__,
            "description": "The public API of a Pulzar master. Every JSON answer is the "
            "envelope {data, status, msg}.",
        },
        "paths": paths,
        "components": {
            "schemas": {"Envelope": _ENVELOPE},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
    }
