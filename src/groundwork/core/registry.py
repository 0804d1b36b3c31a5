"""The model registry: named models, numbered versions, aliases with history, signatures.

    with gw.start_run(name="train") as run:
        run.log_model(model, "digits", example=x_test[:5])       # -> version N+1
    gw.promote_model("digits", 3, alias="production", reason="beats v2 on acc")
    gw.load_model("digits@production").predict(rows)            # (engines.flavors)

A reference names one version: ``name@alias``, ``name/3`` or ``name`` (its newest
version; ``name@latest`` says the same). Each version points at a content-addressed
artifact: a folder holding the model in its native form, an ONNX form beside it when
conversion worked, ``groundwork-model.json`` and an input example.

How a kind of model object is saved is a *flavor* (scikit-learn, PyTorch, ONNX,
optimized variants). This module never imports one: flavors are registered in
:mod:`groundwork.core.flavors`; the built-in ones live in the engines layer and the
package root registers them by name, the way a plugin registers its own.
"""

from __future__ import annotations

import difflib
import json
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from groundwork._process import current_user
from groundwork._text import number_span
from groundwork.config import Config
from groundwork.core.flavors import CODE_FLAVOR, flavor_for, get_flavor
from groundwork.core.signatures import Signature, example_rows
from groundwork.errors import InvalidInput, ModelNotFound
from groundwork.storage.artifacts import hash_file
from groundwork.storage.records import AliasMove, ArtifactRow, VersionRow
from groundwork.storage.stores import RegistryStore, open_stores

if TYPE_CHECKING:
    from groundwork.core.tracking import ActiveRun

#: The description of a model folder (written by :func:`log_model`, read by the loaders).
MODEL_FILE = "groundwork-model.json"
MODEL_FORMAT = "groundwork.model/1"
#: The input example kept with a version (a few rows, JSON): docs, warm-up and smoke tests.
EXAMPLE_FILE = "input_example.json"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")
LATEST = "latest"  # the reserved alias that always means the newest version


