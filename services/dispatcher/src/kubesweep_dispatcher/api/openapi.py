"""The API's OpenAPI 3 document, served at ``/api/v1/openapi.json``.

Maintained by hand next to the routes; ``tests/api/test_openapi.py`` checks it against the
Flask url_map both ways and schemathesis checks the responses against its schemas."""

from __future__ import annotations

from typing import Any, get_args

from flask import Blueprint, Response, jsonify

from kubesweep.messaging import EventType, ExperimentStatus, TrialStatus

bp = Blueprint("openapi", __name__)
OPENAPI_PATH = "/api/v1/openapi.json"

Schema = dict[str, Any]

_NUMBER_OR_NULL: Schema = {"type": "number", "nullable": True}
_ANY: Schema = {"nullable": True}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema, description: str = "OK") -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR_TEXT = {
    "400": "invalid input; `error.field` names the field",
    "401": "missing or wrong bearer token",
    "404": "no such experiment, trial or file",
    "405": "method not allowed",
    "409": "conflicts with the current state",
    "413": "the upload is too large",
    "422": "the platform or storage refused the request",
    "503": "a dependency (Redis, storage, cluster) is unavailable; retry",
}


def _responses(ok: Schema, *errors: str, ok_code: str = "200") -> Schema:
    codes = ("401", "405", "503", *errors)
    out: Schema = {ok_code: ok}
    for code in codes:
        out[code] = _json(_ref("Error"), _ERROR_TEXT[code])
    return out


