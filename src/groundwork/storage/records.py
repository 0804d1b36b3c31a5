"""The records the stores read and write: plain frozen dataclasses, no SQL.

Every implementation of the store interface (:mod:`groundwork.storage.stores`) takes and
returns these: the SQL stores build them from rows, the team server's client from JSON.
``to_dict()`` is each record's one JSON shape (the API's, and the CLI's ``--json``);
:func:`to_wire` / :func:`from_wire` carry any of them, numpy arrays included, over HTTP.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# -- params: text for the filter language, and the type they were logged with ---------------------


def param_number(value: str) -> float | None:
    """The number a param's text reads as (None when it is not a finite number)."""
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def param_text(value: Any) -> str:
    """The text form of a param value (what filters compare as text)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(value)
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


def param_type(value: Any) -> str | None:
    """How a param value was typed when logged (None: text)."""
    if isinstance(value, str):
        return None
    if isinstance(value, bool):
        return "bool"
    if value is None:
        return "null"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, np.generic):
        return param_type(value.item())
    return "json"


def param_value(text: str, kind: str | None) -> Any:
    """A param's value as logged, from its text and :func:`param_type` (text when unknown)."""
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind in ("bool", "null", "json"):
            return json.loads(text)
    except ValueError:
        return text
    return text


# -- runs ----------------------------------------------------------------------------------------

#: Statuses a run never leaves.
TERMINAL_STATUSES = ("finished", "failed", "crashed", "cached", "pruned")

MetricPoint = tuple[str, str, int, float, float]  # run_id, key, step, value, timestamp
LogLine = tuple[str, str, float, str]  # run_id, stream, timestamp, text


@dataclass(frozen=True)
class MetricSegment:
    """Many points of one series at once (what ``log_points`` hands over)."""

    run_id: str
    key: str
    steps: np.ndarray[Any, np.dtype[np.int64]]
    values: np.ndarray[Any, np.dtype[np.float64]]
    timestamps: np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True)
class RunCreate:
    """A run's first rows: written with the first flush that follows ``start_run``."""

    row: Mapping[str, Any]
    params: Mapping[str, Any] | None = None
    tags: Mapping[str, Any] | None = None
    environment: tuple[str, str] | None = None
    links: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True)
class MetricSeries:
    """A metric series as arrays, ordered by step (stable: logging order within a step)."""

    steps: np.ndarray[Any, np.dtype[np.int64]]
    values: np.ndarray[Any, np.dtype[np.float64]]
    timestamps: np.ndarray[Any, np.dtype[np.float64]]

    def __len__(self) -> int:
        return int(self.steps.shape[0])


@dataclass
class RunRow:
    """One row of the ``runs`` table, plus what a query asked to join."""

    id: str
    name: str
    kind: str
    status: str
    parent_id: str | None
    command: list[str] | None
    cwd: str | None
    user: str | None
    host: str | None
    pid: int | None
    created_at: float
    ended_at: float | None
    heartbeat_at: float | None
    exit_code: int | None
    error: str | None
    git_commit: str | None
    git_branch: str | None
    git_dirty: bool | None
    diff_digest: str | None
    env_digest: str | None
    cache_key: str | None
    cached_from: str | None
    project: str = "default"
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> RunRow:
        values = dict(row)
        command = values.get("command")
        values["command"] = json.loads(command) if command else None
        git_dirty = values.get("git_dirty")
        values["git_dirty"] = None if git_dirty is None else bool(git_dirty)
        return cls(**values)


@dataclass(frozen=True)
class RunEnd:
    """How a run ended, written in the same transaction as its last points."""

    run_id: str
    status: str
    exit_code: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class LogEntry:
    """One chunk of captured output, with its id (for following a live log)."""

    id: int
    stream: str
    timestamp: float
    text: str


@dataclass(frozen=True)
class LatestMetric:
    """The last point of one metric series of a run."""

    key: str
    value: float
    step: int
    timestamp: float


@dataclass(frozen=True)
class ArtifactLink:
    run_id: str
    direction: str
    name: str
    digest: str
    kind: str
    created_at: float
    size: int
    is_dir: bool
    file_count: int


# -- the registry ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRow:
    name: str
    description: str | None
    created_at: float
    latest_version: int
    project: str = "default"


@dataclass(frozen=True)
class VersionRow:
    name: str
    version: int
    run_id: str | None
    artifact_digest: str
    flavor: str
    onnx_digest: str | None
    signature: dict[str, Any] | None
    description: str | None
    tags: dict[str, str]
    info: dict[str, Any]
    user: str | None
    created_at: float

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> VersionRow:
        values = dict(row)
        values["signature"] = json.loads(values["signature"]) if values.get("signature") else None
        values["tags"] = json.loads(values["tags"]) if values.get("tags") else {}
        values["info"] = json.loads(values["info"]) if values.get("info") else {}
        return cls(**values)


