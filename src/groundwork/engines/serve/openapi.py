"""The OpenAPI document of a serving process, generated from each model's signature (``/openapi.json``, ``/docs``)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from groundwork.core.signatures import Signature, TensorSpec
from groundwork.engines.serve.oip import DATATYPES, model_metadata

_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "ok": {"type": "boolean", "const": False},
        "status": {"type": "integer"},
        "error": {"type": "string", "description": "The kind of problem."},
        "message": {"type": "string", "description": "What exactly is wrong."},
        "hint": {"type": ["string", "null"], "description": "How to fix it."},
    },
    "required": ["ok", "status", "error", "message"],
}


def _scalar(dtype: str) -> dict[str, Any]:
    if dtype == "str":
        return {"type": "string"}
    if dtype == "bool":
        return {"type": "boolean"}
    if dtype.startswith(("int", "uint")):
        return {"type": "integer", "format": dtype}
    return {"type": "number", "format": dtype}


def _nested(spec: TensorSpec, dims: tuple[int, ...]) -> dict[str, Any]:
    schema = _scalar(spec.dtype)
    for size in reversed(dims):
        schema = {"type": "array", "items": schema}
        if size > 0:
            schema.update(minItems=size, maxItems=size)
    return schema


def input_schema(signature: Signature | None) -> dict[str, Any]:
    if signature is None or not signature.inputs:
        return {"type": "array", "items": {"type": "array", "items": {"type": "number"}},
                "description": "Rows of numbers (the model declares no signature)."}
    if signature.columnar:
        return {
            "type": "object",
            "properties": {s.name: _nested(s, s.shape) for s in signature.inputs},
            "required": [s.name for s in signature.inputs],
            "additionalProperties": False,
            "description": "One list of values per column, all of the same length.",
        }
    spec = signature.inputs[0]
    schema = _nested(spec, spec.shape)
    schema["minItems"] = 1
    schema["description"] = f"A list of rows: {spec.describe()}."
    return schema


def output_schema(signature: Signature | None) -> dict[str, Any]:
    if signature is None or not signature.outputs:
        return {"type": "array", "description": "One output per input row."}
    spec = signature.outputs[0]
    schema = _nested(spec, spec.shape)
    schema["description"] = f"One output per input row: {spec.describe()}."
    return schema


def openapi_document(models: list[dict[str, Any]], version: str) -> dict[str, Any]:
    """``models``: dicts with name, ref, version, signature (Signature or None), example."""
    paths: dict[str, Any] = {}
    errors = {
        code: {"description": text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for code, text in (
            ("400", "The body is not JSON, not an object, or has no \"inputs\"."),
            ("404", "No model of that name is served here."),
            ("413", "The body is over the size limit."),
            ("422", "The inputs do not fit the signature (shape, dtype, columns)."),
        )
    }
    for model in models:
        signature = model["signature"]
        request: dict[str, Any] = {
            "type": "object",
            "properties": {"inputs": input_schema(signature)},
            "required": ["inputs"],
        }
        body: dict[str, Any] = {"schema": request}
        if model.get("example") is not None:
            body["example"] = {"inputs": model["example"]}
        paths[f"/v1/models/{model['name']}/predict"] = {
            "post": {
                "summary": f"Predict with {model['ref']} (version {model['version']} now)",
                "description": (signature.describe() if signature else "No signature recorded.")
                + " Concurrent requests are batched into one runtime call.",
                "operationId": f"predict_{model['name']}",
                "tags": [model["name"]],
                "requestBody": {"required": True, "content": {"application/json": body}},
                "responses": {
                    "200": {
                        "description": "Predictions, one per input row, and the version that made them.",
                        "content": {"application/json": {"schema": {
                            "type": "object",
                            "properties": {"outputs": output_schema(signature), "model_version": {"type": "integer"}},
                            "required": ["outputs", "model_version"],
                        }}},
                    },
                    **errors,
                },
            }
        }
        paths.update(_v2_model_paths(model, errors))
        paths[f"/admin/models/{model['name']}/route"] = _admin_route_path(model["name"])
    for path, summary in (("/healthz", "The process is up."), ("/readyz", "Every model is loaded."),
                          ("/metrics", "Prometheus metrics."), ("/v1/models", "The models served here."),
                          ("/v2", "Open Inference Protocol: server metadata."),
                          ("/v2/health/live", "Open Inference Protocol: the process is up."),
                          ("/v2/health/ready", "Open Inference Protocol: every model is loaded (503 before).")):
        paths[path] = {"get": {"summary": summary, "tags": ["service"], "responses": {"200": {"description": "OK"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "groundwork serve", "version": version,
                 "description": "Models served by groundwork: " + ", ".join(m["ref"] for m in models)},
        "paths": paths,
        "components": {
            "schemas": {"Error": _ERROR_SCHEMA, "Tensor": _TENSOR_SCHEMA},
            "securitySchemes": {"admin": {"type": "http", "scheme": "bearer",
                                          "description": "The GROUNDWORK_SERVE_TOKEN the server was started with."}},
        },
    }


_TENSOR_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": sorted(set(DATATYPES.values()))},
        "data": {"type": "array", "description": "Every value of the tensor, flat in row-major order (or nested)."},
    },
    "required": ["name", "shape", "datatype", "data"],
}


def _v2_model_paths(model: dict[str, Any], errors: dict[str, Any]) -> dict[str, Any]:
    """The Open Inference Protocol's routes for one model (see ``groundwork.engines.serve.oip``)."""
    name = model["name"]
    tag = f"{name} (Open Inference Protocol)"
    signature = model["signature"]
    inputs = ", ".join(f"{t['name']}: {t['datatype']}{t['shape']}" for t in model_metadata(name, [model["version"]], "", signature)["inputs"])
    tensors = {"type": "array", "items": {"$ref": "#/components/schemas/Tensor"}}
    return {
        f"/v2/models/{name}/infer": {"post": {
            "summary": f"Infer with {model['ref']} (KServe v2 JSON tensors)",
            "description": f"Inputs: {inputs}. The same validation as /v1/models/{name}/predict; errors carry "
                           "the protocol's \"error\" field.",
            "operationId": f"v2_infer_{name}",
            "tags": [tag],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object",
                "properties": {"id": {"type": "string"}, "inputs": tensors,
                               "outputs": {"type": "array", "items": {"type": "object",
                                                                      "properties": {"name": {"type": "string"}}}}},
                "required": ["inputs"],
            }}}},
            "responses": {
                "200": {"description": "Output tensors.", "content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": {"model_name": {"type": "string"}, "model_version": {"type": "string"},
                                   "id": {"type": "string"}, "outputs": tensors},
                    "required": ["model_name", "model_version", "outputs"],
                }}}},
                **errors,
            },
        }},
        f"/v2/models/{name}": {"get": {"summary": "Model metadata: versions, input and output tensors.", "tags": [tag],
                                        "operationId": f"v2_metadata_{name}",
                                        "responses": {"200": {"description": "OK"}}}},
        f"/v2/models/{name}/ready": {"get": {"summary": "Whether the model is ready.", "tags": [tag],
                                              "operationId": f"v2_ready_{name}",
                                              "responses": {"200": {"description": "OK"}}}},
    }