def _path_param(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


_EXP = _path_param("exp_id", "experiment id")
_TRIAL = _path_param("trial_id", "trial id")


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _schemas() -> dict[str, Schema]:
    trial_statuses = [s.value for s in TrialStatus]
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "field": {"type": "string"},
                    },
                }
            },
        },
        "ExperimentSummary": {
            "type": "object",
            "required": [
                "id",
                "name",
                "status",
                "platform",
                "created",
                "ended",
                "message",
                "optimize_mode",
                "max_trial_number",
                "trial_concurrency",
                "max_experiment_duration",
                "trial_counts",
                "best",
            ],
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "status": {"type": "string", "enum": [s.value for s in ExperimentStatus]},
                "platform": {"type": "string", "nullable": True},
                "created": {"type": "number"},
                "ended": _NUMBER_OR_NULL,
                "message": {"type": "string"},
                "optimize_mode": {"type": "string", "enum": ["maximize", "minimize"]},
                "max_trial_number": {"type": "integer", "nullable": True},
                "trial_concurrency": {"type": "integer", "nullable": True},
                "max_experiment_duration": _NUMBER_OR_NULL,
                "trial_counts": {
                    "type": "object",
                    "additionalProperties": {"type": "integer", "minimum": 0},
                },
                "best": {
                    "type": "object",
                    "nullable": True,
                    "required": ["trial_id", "value"],
                    "properties": {"trial_id": {"type": "string"}, "value": {"type": "number"}},
                },
            },
        },
        "ExperimentDetail": {
            "allOf": [
                _ref("ExperimentSummary"),
                {
                    "type": "object",
                    "required": ["spec", "code_sha256"],
                    "properties": {
                        "spec": {"type": "object", "description": "the normalised config"},
                        "code_sha256": {"type": "string"},
                        "objectives": {
                            "type": "array",
                            "description": "multi-objective experiments only",
                            "items": {"type": "object"},
                        },
                        "pareto_front": {
                            "type": "array",
                            "description": "multi-objective experiments only: the trials no "
                            "other trial beats on every objective",
                        },
                    },
                },
            ]
        },
        "ExperimentList": {
            "type": "object",
            "required": ["experiments"],
            "properties": {"experiments": {"type": "array", "items": _ref("ExperimentSummary")}},
        },
        "ExperimentStatusReply": {
            "type": "object",
            "required": ["experiment_id", "status"],
            "properties": {
                "experiment_id": {"type": "string"},
                "status": {"type": "string", "enum": [s.value for s in ExperimentStatus]},
            },
        },
        "ExperimentUpdate": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "description": "what `nnictl update` changes; at least one field",
            "properties": {
                "trial_concurrency": {"type": "integer", "minimum": 1, "maximum": 100000},
                "max_trial_number": {"type": "integer", "minimum": 1},
                "max_experiment_duration": {
                    "description": "seconds, or a string like 30s, 10m, 1.5h, 2d",
                    "oneOf": [
                        {"type": "number", "exclusiveMinimum": True, "minimum": 0},
                        {"type": "string", "pattern": r"^\d+(\.\d+)?[smhd]$"},
                    ],
                },
                "search_space": {"type": "object", "description": "an NNI search space"},
            },
        },
        "UpdateReply": {
            "type": "object",
            "required": ["experiment_id", "changes"],
            "properties": {"experiment_id": {"type": "string"}, "changes": {"type": "object"}},
        },
        "DeleteReply": {
            "type": "object",
            "required": ["experiment_id", "deleted", "purged"],
            "properties": {
                "experiment_id": {"type": "string"},
                "deleted": {"type": "boolean"},
                "purged": {"type": "boolean"},
            },
        },
        "ExportRow": {
            "type": "object",
            "required": ["parameter", "value", "trialJobId"],
            "properties": {
                "parameter": {"type": "object"},
                "value": {"description": "a number or a dict with a numeric `default`"},
                "trialJobId": {"type": "string"},
            },
        },
        "ImportRow": {
            "type": "object",
            "required": ["parameter", "value"],
            "properties": {
                "parameter": {"type": "object"},
                "value": {
                    "description": "a number, a dict with a numeric `default`, or its JSON text"
                },
            },
        },
        "ImportReply": {
            "type": "object",
            "required": ["experiment_id", "imported"],
            "properties": {
                "experiment_id": {"type": "string"},
                "imported": {"type": "integer", "minimum": 0},
            },
        },
        "Trial": {
            "type": "object",
            "required": [
                "id",
                "experiment_id",
                "seq",
                "status",
                "parameter_id",
                "parameters",
                "attempt",
                "created",
                "intermediate_count",
                "message",
                "job",
                "storage_url",
            ],
            "properties": {
                "id": {"type": "string"},
                "experiment_id": {"type": "string"},
                "seq": {"type": "integer"},
                "status": {"type": "string", "enum": trial_statuses},
                "parameter_id": {"type": "integer"},
                "parameters": {"type": "object"},
                "attempt": {"type": "integer"},
                "created": {"type": "number"},
                "launched": _NUMBER_OR_NULL,
                "started": _NUMBER_OR_NULL,
                "ended": _NUMBER_OR_NULL,
                "final": _ANY,
                "default_metric": _NUMBER_OR_NULL,
                "intermediate_count": {"type": "integer", "minimum": 0},
                "last_intermediate": _ANY,
                "message": {"type": "string"},
                "exit_code": {"type": "integer", "nullable": True},
                "job": {"type": "string"},
                "storage_url": {"type": "string"},
            },
        },
        "TrialList": {
            "type": "object",
            "required": ["trials", "total", "offset", "limit"],
            "properties": {
                "trials": {"type": "array", "items": _ref("Trial")},
                "total": {"type": "integer", "minimum": 0},
                "offset": {"type": "integer", "minimum": 0},
                "limit": {"type": "integer", "minimum": 1},
            },
        },
        "CancelReply": {
            "type": "object",
            "required": ["trial_id", "status"],
            "properties": {
                "trial_id": {"type": "string"},
                "status": {"type": "string", "enum": trial_statuses},
            },
        },
        "Metrics": {
            "type": "object",
            "required": ["trial_id", "metrics"],
            "properties": {
                "trial_id": {"type": "string"},
                "metrics": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["type", "sequence", "value", "timestamp"],
                        "properties": {
                            "type": {"type": "string", "enum": ["PERIODICAL", "FINAL"]},
                            "sequence": {"type": "integer", "nullable": True},
                            "value": _ANY,
                            "timestamp": {"type": "number"},
                        },
                    },
                },
            },
        },
        "Event": {
            "type": "object",
            "description": "one Server-Sent Event (Open API 3.0: the schema of each event)",
            "required": ["data", "event"],
            "properties": {
                "id": {"type": "string", "pattern": r"^\d{1,20}-\d{1,20}$"},
                "event": {"type": "string", "enum": list(get_args(EventType))},
                "data": {
                    "type": "string",
                    "description": "the event as JSON: type, experiment_id, trial_id, ts, payload",
                },
            },
        },
        "FileList": {
            "type": "object",
            "required": ["path", "url", "entries"],
            "properties": {
                "path": {"type": "string"},
                "url": {"type": "string"},
                "entries": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "is_dir", "size"],
                        "properties": {
                            "name": {"type": "string"},
                            "is_dir": {"type": "boolean"},
                            "size": {"type": "integer", "minimum": 0},
                        },
                    },
                },
            },
        },
    }


