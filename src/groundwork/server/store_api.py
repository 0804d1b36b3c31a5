"""The store API: every method of every store contract as ``POST /api/v1/store/{contract}/{method}``.

This is what the team server's HTTP client (:mod:`groundwork.storage.http`) calls, so the
SDK, the CLI, pipelines and ``groundwork serve`` run unchanged against a server. The
routes are made from the Protocols in :mod:`groundwork.storage.stores`
(:func:`groundwork.storage.http.contract_methods`): one pydantic model per method, built
from its type hints, validates the JSON body (a bad one is a 400 in the ``error_body``
shape) and documents it in ``/api/openapi.json``. The answer is
``{"ok": true, "result": to_wire(result)}``.

Who may call what is :data:`ROLES`: reads need ``viewer``, run and artifact-link writes
``editor``, registry changes ``maintainer``. Every call runs on the stores of the
caller's project (:func:`~groundwork.server.auth.stores_for`), runs it creates and alias
moves are recorded as the token's user's (not whom the client names), and every state change
worth knowing about (a run created or ended, params, tags, links, registry changes) is
written to the audit log; metric batches and heartbeats are not (one row per batch would
outweigh the batch).

Answers are bounded: run searches return at most :data:`~groundwork.storage.http.PAGE_MAX`
rows per call (the client pages), bodies are at most :data:`MAX_BODY` bytes.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from fastapi import APIRouter, Depends, HTTPException
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator
from starlette.requests import Request
from starlette.responses import Response

from groundwork import filters
from groundwork.errors import InvalidInput
from groundwork.server.audit import audit
from groundwork.server.auth import Principal, Role, require, stores_for
from groundwork.server.responses import JSON
from groundwork.storage.http import CONTRACTS, PAGE_MAX, Method, contract_methods
from groundwork.storage.records import MetricSegment, from_wire, to_wire

#: The largest request body the store API reads (a metric batch of 50,000 points is about 2 MB).
MAX_BODY = 64 * 1024 * 1024
#: The most items one ``limit`` may ask for where the contract allows "all" (logs, alias history).
MAX_ITEMS = 1_000_000

_I64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
_I32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]

# -- who may call what ---------------------------------------------------------------------------------------

_V, _E, _M = Role.viewer, Role.editor, Role.maintainer

#: The role each method needs, by contract. Every method of every contract is here (a test checks).
ROLES: dict[str, dict[str, Role]] = {
    "metadata": {
        "create_run": _E, "update_run": _E, "end_run": _E, "heartbeat": _E, "log_params": _E, "set_tags": _E,
        "delete_tag": _E, "write_batch": _E, "log_metrics": _E, "add_artifact_link": _E,
        "run_artifacts": _V, "artifact_users": _V, "find_artifacts": _V, "environment": _V, "resolve_run": _V,
        "get_run": _V, "get_runs": _V, "search_runs": _V, "count_runs": _V, "child_runs": _V,
        "child_counts": _V, "keys": _V, "latest_metrics": _V, "metric_series": _V, "metric_history": _V,
        "metric_keys": _V, "logs": _V, "log_entries": _V,
    },
    "registry": {
        "create_version": _M, "set_description": _M, "set_alias": _M, "add_export": _M,
        "get_model": _V, "list_models": _V, "model_names": _V, "get_version": _V, "latest_version": _V,
        "list_versions": _V, "version_numbers": _V, "versions_for_run": _V, "versions_for_artifact": _V,
        "aliases": _V, "all_aliases": _V, "alias_version": _V, "alias_history": _V, "exports": _V,
        "get_export": _V, "exports_for_artifact": _V,
    },
    "pipelines": {
        "insert_runs": _E, "finish_run": _E, "add_links": _E,
        "find_cached": _V, "links_for_runs": _V, "links_for_digests": _V, "artifact_rows": _V,
        "runs_citing": _V, "runs_tagged": _V,
    },
    "monitor": {
        "open_segment": _E, "touch_segment": _E, "close_segment": _E,
        "segments": _V, "monitored_models": _V,
    },
}

# -- the audit log: which writes it records, and how ------------------------------------------------------------

AuditRows = list[tuple[str, str | None, dict[str, Any]]]  # (action, target, details)


def _keys(values: Mapping[str, Any] | None) -> list[str]:
    return sorted(str(k) for k in (values or {}))


def _created(row: Mapping[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
    return ("run.create", str(row.get("id")), {"name": row.get("name"), "kind": row.get("kind", "run")})


def _audit_write_batch(args: dict[str, Any], result: Any) -> AuditRows:
    if result is False:  # a retried batch applied before: nothing changed now
        return []
    rows: AuditRows = [_created(c.row) for c in args.get("creations") or ()]
    end = args.get("end")
    if end is not None:
        rows.append(("run.end", end.run_id, {"status": end.status}))
    return rows


def _alias_moved(args: dict[str, Any], previous: Any) -> tuple[str, str, dict[str, Any]]:
    """An alias move, named as the UI's promote and remove routes name it (``groundwork audit --action model.alias``)."""
    target = f"{args['name']}@{args['alias']}"
    if args["version"] is None:
        return ("model.alias.remove", target, {"previous": previous, "reason": args.get("reason")})
    return ("model.alias", target, {"version": args["version"], "previous": previous, "reason": args.get("reason")})