@dataclass(frozen=True)
class AliasMove:
    """One row of ``alias_history``: ``to_version`` is None when the alias was removed."""

    id: int
    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    who: str | None
    changed_at: float
    reason: str | None


@dataclass(frozen=True)
class ArtifactRow:
    """The artifact a version points at (as the artifact store described it)."""

    digest: str
    size: int
    is_dir: bool
    file_count: int


@dataclass(frozen=True)
class ExportRow:
    """One passed export of a version (``model_exports``): the bundle artifact and its verification."""

    id: int
    name: str
    version: int
    target: str
    precision: str
    artifact_digest: str
    verification: dict[str, Any]
    location: str | None
    user: str | None
    created_at: float

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> ExportRow:
        values = dict(row)
        values["verification"] = json.loads(values["verification"]) if values.get("verification") else {}
        return cls(**values)


# -- the prediction log ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentRow:
    """One segment of a model's prediction log (``prediction_segments``).

    ``status`` is ``open`` while a server fills it (``pid`` on ``host``; ``rows`` as of
    ``updated_at``) and ``closed`` once ``digest`` (its Parquet file) and ``summary`` are stored.
    """

    id: str
    model: str
    status: str
    pid: int | None
    host: str | None
    opened_at: float
    updated_at: float
    closed_at: float | None
    first_ts: float | None
    last_ts: float | None
    rows: int
    requests: int
    digest: str | None
    size: int | None
    summary: dict[str, Any] | None = None

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> SegmentRow:
        values: dict[str, Any] = {f.name: row.get(f.name) for f in dataclasses.fields(cls)}
        values["rows"] = int(values["rows"] or 0)
        values["requests"] = int(values["requests"] or 0)
        return cls(**values)

    def to_dict(self, summary: bool = False) -> dict[str, Any]:
        """The JSON shape (the summary only when asked: it is large)."""
        out = dataclasses.asdict(self)
        if not summary:
            out.pop("summary")
        return out


# -- pipelines -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """An input or output of a run, as written."""

    direction: str  # input | output
    name: str
    digest: str
    size: int
    is_dir: bool
    file_count: int
    kind: str = "file"


@dataclass
class NewRun:
    """A run row with what goes with it, inserted by :func:`insert_runs`."""

    row: dict[str, Any]
    params: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, Any] = field(default_factory=dict)
    links: Sequence[Link] = ()


@dataclass(frozen=True)
class CacheCandidate:
    """A finished run that recorded a given cache key, with its outputs and tags."""

    run_id: str
    cache_key: str
    created_at: float
    outputs: tuple[ArtifactLink, ...]
    tags: Mapping[str, str]


# -- the team server: users, projects, memberships, tokens, the audit log --------------------------

#: The roles of a project member, weakest first (``groundwork.server.auth.Role`` orders them).
ROLES = ("viewer", "editor", "maintainer", "admin")
#: Kinds of token: an API token (``groundwork server tokens create``) or a web UI session.
TOKEN_KINDS = ("api", "session")


@dataclass(frozen=True)
class UserRow:
    """A user of a team server. ``password_hash`` never leaves the server (not in :meth:`to_dict`)."""

    name: str
    server_admin: bool
    disabled: bool
    created_at: float
    password_hash: str | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "server_admin": self.server_admin, "disabled": self.disabled,
                "created_at": self.created_at, "has_password": bool(self.password_hash)}