# =====================================================================================
# References and versions
# =====================================================================================
@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: exactly one of ``version`` and ``alias`` is set, or neither (latest)."""

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, ref: str) -> ModelRef:
        text = (ref or "").strip()
        hint = "write NAME@ALIAS (digits@production), NAME/VERSION (digits/3) or NAME (its newest version)"
        if not text:
            raise InvalidInput("empty model reference", hint=hint)
        if "@" in text:
            name, alias = text.split("@", 1)
            check_name(name)
            if alias != LATEST:
                check_alias(alias)
                return cls(name, alias=alias)
            return cls(name)
        if "/" in text:
            name, number = text.rsplit("/", 1)
            check_name(name)
            if not number.isdigit() or int(number) < 1:
                raise InvalidInput(f"{number!r} in {text!r} is not a version number", hint=hint)
            return cls(name, version=int(number))
        check_name(text)
        return cls(text)

    def __str__(self) -> str:
        if self.alias:
            return f"{self.name}@{self.alias}"
        if self.version is not None:
            return f"{self.name}/{self.version}"
        return self.name


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise InvalidInput(
            f"{name!r} is not a valid model name",
            hint="use letters, digits, '.', '_' and '-' (starting with a letter or digit), at most 255 characters",
        )
    return name


def check_alias(alias: str) -> str:
    if not _ALIAS.match(alias or "") or alias == LATEST:
        raise InvalidInput(
            f"{alias!r} is not a valid alias",
            hint="an alias starts with a letter and holds letters, digits, '_' and '-' "
            f"(at most 64); {LATEST!r} is reserved for the newest version",
        )
    return alias


@dataclass(frozen=True)
class ModelVersion:
    """One registered version, as read from the store."""

    name: str
    version: int
    run_id: str | None
    artifact_digest: str
    flavor: str
    onnx_digest: str | None
    signature: Signature | None
    description: str | None
    tags: dict[str, str]
    info: dict[str, Any]
    user: str | None
    created_at: float
    aliases: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: VersionRow, aliases: Sequence[str] = ()) -> ModelVersion:
        return cls(
            name=row.name,
            version=row.version,
            run_id=row.run_id,
            artifact_digest=row.artifact_digest,
            flavor=row.flavor,
            onnx_digest=row.onnx_digest,
            signature=Signature.from_dict(row.signature) if row.signature else None,
            description=row.description,
            tags=dict(row.tags),
            info=dict(row.info),
            user=row.user,
            created_at=row.created_at,
            aliases=tuple(aliases),
        )

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    def __repr__(self) -> str:
        return f"<ModelVersion {self.ref} {self.flavor}{' +onnx' if self.onnx_digest else ''}>"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "run_id": self.run_id,
            "artifact_digest": self.artifact_digest,
            "flavor": self.flavor,
            "onnx_digest": self.onnx_digest,
            "signature": self.signature.to_dict() if self.signature else None,
            "description": self.description,
            "tags": dict(self.tags),
            "info": dict(self.info),
            "user": self.user,
            "created_at": self.created_at,
            "aliases": list(self.aliases),
        }


@dataclass(frozen=True)
class ModelSummary:
    """A model with its newest version and its aliases (what ``groundwork models list`` shows)."""

    name: str
    description: str | None
    created_at: float
    latest_version: int | None
    aliases: dict[str, int]
    updated_at: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "created_at": self.created_at,
            "latest_version": self.latest_version,
            "aliases": dict(self.aliases),
            "updated_at": self.updated_at,
        }


def registry_store(config: Config | None = None) -> RegistryStore:
    """The registry of ``config`` (``open_stores(config).registry``)."""
    return open_stores(config or Config.from_env()).registry


def _who() -> str | None:
    return current_user()


def _unknown_model(reg: RegistryStore, name: str) -> ModelNotFound:
    names = reg.model_names()
    if not names:
        return ModelNotFound(
            f"no model named {name!r}: the registry is empty",
            hint="register one with run.log_model(model, NAME) inside gw.start_run()",
        )
    close = difflib.get_close_matches(name, names, n=3)
    shown = ", ".join(names[:10]) + (f" (and {len(names) - 10} more)" if len(names) > 10 else "")
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    return ModelNotFound(f"no model named {name!r}", hint=f"{hint}known models: {shown}")


def resolve_row(reg: RegistryStore, ref: str | ModelRef) -> VersionRow:
    """The version row a reference names; :class:`ModelNotFound` with a hint when there is none."""
    parsed = ref if isinstance(ref, ModelRef) else ModelRef.parse(ref)
    name = parsed.name
    if parsed.alias is not None:
        version = reg.alias_version(name, parsed.alias)
        if version is None:
            if reg.get_model(name) is None:
                raise _unknown_model(reg, name)
            aliases = reg.aliases(name)
            known = ", ".join(f"{a} -> {v}" for a, v in aliases.items()) or "none yet"
            raise ModelNotFound(
                f"model {name!r} has no alias {parsed.alias!r} (aliases: {known})",
                hint=f"point it at a version with: groundwork models promote {name} VERSION --alias {parsed.alias}",
            )
    elif parsed.version is not None:
        version = parsed.version
    else:
        latest = reg.latest_version(name)
        if latest is None:
            raise _unknown_model(reg, name)
        version = latest
    row = reg.get_version(name, version)
    if row is None:
        if reg.get_model(name) is None:
            raise _unknown_model(reg, name)
        numbers = reg.version_numbers(name)
        raise ModelNotFound(
            f"model {name!r} has no version {version} (versions: {number_span(numbers)})",
            hint=f"list them with: groundwork models show {name}",
        )
    return row


def get_model_version(ref: str, *, config: Config | None = None) -> ModelVersion:
    """The version that ``ref`` (``name@alias``, ``name/3`` or ``name``) names now."""
    reg = registry_store(config)
    row = resolve_row(reg, ref)
    aliases = [a for a, v in reg.aliases(row.name).items() if v == row.version]
    return ModelVersion.from_row(row, aliases)


def model_versions(name: str, *, config: Config | None = None) -> list[ModelVersion]:
    """Every version of ``name``, oldest first (ModelNotFound when the model does not exist)."""
    reg = registry_store(config)
    check_name(name)
    if reg.get_model(name) is None:
        raise _unknown_model(reg, name)
    aliases = reg.aliases(name)
    by_version: dict[int, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(version, []).append(alias)
    return [ModelVersion.from_row(r, by_version.get(r.version, ())) for r in reg.list_versions(name)]


def list_models(*, config: Config | None = None) -> list[ModelSummary]:
    """Every registered model with its newest version and aliases, by name."""
    reg = registry_store(config)
    aliases = reg.all_aliases()
    out = []
    for model in reg.list_models():
        history = reg.alias_history(model.name, limit=1)
        latest = reg.latest_version(model.name)
        updated = max([model.created_at, *(h.changed_at for h in history)])
        out.append(ModelSummary(model.name, model.description, model.created_at, latest,
                                aliases.get(model.name, {}), updated))
    return out


def promote(
    name: str,
    version: int,
    alias: str = "production",
    *,
    reason: str | None = None,
    who: str | None = None,
    config: Config | None = None,
) -> AliasMove:
    """Point ``alias`` of ``name`` at ``version`` and record the move (who, when, from, to, why).

    ``who`` defaults to this process's operating-system user; a server passes who asked.
    """
    check_alias(alias)
    reg = registry_store(config)
    row = resolve_row(reg, ModelRef(check_name(name), version=int(version)))
    who = who or _who()
    previous = reg.set_alias(name, alias, row.version, who=who, reason=reason)
    history = reg.alias_history(name, alias, limit=1)
    if previous == row.version or not history:
        return AliasMove(0, name, alias, previous, row.version, who, time.time(), reason)
    return history[0]


#: The SDK's name for :func:`promote` (``gw.promote_model``).
promote_model = promote


def remove_alias(
    name: str, alias: str, *, reason: str | None = None, who: str | None = None, config: Config | None = None
) -> int:
    """Remove ``alias`` from ``name`` (recorded in history, ``who`` as in :func:`promote`); returns the version it pointed at."""
    check_alias(alias)
    reg = registry_store(config)
    previous = reg.alias_version(check_name(name), alias)
    if previous is None:
        resolve_row(reg, ModelRef(name, alias=alias))  # raises the helpful ModelNotFound
        raise AssertionError("unreachable")
    reg.set_alias(name, alias, None, who=who or _who(), reason=reason)
    return previous


def alias_history(name: str, alias: str | None = None, *, config: Config | None = None) -> list[AliasMove]:
    """Every move of ``name``'s aliases (or one alias), newest first."""
    reg = registry_store(config)
    check_name(name)
    if reg.get_model(name) is None:
        raise _unknown_model(reg, name)
    return reg.alias_history(name, alias)