_AUDITED: dict[tuple[str, str], Callable[[dict[str, Any], Any], AuditRows]] = {
    ("metadata", "create_run"): lambda a, r: [_created(a["row"])],
    ("metadata", "update_run"): lambda a, r: [("run.update", a["run_id"], {"fields": _keys(a.get("values"))})],
    ("metadata", "end_run"): lambda a, r: [("run.end", a["run_id"], {"status": a["status"]})],
    ("metadata", "log_params"): lambda a, r: [("run.params", a["run_id"], {"keys": _keys(a["params"])})],
    ("metadata", "set_tags"): lambda a, r: [("run.tags", a["run_id"], {"keys": _keys(a["tags"])})],
    ("metadata", "delete_tag"): lambda a, r: [("run.tag.delete", a["run_id"], {"key": a["key"]})],
    ("metadata", "write_batch"): _audit_write_batch,
    ("metadata", "add_artifact_link"): lambda a, r: [
        ("run.artifact", a["run_id"], {"direction": a["direction"], "name": a["name"], "digest": a["digest"]})],
    ("registry", "create_version"): lambda a, r: [
        ("model.register", a["name"], {"version": r, "run_id": a.get("run_id"), "digest": a["artifact"].digest})],
    ("registry", "set_description"): lambda a, r: [("model.describe", a["name"], {"version": a.get("version")})],
    ("registry", "set_alias"): lambda a, r: [_alias_moved(a, r)],
    ("registry", "add_export"): lambda a, r: [
        ("model.export", a["name"], {"version": a["version"], "target": a["target"], "export_id": r})],
    ("pipelines", "insert_runs"): lambda a, r: [_created(run.row) for run in a["runs"]],
    ("pipelines", "finish_run"): lambda a, r: [("run.end", a["run_id"], {"status": a["status"]})],
    ("pipelines", "add_links"): lambda a, r: [
        ("run.artifact", a["run_id"], {"links": [f"{x.direction}:{x.name}" for x in a["links"]]})],
}

# -- bodies: pydantic models made from the Protocols' type hints ---------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), populate_by_name=True)


class RunRowIn(_Body):
    """A run's row as a client writes it (``project`` is the token's, never the body's)."""

    id: str = Field(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z_-]+$")
    name: str = Field(max_length=255)
    kind: str = Field("run", max_length=32)
    status: str = Field(max_length=16)
    parent_id: str | None = Field(None, max_length=32)
    command: list[str] | None = None
    cwd: str | None = None
    user: str | None = Field(None, max_length=255)
    host: str | None = Field(None, max_length=255)
    pid: _I32 | None = None
    created_at: float
    ended_at: float | None = None
    heartbeat_at: float | None = None
    exit_code: _I32 | None = None
    error: str | None = None
    git_commit: str | None = Field(None, max_length=64)
    git_branch: str | None = Field(None, max_length=255)
    git_dirty: bool | None = None
    diff_digest: str | None = Field(None, max_length=64)
    env_digest: str | None = Field(None, max_length=64)
    cache_key: str | None = Field(None, max_length=64)
    cached_from: str | None = Field(None, max_length=32)