@dataclass(frozen=True)
class ProjectRow:
    """A project: it separates runs, pipelines and models on a team server."""

    name: str
    description: str | None
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class MembershipRow:
    """``user`` holds ``role`` (one of :data:`ROLES`) in ``project``."""

    user: str
    project: str
    role: str
    granted_at: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TokenRow:
    """An API token or a UI session: scoped to one project and a role no higher than ``role``.

    Only the SHA-256 of the secret is stored (``secret_hash``, not in :meth:`to_dict`).
    """

    id: str
    user: str
    project: str
    role: str
    name: str
    kind: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None
    secret_hash: str = field(default="", repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.pop("secret_hash")
        return out


@dataclass(frozen=True)
class TokenGrant:
    """What a token stands for right now: the token, its user, and the user's role in its project (None: none)."""

    token: TokenRow
    user: UserRow
    member_role: str | None


@dataclass(frozen=True)
class AuditEntry:
    """One state change on a team server: who (``actor``, with ``token_id``, from ``address``), what, when."""

    at: float
    actor: str
    action: str
    project: str | None = None
    target: str | None = None
    token_id: str | None = None
    address: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# -- the wire ----------------------------------------------------------------------------------------

_ARRAY = "__ndarray__"


def to_wire(value: Any) -> Any:
    """``value`` as JSON-able data: records as dicts, numpy arrays as typed base64, tuples as lists.

    JSON has no NaN or infinities: a non-finite float travels as ``"NaN"``, ``"Infinity"`` or
    ``"-Infinity"`` and :func:`from_wire` turns it back where the type says ``float``.
    """
    kind = type(value)
    if kind in _AS_IS:
        return value
    if kind is float:
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if kind is dict:  # the usual containers first, their plain items without a call each
        return {k if type(k) is str else str(k): v if type(v) in _AS_IS else to_wire(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [v if type(v) in _AS_IS else to_wire(v) for v in value]
    names = _record_fields(kind)  # type: ignore[arg-type]  # every type is hashable
    if names is not None:
        return {name: v if type(v := getattr(value, name)) in _AS_IS else to_wire(v) for name in names}
    if isinstance(value, float):
        return to_wire(float(value))
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value)
        return {_ARRAY: base64.b64encode(data.tobytes()).decode("ascii"), "dtype": data.dtype.str,
                "shape": list(data.shape)}
    if isinstance(value, Mapping):
        return {str(k): to_wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    if isinstance(value, np.generic):
        return to_wire(value.item())
    return value


#: Types whose values are JSON as they are (exactly these: a subclass takes the long way).
_AS_IS = frozenset({str, int, bool, type(None)})


@functools.cache
def _record_fields(kind: type) -> tuple[str, ...] | None:
    """A dataclass's field names (None for any other type), looked up once per type."""
    if dataclasses.is_dataclass(kind):
        return tuple(f.name for f in dataclasses.fields(kind))
    return None


@functools.cache
def _field_types(kind: type) -> tuple[tuple[str, Any], ...]:
    """A record class's fields with their resolved types (resolving them costs ~1 ms: once per class)."""
    hints = typing.get_type_hints(kind)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(kind))


_PLAIN = (str, int, bool, Any)


def from_wire(kind: Any, data: Any) -> Any:
    """The inverse of :func:`to_wire`, guided by a type (a record class, ``list[RunRow]``, ...).

    Each type is turned into a decoder once (:func:`_decoder`): a search answer of 100 runs
    is then one call per run and per field, not one per parameter, tag and metric.
    """
    return _decoder(kind)(data)


Decoder = Callable[[Any], Any]


def _same(data: Any) -> Any:
    return data


def _to_float(data: Any) -> Any:
    return None if data is None else float(data)  # "NaN", "Infinity" and "-Infinity" included


def _is_array(data: Any) -> bool:
    return isinstance(data, dict) and _ARRAY in data


def _array(data: dict[str, Any]) -> np.ndarray:
    raw = base64.b64decode(data[_ARRAY])
    return np.frombuffer(raw, dtype=np.dtype(data["dtype"])).reshape(data["shape"]).copy()


@functools.cache
def _decoder(kind: Any) -> Decoder:
    if kind in _PLAIN:
        return _same
    if kind is float:
        return _to_float
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) != 1:
            return _as_sent
        inner = _decoder(options[0])

        def decode_optional(data: Any) -> Any:
            if data is None:
                return None
            return _array(data) if _is_array(data) else inner(data)

        return decode_optional
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        fields = tuple((name, _decoder(hint)) for name, hint in _field_types(kind))
        record = kind

        def decode_record(data: Any) -> Any:
            if data is None:
                return None
            if _is_array(data):
                return _array(data)
            return record(**{name: decode(data[name]) for name, decode in fields if name in data})

        return decode_record
    if origin in (list, Sequence, typing.Sequence) and args:
        item = _decoder(args[0])

        def decode_list(data: Any) -> Any:
            if data is None:
                return None
            return _array(data) if _is_array(data) else [item(v) for v in data]

        return decode_list
    if origin is tuple and args:
        every = len(args) == 2 and args[1] is Ellipsis  # tuple[X, ...]: one type for every item
        items = tuple(map(_decoder, args[:1] if every else args))

        def decode_tuple(data: Any) -> Any:
            if data is None:
                return None
            if _is_array(data):
                return _array(data)
            if every:
                return tuple(map(items[0], data))
            return tuple(decode(v) for decode, v in zip(items, data, strict=True))

        return decode_tuple
    if origin in (dict, Mapping, typing.Mapping) and len(args) == 2:
        value = _decoder(args[1])

        def decode_mapping(data: Any) -> Any:
            if data is None:
                return None
            if _is_array(data):
                return _array(data)
            if value is _same:
                return data  # parsed JSON, owned by no one else
            if value is _to_float:
                return {k: v if type(v) is float else float(v) for k, v in data.items()}
            return {k: value(v) for k, v in data.items()}

        return decode_mapping
    return _as_sent


def _as_sent(data: Any) -> Any:
    """A value of a type without a decoder of its own (a union of several types, ...): as sent, arrays decoded."""
    return _array(data) if _is_array(data) else data


def to_json(value: Any) -> str:
    return json.dumps(to_wire(value), separators=(",", ":"))
