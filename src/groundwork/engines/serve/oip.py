"""The Open Inference Protocol (KServe v2, REST) beside ``/v1``: what ``tritonclient.http`` and KServe clients speak.

=========================================  ============================================================
route                                      answer
=========================================  ============================================================
``GET /v2``                                server metadata: name, version, extensions (none)
``GET /v2/health/live``                    200 ``{"live": true}`` while the process is up
``GET /v2/health/ready``                   200 ``{"ready": true}`` once every model is loaded; 503 before
``GET /v2/models/NAME[/versions/N]``       model metadata: versions, platform, input and output tensors
``GET /v2/models/NAME[/versions/N]/ready`` 200 ``{"name", "ready": true}``
``POST /v2/models/NAME[/versions/N]/infer`` JSON tensors in, JSON tensors out
=========================================  ============================================================

An inference request names each input tensor with ``name``, ``shape``, ``datatype``
and ``data`` (flat, in row-major order, or nested to the shape). A model that takes one
tensor of rows has one input (its name in the metadata, ``input`` when the signature
names none); a table model has one input per column, shaped ``[N]`` (or ``[N, 1]``).
The tensor is rebuilt to its shape and goes through the same validation as ``/v1``
(:mod:`.validation`): the same 400, 413, 415 and 422 answers, the same messages. Outputs
come back as ``{"name", "shape", "datatype", "data"}`` with the data flat.

Errors are what the protocol asks, ``{"error": "<what is wrong (how to fix it)>"}``, with
groundwork's other error fields beside it (``ok``, ``status``, ``message``, ``hint``).
Binary tensor data (Triton's extension, ``Inference-Header-Content-Length``) is not
read: a client sends JSON (``tritonclient``: ``binary_data=False``). Like every predict
request, the body must be declared JSON (``Content-Type: application/json``), which
``tritonclient`` does when given ``headers={"Content-Type": "application/json"}``.

A request without a version goes where ``/v1`` requests go (the route's draw, when the
model has one, shadow included); ``/versions/N`` asks for the version a target serves now.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from groundwork.core.signatures import Signature, TensorSpec
from groundwork.errors import GroundworkError, InvalidInput, NotFound, UnprocessableInput, error_body

PREFIX = "/v2"

#: NumPy dtype names and the protocol's datatypes.
DATATYPES = {
    "bool": "BOOL", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
    "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
    "float16": "FP16", "float32": "FP32", "float64": "FP64", "str": "BYTES",
}
_NUMERIC = {v for k, v in DATATYPES.items() if k not in ("bool", "str")}
_ALL = set(DATATYPES.values())
_HINT = 'send {"inputs": [{"name": ..., "shape": [N, ...], "datatype": "FP32", "data": [...]}]}'


@dataclass(frozen=True)
class V2Path:
    """What a ``/v2`` path asks for: ``kind`` is server, live, ready, model, model_ready or infer."""

    kind: str
    model: str | None = None
    version: int | None = None


def parse_path(path: str) -> V2Path | None:
    """The request a ``/v2...`` path makes (None: no such route; the caller answers 404)."""
    path = path.rstrip("/")
    if path != PREFIX and not path.startswith(PREFIX + "/"):
        return None
    parts = path.split("/")[2:]  # after "", "v2"
    if not parts:
        return V2Path("server")
    if parts[0] == "health" and len(parts) == 2 and parts[1] in ("live", "ready"):
        return V2Path(parts[1])
    if parts[0] != "models" or len(parts) < 2 or not parts[1]:
        return None
    name, rest = parts[1], parts[2:]
    version = None
    if rest[:1] == ["versions"]:
        if len(rest) < 2 or not rest[1].isdigit() or int(rest[1]) < 1:
            return None
        version, rest = int(rest[1]), rest[2:]
    if not rest:
        return V2Path("model", name, version)
    if rest == ["ready"]:
        return V2Path("model_ready", name, version)
    if rest == ["infer"]:
        return V2Path("infer", name, version)
    return None


def datatype(dtype: str) -> str:
    """The protocol's datatype for a signature dtype (``float32`` -> ``FP32``)."""
    return DATATYPES.get(dtype, "BYTES" if dtype in ("object", "str") else dtype.upper())


def _input_specs(signature: Signature | None) -> list[tuple[str, TensorSpec | None]]:
    if signature is None or not signature.inputs:
        return [("input", None)]
    if signature.columnar:
        return [(spec.name or "input", spec) for spec in signature.inputs]
    spec = signature.inputs[0]
    return [(spec.name or "input", spec)]


def _tensor(name: str, spec: TensorSpec | None) -> dict[str, Any]:
    if spec is None:
        return {"name": name, "datatype": "FP64", "shape": [-1, -1]}
    return {"name": name, "datatype": datatype(spec.dtype), "shape": list(spec.shape)}


def output_name(signature: Signature | None) -> str:
    if signature is not None and signature.outputs and signature.outputs[0].name:
        return str(signature.outputs[0].name)
    return "output"


def model_metadata(name: str, versions: list[int], flavor: str, signature: Signature | None) -> dict[str, Any]:
    outputs = [_tensor(output_name(signature), signature.outputs[0] if signature and signature.outputs else None)]
    if not (signature and signature.outputs):
        outputs[0]["shape"] = [-1]
    return {
        "name": name,
        "versions": [str(v) for v in versions],
        "platform": f"groundwork_{flavor}",
        "inputs": [_tensor(n, s) for n, s in _input_specs(signature)],
        "outputs": outputs,
    }


def server_metadata(version: str) -> dict[str, Any]:
    return {"name": "groundwork", "version": version, "extensions": []}