def _admin_route_path(name: str) -> dict[str, Any]:
    """``GET``/``PUT /admin/models/NAME/route`` (from this machine, with the server's token)."""
    return {
        "get": {"summary": f"How {name}'s requests are routed", "tags": ["admin"], "security": [{"admin": []}],
                "operationId": f"route_{name}", "responses": {"200": {"description": "The model, with its route."}}},
        "put": {
            "summary": f"Change {name}'s route (weights, shadow) without a restart",
            "description": "Fields left out keep their value; \"shadow\": null stops shadowing. Answers only "
                           "requests from this machine that carry the server's GROUNDWORK_SERVE_TOKEN.",
            "tags": ["admin"], "security": [{"admin": []}], "operationId": f"set_route_{name}",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"type": "object", "properties": {
                    "route": {"type": "string", "example": "production=90,candidate=10"},
                    "shadow": {"type": ["string", "null"], "example": "candidate"}}},
            }}},
            "responses": {"200": {"description": "The model, with its new route."},
                          "401": {"description": "No token, or the wrong one."},
                          "403": {"description": "Not from this machine, or no token configured."}},
        },
    }


#: The vendored Swagger UI (``static/VENDORED.md``: source, licence, digests).
SWAGGER_UI_VERSION = "5.36.0"
_STATIC = Path(__file__).parent / "static"
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
#: The files ``/docs`` loads, each served at ``/docs/NAME`` from the package (nothing from another site).
DOCS_ASSETS = (f"swagger-ui-{SWAGGER_UI_VERSION}.css", f"swagger-ui-bundle-{SWAGGER_UI_VERSION}.js", "swagger-init.js")


@functools.cache
def docs_asset(name: str) -> tuple[bytes, str]:
    """The bytes and content type of one of :data:`DOCS_ASSETS`."""
    if name not in DOCS_ASSETS:
        raise KeyError(name)
    return (_STATIC / name).read_bytes(), _TYPES[Path(name).suffix]


def swagger_html() -> str:
    """The Swagger UI page: its script and style come from this server (see :data:`DOCS_ASSETS`).

    ``swagger-init.js`` points Swagger UI at ``/openapi.json``; no inline script, so the page's
    Content-Security-Policy can allow this server's own scripts only.
    """
    css, bundle, init = DOCS_ASSETS
    openapi_url = "/openapi.json"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>groundwork serve: API</title>
<link rel="stylesheet" href="/docs/{css}"></head>
<body><div id="swagger-ui"></div>
<noscript>The API description is at <a href="{openapi_url}">{openapi_url}</a>.</noscript>
<script src="/docs/{bundle}"></script>
<script src="/docs/{init}"></script>
</body></html>
"""