def _experiment_paths() -> dict[str, Schema]:
    return {
        "/api/v1/experiments": {
            "get": {
                "operationId": "listExperiments",
                "summary": "every experiment, newest first (nnictl experiment list --all)",
                "responses": _responses(_json(_ref("ExperimentList"))),
            },
            "post": {
                "operationId": "createExperiment",
                "summary": "submit an experiment (nnictl create)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["config", "code"],
                                "properties": {
                                    "config": {
                                        "type": "string",
                                        "description": "NNI v1 or v2 YAML",
                                    },
                                    "config_name": {"type": "string"},
                                    "search_space": {
                                        "type": "string",
                                        "description": "JSON search space, if the config "
                                        "names a file",
                                    },
                                    "code": {
                                        "type": "string",
                                        "format": "binary",
                                        "description": "the trial code folder as .tar.gz",
                                    },
                                    "import": {
                                        "type": "string",
                                        "description": "warm start: earlier results as JSON "
                                        "rows (NNI's export format), fed before the first "
                                        "suggestion",
                                    },
                                    "tuner_code": {
                                        "type": "string",
                                        "format": "binary",
                                        "description": "a custom tuner's code (refused unless "
                                        "the deployment allows custom algorithms)",
                                    },
                                    "assessor_code": {
                                        "type": "string",
                                        "format": "binary",
                                        "description": "a custom assessor's code",
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": _responses(
                    _json(_ref("ExperimentStatusReply"), "created"),
                    "400",
                    "413",
                    "422",
                    ok_code="201",
                ),
            },
        },
        "/api/v1/experiments/{exp_id}": {
            "parameters": [_EXP],
            "get": {
                "operationId": "showExperiment",
                "summary": "summary, normalised config and code digest",
                "responses": _responses(_json(_ref("ExperimentDetail")), "404"),
            },
            "patch": {
                "operationId": "updateExperiment",
                "summary": "change concurrency, max trials, max duration or search space",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("ExperimentUpdate")}},
                },
                "responses": _responses(_json(_ref("UpdateReply")), "400", "404"),
            },
            "delete": {
                "operationId": "deleteExperiment",
                "summary": "forget an ended experiment; purge=true also deletes staged files",
                "parameters": [
                    _query("purge", {"type": "boolean"}, "also delete the experiment's files")
                ],
                "responses": _responses(_json(_ref("DeleteReply")), "404", "409"),
            },
        },
        "/api/v1/experiments/{exp_id}/stop": {
            "parameters": [_EXP],
            "post": {
                "operationId": "stopExperiment",
                "summary": "stop the experiment and cancel its running trials",
                "responses": _responses(_json(_ref("ExperimentStatusReply")), "404"),
            },
        },
        "/api/v1/experiments/{exp_id}/resume": {
            "parameters": [_EXP],
            "post": {
                "operationId": "resumeExperiment",
                "summary": "continue a stopped or finished experiment",
                "responses": _responses(_json(_ref("ExperimentStatusReply")), "404"),
            },
        },
        "/api/v1/experiments/{exp_id}/export": {
            "parameters": [_EXP],
            "get": {
                "operationId": "exportResults",
                "summary": "NNI's export: [{parameter, value, trialJobId}] or CSV",
                "parameters": [
                    _query("format", {"type": "string", "enum": ["json", "csv"]}, "json or csv")
                ],
                "responses": _responses(
                    {
                        "description": "OK",
                        "content": {
                            "application/json": {
                                "schema": {"type": "array", "items": _ref("ExportRow")}
                            },
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    "400",
                    "404",
                ),
            },
        },
        "/api/v1/experiments/{exp_id}/import": {
            "parameters": [_EXP],
            "post": {
                "operationId": "importResults",
                "summary": "feed earlier results (NNI's export format) to the tuner",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"type": "array", "items": _ref("ImportRow")}
                        }
                    },
                },
                "responses": _responses(
                    _json(_ref("ImportReply"), "imported"), "400", "404", "409", ok_code="201"
                ),
            },
        },
        "/api/v1/experiments/{exp_id}/events": {
            "parameters": [_EXP],
            "get": {
                "operationId": "streamEvents",
                "summary": "Server-Sent Events: the experiment's event log, then live events",
                "parameters": [
                    _query(
                        "after",
                        {"type": "string", "pattern": r"^\d{1,20}-\d{1,20}$"},
                        "start after this event id (or send Last-Event-ID)",
                    ),
                    _query("follow", {"type": "boolean"}, "false: replay and close"),
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "pattern": r"^\d{1,20}-\d{1,20}$"},
                    },
                ],
                "responses": _responses(
                    {
                        "description": "`id:`, `event:` (the event type) and `data:` (the "
                        "event as JSON) per event; `: keep-alive` comments",
                        "content": {"text/event-stream": {"schema": _ref("Event")}},
                    },
                    "400",
                    "404",
                ),
            },
        },
    }