def parse_infer(document: Any, signature: Signature | None) -> tuple[Any, str | None, list[str] | None]:
    """An inference request as what :class:`~.validation.Validator` checks, its id, and the outputs it names."""
    if not isinstance(document, Mapping):
        raise InvalidInput("the request body must be a JSON object", hint=_HINT)
    tensors = document.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        raise InvalidInput('the request body has no "inputs" list of tensors', hint=_HINT)
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput('"id" must be a string')
    wanted = _requested_outputs(document.get("outputs"), signature)
    specs = dict(_input_specs(signature))
    given: dict[str, Any] = {}
    for index, tensor in enumerate(tensors):
        name, values = _read_tensor(index, tensor, specs)
        if name in given:
            raise InvalidInput(f"input {name!r} is given twice", hint="send each input tensor once")
        given[name] = values
    missing = [n for n in specs if n not in given]
    if missing:
        raise UnprocessableInput(f"missing input {', '.join(map(repr, missing))}",
                                 hint=f"the model takes {', '.join(map(repr, specs))} (GET /v2/models/NAME)")
    if signature is not None and signature.columnar:
        return given, request_id, wanted
    return next(iter(given.values())), request_id, wanted


def _requested_outputs(outputs: Any, signature: Signature | None) -> list[str] | None:
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(isinstance(o, Mapping) and isinstance(o.get("name"), str)
                                                for o in outputs):
        raise InvalidInput('"outputs" must be a list of {"name": ...} objects')
    names = [str(o["name"]) for o in outputs]
    known = output_name(signature)
    unknown = [n for n in names if n != known]
    if unknown:
        raise UnprocessableInput(f"unknown output {unknown[0]!r}", hint=f"the model returns {known!r}")
    return names


def _read_tensor(index: int, tensor: Any, specs: Mapping[str, TensorSpec | None]) -> tuple[str, Any]:
    if not isinstance(tensor, Mapping):
        raise InvalidInput(f"input {index} must be an object with name, shape, datatype and data", hint=_HINT)
    name = tensor.get("name")
    if not isinstance(name, str):
        raise InvalidInput(f"input {index} has no name", hint=_HINT)
    if name not in specs:
        raise UnprocessableInput(f"unknown input {name!r}",
                                 hint=f"the model takes {', '.join(map(repr, specs))} (GET /v2/models/NAME)")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not shape or not all(type(d) is int and d >= 0 for d in shape):
        raise InvalidInput(f"input {name!r}: shape must be a list of whole numbers >= 0, not {shape!r:.60}", hint=_HINT)
    kind = tensor.get("datatype")
    if kind not in _ALL:
        raise InvalidInput(f"input {name!r}: unknown datatype {kind!r:.30}",
                           hint=f"one of {', '.join(sorted(_ALL))}")
    spec = specs[name]
    want = datatype(spec.dtype) if spec is not None else "FP64"
    if (want == "BYTES") != (kind == "BYTES") or (want in _NUMERIC and kind == "BOOL" and want != "BOOL"):
        raise UnprocessableInput(f"input {name!r} is {kind}; the model takes {want}",
                                 hint="send the datatype GET /v2/models/NAME names")
    if "data" not in tensor:
        raise InvalidInput(f"input {name!r} has no data", hint=_HINT)
    flat = _flatten(tensor["data"])
    count = math.prod(shape)
    if len(flat) != count:
        raise UnprocessableInput(f"input {name!r} is shaped {shape} ({count} values) but holds {len(flat)} values",
                                 hint="data holds every value of the tensor, in row-major order")
    if spec is not None and spec.shape and len(spec.shape) == 1 and len(shape) == 2 and shape[1] == 1:
        shape = shape[:1]  # a column sent as [N, 1]
    return name, _reshape(flat, shape)


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if not any(isinstance(item, list) for item in data):
        return data
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def _reshape(flat: list[Any], shape: list[int]) -> list[Any]:
    """Nested lists of ``shape`` from row-major values (no NumPy: the values keep their JSON types for validation)."""
    if len(shape) == 1:
        return flat
    step = math.prod(shape[1:])
    return [_reshape(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def infer_response(name: str, version: int, request_id: str | None, outputs: Any,
                   signature: Signature | None) -> dict[str, Any]:
    """The protocol's answer for a model's outputs (one tensor)."""
    array = np.asarray(outputs)
    if array.dtype.kind in "OUS":
        kind = "BYTES"
        data = [str(v) for v in array.ravel().tolist()]
    else:
        kind = datatype(array.dtype.name)
        data = array.ravel().tolist()
    out: dict[str, Any] = {
        "model_name": name,
        "model_version": str(version),
        "outputs": [{"name": output_name(signature), "shape": list(array.shape), "datatype": kind, "data": data}],
    }
    if request_id is not None:
        out["id"] = request_id
    return out


def error_document(error: GroundworkError) -> dict[str, Any]:
    """``{"error": "<message (hint)>"}`` as the protocol asks, with groundwork's error fields beside it."""
    return {**error_body(error), "error": error.one_line()}


def not_served(name: str, served: list[str]) -> NotFound:
    from groundwork.errors import ModelNotFound

    return ModelNotFound(f"model {name!r} is not served here (served: {', '.join(served)})",
                         hint="GET /v2/models/NAME for one of them")


def version_not_served(name: str, version: int, serving: list[int]) -> NotFound:
    from groundwork.errors import ModelNotFound

    shown = ", ".join(str(v) for v in serving)
    return ModelNotFound(f"version {version} of {name!r} is not served here (serving {shown})",
                         hint=f"POST /v2/models/{name}/infer, or /versions/{serving[0]}/infer")


__all__ = ["DATATYPES", "PREFIX", "V2Path", "datatype", "error_document", "infer_response", "model_metadata",
           "not_served", "output_name", "parse_infer", "parse_path", "server_metadata", "version_not_served"]