class RunUpdateIn(_Body):
    """What ``update_run`` may change (reopening a run)."""

    name: str | None = Field(None, max_length=255)
    status: str | None = Field(None, max_length=16)
    ended_at: float | None = None
    error: str | None = None
    exit_code: _I32 | None = None
    pid: _I32 | None = None
    host: str | None = Field(None, max_length=255)
    heartbeat_at: float | None = None
    command: list[str] | None = None
    cwd: str | None = None


class LinkIn(_Body):
    """An artifact link given as a mapping (``create_run``'s ``links``)."""

    direction: Literal["input", "output"]
    name: str
    digest: str = Field(min_length=1, max_length=64)
    size: _I64
    is_dir: bool
    file_count: _I64
    kind: str = "file"


class _WireArray(_Body):
    """A numpy array as :func:`~groundwork.storage.records.to_wire` writes it: base64 of its bytes, dtype, shape."""

    data: str = Field(alias="__ndarray__", description="base64 of the array's little-endian bytes")
    shape: list[Annotated[int, Field(ge=0, le=2**40)]] = Field(min_length=1, max_length=1)
    itemsize: ClassVar[int] = 8

    @model_validator(mode="after")
    def _whole(self) -> _WireArray:
        try:
            size = len(base64.b64decode(self.data, validate=True))
        except (binascii.Error, ValueError):
            raise ValueError("__ndarray__ is not base64") from None
        if size != self.shape[0] * self.itemsize:
            raise ValueError(f"__ndarray__ holds {size} bytes, not the {self.shape[0] * self.itemsize} its shape says")
        return self


@functools.cache
def _array_model(dtype: str) -> type[BaseModel]:
    kind = np.dtype(dtype)
    dtype_field: Any = (Literal[kind.str], Field(description=f"always {kind.str!r}"))
    model = create_model(f"Array_{kind.name}", __base__=_WireArray, dtype=dtype_field)
    model.itemsize = kind.itemsize
    return model


def _is_filter_type(hint: Any) -> bool:
    """The filter tree and sort keys: a client sends their text instead."""
    if isinstance(hint, type) and hint.__module__ == filters.__name__:
        return True
    args = typing.get_args(hint)
    return typing.get_origin(hint) in (list, Sequence, typing.Sequence) and bool(args) and _is_filter_type(args[0])


def _is_mapping_of_any(hint: Any) -> bool:
    return typing.get_origin(hint) in (dict, Mapping, typing.Mapping) and typing.get_args(hint)[1:] == (Any,)


def _override(name: str, hint: Any) -> Any | None:
    """The typed shape of arguments the Protocols hand over as loose mappings."""
    if name == "row" and _is_mapping_of_any(hint):
        return RunRowIn
    args = typing.get_args(hint)
    if name == "links" and args and _is_mapping_of_any(args[0]):
        return list[LinkIn]
    return None


def wire_type(hint: Any, name: str = "") -> Any:
    """The pydantic type that validates the JSON of an argument typed ``hint``."""
    found = _override(name, hint)
    if found is not None:
        return found
    if hint is Any or hint is type(None) or hint in (str, bool):
        return hint
    if hint is int:
        return _I64
    if hint is float:
        return float  # "NaN", "Infinity" and "-Infinity" included, as to_wire sends them
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = tuple(wire_type(a, name) for a in args if not _is_filter_type(a))
        return functools.reduce(lambda a, b: a | b, options) if len(options) > 1 else options[0]
    if origin is np.ndarray:
        dtype = typing.get_args(args[1])[0] if len(args) > 1 else np.float64
        return _array_model(np.dtype(dtype).str)
    if origin in (list, Sequence, typing.Sequence):
        return list[wire_type(args[0])] if args else list[Any]  # type: ignore[misc]
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple[wire_type(args[0]), ...]  # type: ignore[misc]
        return tuple[tuple(wire_type(a) for a in args)]  # type: ignore[misc]
    if origin in (dict, Mapping, typing.Mapping):
        return dict[str, wire_type(args[1]) if len(args) == 2 else Any]  # type: ignore[misc]
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _record_model(hint)
    return Any