def _trial_paths() -> dict[str, Schema]:
    base = "/api/v1/experiments/{exp_id}/trials"
    return {
        base: {
            "parameters": [_EXP],
            "get": {
                "operationId": "listTrials",
                "summary": "trials, filtered by status, sorted, paginated (nnictl trial ls)",
                "parameters": [
                    _query("status", {"type": "string"}, "comma-separated trial statuses"),
                    _query("sort", {"type": "string", "enum": ["seq", "metric"]}, "order"),
                    _query(
                        "order",
                        {"type": "string", "enum": ["maximize", "minimize"]},
                        "with sort=metric: best first for this mode (default: the tuner's)",
                    ),
                    _query("offset", {"type": "integer", "minimum": 0}, "skip this many"),
                    _query(
                        "limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size"
                    ),
                ],
                "responses": _responses(_json(_ref("TrialList")), "400", "404"),
            },
        },
        base + "/{trial_id}": {
            "parameters": [_EXP, _TRIAL],
            "get": {
                "operationId": "showTrial",
                "responses": _responses(_json(_ref("Trial")), "404"),
            },
        },
        base + "/{trial_id}/cancel": {
            "parameters": [_EXP, _TRIAL],
            "post": {
                "operationId": "cancelTrial",
                "summary": "kill a waiting or running trial (nnictl trial kill)",
                "responses": _responses(_json(_ref("CancelReply")), "404", "409"),
            },
        },
        base + "/{trial_id}/metrics": {
            "parameters": [_EXP, _TRIAL],
            "get": {
                "operationId": "trialMetrics",
                "summary": "intermediate and final results in report order",
                "responses": _responses(_json(_ref("Metrics")), "404"),
            },
        },
        base + "/{trial_id}/files": {
            "parameters": [_EXP, _TRIAL],
            "get": {
                "operationId": "listTrialFiles",
                "summary": "a folder of the trial's storage (parameter.cfg, output/<replica>/)",
                "parameters": [_query("path", {"type": "string"}, "sub-folder, e.g. output")],
                "responses": _responses(_json(_ref("FileList")), "400", "404"),
            },
        },
        base + "/{trial_id}/files/{name}": {
            "parameters": [
                _EXP,
                _TRIAL,
                _path_param("name", "relative path, e.g. output/local-0/stdout"),
            ],
            "get": {
                "operationId": "readTrialFile",
                "summary": "a file's last 8 MiB (stdout, stderr, trial.log, ...)",
                "responses": _responses(
                    {
                        "description": "the file",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "400",
                    "404",
                ),
            },
        },
    }


def build_spec() -> Schema:
    """The whole document; every route of the API appears here exactly once."""
    public: list[Schema] = []
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "kubesweep dispatcher API",
            "version": "1",
            "description": "Experiments, trials, results and live events. Every route needs "
            "`Authorization: Bearer <token>` when the API has a token (always, beyond "
            'loopback). Errors are `{"error": {"code", "message", "field"?}}`.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "security": public,
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["status"],
                                "properties": {"status": {"type": "string"}},
                            }
                        ),
                        "503": _json(_ref("Error"), _ERROR_TEXT["503"]),
                    },
                }
            },
            OPENAPI_PATH: {
                "get": {
                    "operationId": "openapi",
                    "security": public,
                    "summary": "this document",
                    "responses": {"200": _json({"type": "object"})},
                }
            },
            **_experiment_paths(),
            **_trial_paths(),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": _schemas(),
        },
    }


@bp.get(OPENAPI_PATH)
def openapi_document() -> Response:
    return jsonify(build_spec())