# =====================================================================================
# Logging a model
# =====================================================================================
def log_model(
    run: ActiveRun,
    obj: Any,
    name: str,
    signature: Signature | Mapping[str, Any] | None = None,
    example: Any = None,
    *,
    description: str | None = None,
    tags: Mapping[str, Any] | None = None,
    code: Sequence[str | Path] | None = None,
    artifacts: Mapping[str, str | Path] | None = None,
) -> ModelVersion:
    """Save ``obj`` as version N+1 of the model ``name``, made by ``run``.

    The signature is inferred from ``example`` (inputs, and outputs by predicting on
    it) when not given. Where the flavor converts to ONNX, the ONNX form is kept
    beside the native one (and checked against it on the example).

    ``code`` (files and package folders) and ``artifacts`` (``{name: file or folder}``)
    make ``obj`` a Python model (any object with ``predict``): they are stored with it
    and restored where it loads (see ``groundwork.engines.flavors.python``).
    """
    check_name(name)
    if signature is not None and not isinstance(signature, Signature):
        signature = Signature.from_dict(signature)
    extra: dict[str, Any] = {}
    if code is not None or artifacts is not None:
        flavor = get_flavor(CODE_FLAVOR)
        extra = {"code": list(code or ()), "artifacts": dict(artifacts or {})}
    else:
        flavor = flavor_for(obj)
    from groundwork.storage.stores import open_stores

    with tempfile.TemporaryDirectory(prefix="gw-model-") as tmp:
        folder = Path(tmp) / "model"
        folder.mkdir()
        saved = flavor.save(obj, folder, example=example, signature=signature, **extra)
        final_signature = signature or saved.signature
        if signature is not None and not signature.outputs and saved.signature is not None:
            final_signature = Signature(signature.inputs, saved.signature.outputs, signature.columnar)
        document = {
            "format": MODEL_FORMAT,
            "flavor": flavor.name,
            "native": saved.native,
            "onnx": saved.onnx,
            "signature": final_signature.to_dict() if final_signature else None,
            "info": saved.info,
            "example": EXAMPLE_FILE if example is not None else None,
        }
        if example is not None:
            (folder / EXAMPLE_FILE).write_text(json.dumps(example_rows(example), default=_json_default))
        (folder / MODEL_FILE).write_text(json.dumps(document, indent=1, sort_keys=True, default=str))
        info = open_stores(run.config).artifacts.put_dir(folder)
        onnx_digest = hash_file(folder / saved.onnx)[0] if saved.onnx else None
    run.flush()  # the run's row may still be buffered; the version links to it
    reg = registry_store(run.config)
    version = reg.create_version(
        name,
        artifact=ArtifactRow(info.digest, info.size, info.is_dir, info.file_count),
        flavor=flavor.name,
        run_id=run.id,
        onnx_digest=onnx_digest,
        signature=final_signature.to_dict() if final_signature else None,
        description=description,
        tags={str(k): str(v) for k, v in (tags or {}).items()},
        info={**saved.info, "native": saved.native, "onnx": saved.onnx},
        user=_who(),
    )
    row = reg.get_version(name, version)
    assert row is not None
    return ModelVersion.from_row(row)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def read_model_document(data: bytes, digest: str) -> dict[str, Any]:
    """The parsed ``groundwork-model.json`` of artifact ``digest``."""
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise InvalidInput(f"{MODEL_FILE} of artifact {digest[:12]} is not JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != MODEL_FORMAT:
        raise InvalidInput(f"artifact {digest[:12]} is not a groundwork model folder ({MODEL_FILE} has no {MODEL_FORMAT!r})")
    return document


# =====================================================================================
# Lineage: alias -> version -> artifact -> run -> inputs
# =====================================================================================
class ModelLineage:
    """Adds model versions and aliases to the lineage graph (``groundwork lineage digits@production``).

    Nodes: ``alias:<name>@<alias>`` and ``model:<name>/<version>``. Edges, the way data
    flows: ``artifact -> model`` (``registered``: the version is that artifact) and
    ``model -> alias`` (``alias``: where the alias points now). The built-in provider
    continues from the artifact to the run that logged it and on to that run's inputs.
    Targets: ``name@alias``, ``name/3``, and ``model:name`` (the newest version); a
    plain ``name`` stays a run name.
    """

    def resolve(self, ref: str, ctx: Any) -> Any:
        text = ref.strip()
        if text.startswith("model:"):
            text = text[len("model:"):]
            parsed = ModelRef.parse(text)
        elif "@" in text or ("/" in text and text.rsplit("/", 1)[1].isdigit()):
            if Path(text).exists():
                return None  # a file path: the built-in provider's
            try:
                parsed = ModelRef.parse(text)
            except InvalidInput:
                return None
        else:
            return None
        reg = ctx.registry
        row = resolve_row(reg, parsed)
        if parsed.alias is not None:
            return self._alias_node(parsed.name, parsed.alias, row.version)
        return self._version_node(row, reg)

    def expand(self, nodes: Sequence[Any], direction: str, ctx: Any) -> list[tuple[Any, Any]]:
        from groundwork.core.lineage import UP, LineageEdge, artifact_node

        reg = ctx.registry
        out: list[tuple[Any, Any]] = []
        for node in nodes:
            if node.kind == "alias" and direction == UP:
                row = reg.get_version(node.attrs["name"], node.attrs["version"])
                if row is not None:
                    out.append((LineageEdge(_model_id(row.name, row.version), node.id, "alias", node.attrs["alias"]),
                                self._version_node(row, reg)))
            elif node.kind == "model" and direction == UP:
                row = reg.get_version(node.attrs["name"], node.attrs["version"])
                if row is None:
                    continue
                links = [lk for lk in ctx.store.artifact_users(row.artifact_digest) if lk.direction == "output"]
                link = links[0] if links else None
                attrs = {} if link else {"name": f"models/{row.name}/{row.version}", "artifact_kind": "model"}
                out.append((LineageEdge(f"artifact:{row.artifact_digest}", node.id, "registered", row.flavor),
                            artifact_node(row.artifact_digest, link, **attrs)))
            elif node.kind == "model":
                name, version = node.attrs["name"], node.attrs["version"]
                for alias, points in reg.aliases(name).items():
                    if points == version:
                        out.append((LineageEdge(node.id, f"alias:{name}@{alias}", "alias", alias),
                                    self._alias_node(name, alias, version)))
            elif node.kind == "artifact" and direction != UP:
                for row in reg.versions_for_artifact(node.attrs["digest"]):
                    if row.artifact_digest == node.attrs["digest"]:
                        out.append((LineageEdge(node.id, _model_id(row.name, row.version), "registered", row.flavor),
                                    self._version_node(row, reg)))
        return out

    @staticmethod
    def _alias_node(name: str, alias: str, version: int) -> Any:
        from groundwork.core.lineage import LineageNode

        return LineageNode(f"alias:{name}@{alias}", "alias", f"alias {name}@{alias} -> version {version}",
                           {"name": name, "alias": alias, "version": version})

    @staticmethod
    def _version_node(row: VersionRow, reg: RegistryStore) -> Any:
        from groundwork.core.lineage import LineageNode

        aliases = [a for a, v in reg.aliases(row.name).items() if v == row.version]
        signature = Signature.from_dict(row.signature).describe() if row.signature else None
        label = f"model {row.name}/{row.version} ({row.flavor}{', +onnx' if row.onnx_digest else ''})"
        return LineageNode(_model_id(row.name, row.version), "model", label, {
            "name": row.name, "version": row.version, "flavor": row.flavor,
            "made_by": row.run_id, "artifact_digest": row.artifact_digest, "onnx_digest": row.onnx_digest,
            "signature": signature, "aliases": aliases, "created_at": row.created_at,
        })


def _model_id(name: str, version: int) -> str:
    return f"model:{name}/{version}"


MODEL_LINEAGE = ModelLineage()