@functools.cache
def _record_model(cls: type) -> type[BaseModel]:
    """A pydantic model of a record dataclass (its JSON shape on the wire)."""
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = Field(default_factory=f.default_factory)
        else:
            default = ...
        fields[f.name] = (wire_type(hints[f.name], f.name), default)
    model: type[BaseModel] = create_model(cls.__name__ + "In", __base__=_Body, __doc__=cls.__doc__, **fields)
    return model


#: Arguments whose range the wire narrows: a run search returns at most PAGE_MAX rows per call.
_LIMITS: dict[tuple[str, str], Any] = {
    ("search_runs", "limit"): (Annotated[int, Field(ge=0, le=PAGE_MAX)], 100),
    ("child_runs", "limit"): (Annotated[int, Field(ge=0, le=PAGE_MAX)], PAGE_MAX),
    ("keys", "limit"): (Annotated[int, Field(ge=0, le=100_000)], 2000),
}


def _parameter_field(method: Method, parameter: inspect.Parameter) -> tuple[Any, Any]:
    hint = method.hints.get(parameter.name, Any)
    narrowed: tuple[Any, Any] | None = _LIMITS.get((method.name, parameter.name))
    if narrowed is not None:
        return narrowed
    if parameter.kind is inspect.Parameter.VAR_KEYWORD:
        return (RunUpdateIn, ...) if method.name == "update_run" else (dict[str, Any], Field(default_factory=dict))
    wired = wire_type(hint, parameter.name)
    if parameter.name in ("limit", "tail", "per_key"):
        wired = Annotated[int, Field(ge=0, le=MAX_ITEMS)] | None
    elif parameter.name == "offset":
        wired = Annotated[int, Field(ge=0, le=2**62)]
    default = ... if parameter.default is inspect.Parameter.empty else parameter.default
    if isinstance(default, (tuple, list)):
        default = Field(default_factory=list)
    return wired, default


@functools.cache
def body_model(contract: str, name: str) -> type[BaseModel] | None:
    """The model of a method's JSON body (None for a method without arguments)."""
    method = contract_methods(contract)[name]
    if not method.parameters:
        return None
    fields: dict[str, Any] = {p.name: _parameter_field(method, p) for p in method.parameters}
    title = "".join(part.capitalize() for part in (contract, *name.split("_")))
    model: type[BaseModel] = create_model(title, __base__=_Body, __doc__=method.doc or None, **fields)
    return model


def _arguments(method: Method, body: BaseModel | None) -> dict[str, Any]:
    """The validated body as the Python values the store method takes (records, arrays, tuples)."""
    if body is None:
        return {}
    given = body.model_dump(by_alias=True, exclude_unset=True)
    out: dict[str, Any] = {}
    for parameter in method.parameters:
        if parameter.name not in given:
            continue
        value = given[parameter.name]
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        else:
            out[parameter.name] = from_wire(method.hints.get(parameter.name, Any), value)
    for segment in out.get("segments") or ():
        _check_segment(segment)
    return out


def _check_segment(segment: MetricSegment) -> None:
    if not len(segment.steps) == len(segment.values) == len(segment.timestamps):
        raise InvalidInput(
            f"a metric segment of {segment.key!r} has {len(segment.steps)} steps, {len(segment.values)} values "
            f"and {len(segment.timestamps)} timestamps",
            hint="steps, values and timestamps must be equally long",
        )


# -- the routes -----------------------------------------------------------------------------------------------------


class _StoreRoute(APIRoute):
    """Reads at most :data:`MAX_BODY` bytes of a body, and parses it with orjson."""

    def get_route_handler(self) -> Callable[[Request], typing.Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            return await handler(_BoundedRequest(request.scope, request.receive))

        return bounded


class _BoundedRequest(Request):
    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            declared = self.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_BODY:
                raise _too_large()
            chunks: list[bytes] = []
            size = 0
            async for chunk in self.stream():
                size += len(chunk)
                if size > MAX_BODY:
                    raise _too_large()
                chunks.append(chunk)
            self._body = b"".join(chunks)
        return self._body

    async def json(self) -> Any:
        import orjson

        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())  # orjson.JSONDecodeError is a json.JSONDecodeError: a 400
        return self._json


def _too_large() -> HTTPException:
    # An HTTPException: FastAPI turns any other error raised while it reads a body into a 400.
    return HTTPException(413, f"a store API request may carry at most {MAX_BODY:,} bytes")


def _stamp_user(contract: str, name: str, arguments: dict[str, Any], user: str) -> None:
    """A run the server creates is the token's user's, whatever operating system user the client names."""
    if (contract, name) == ("metadata", "create_run"):
        arguments["row"] = {**arguments["row"], "user": user}
    elif (contract, name) == ("metadata", "write_batch") and arguments.get("creations"):
        arguments["creations"] = [dataclasses.replace(c, row={**c.row, "user": user}) for c in arguments["creations"]]
    elif (contract, name) == ("pipelines", "insert_runs"):
        arguments["runs"] = [dataclasses.replace(r, row={**r.row, "user": user}) for r in arguments["runs"]]


def _endpoint(contract: str, method: Method, role: Role) -> Callable[..., Response]:
    model = body_model(contract, method.name)
    audited = _AUDITED.get((contract, method.name))
    action = f"{contract}.{method.name}"

    def endpoint(request: Request, principal: Principal, body: BaseModel | None = None) -> Response:
        arguments = _arguments(method, body)
        if "who" in arguments:  # an alias move is the token's user's, whoever the client says it is
            arguments["who"] = principal.user
        _stamp_user(contract, method.name, arguments, principal.user)
        store = getattr(stores_for(principal, request), contract)
        result = getattr(store, method.name)(**arguments)
        if audited is not None:
            for what, target, details in audited(arguments, result):
                audit(principal, what, target, details)
        return JSON({"ok": True, "result": to_wire(result)})

    parameters = [
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request),
        inspect.Parameter("principal", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                          annotation=Annotated[Principal, Depends(require(role))]),
    ]
    if model is not None:
        parameters.append(inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=model))
    endpoint.__signature__ = inspect.Signature(parameters, return_annotation=Response)  # type: ignore[attr-defined]
    endpoint.__name__ = endpoint.__qualname__ = f"store_{contract}_{method.name}"
    endpoint.required_role = role  # type: ignore[attr-defined]
    endpoint.__doc__ = action
    return endpoint


_ANSWER: dict[str, Any] = {
    "description": "The method's result, as `groundwork.storage.records.to_wire` writes it",
    "content": {"application/json": {"schema": {
        "type": "object", "required": ["ok", "result"],
        "properties": {"ok": {"type": "boolean", "const": True}, "result": {}},
    }}},
}


def build_router() -> APIRouter:
    """One route per method of every contract (mount under ``/api/v1``)."""
    router = APIRouter(prefix="/store", route_class=_StoreRoute)
    for contract in CONTRACTS:
        roles = ROLES[contract]
        for name, method in contract_methods(contract).items():
            role = roles[name]  # a method without a role is a KeyError here: nothing is exposed by accident
            router.add_api_route(
                f"/{contract}/{name}",
                _endpoint(contract, method, role),
                methods=["POST"],
                response_class=JSON,
                response_model=None,
                responses={200: _ANSWER},
                name=f"store.{contract}.{name}",
                summary=f"{contract}.{name}",
                description=(method.doc.strip() + "\n\n" if method.doc.strip() else "")
                + f"Needs the **{role.name}** role in the token's project.",
                tags=[f"store: {contract}"],
            )
    return router


router = build_router()
