"""Exports recorded in the registry: a model version packaged for another runtime, with its verification.

``groundwork export`` (the engine in :mod:`groundwork.engines.export`) builds and checks a
bundle; when the check passes, :func:`record_export` stores the bundle folder as a
content-addressed artifact and links it to the version with the verification (runtime
and its version, precision, agreement, size, latency). ``groundwork models show`` and
the UI list them (:func:`list_exports`), and lineage reaches them:

==============  =============================  ============================================
relation        edge                           meaning
==============  =============================  ============================================
``exported``    model version -> export        the export was made from the version
``bundle``      export -> artifact             the exported folder, as stored
==============  =============================  ============================================

so ``groundwork lineage web-bundle/`` (the folder, digested) leads back to the version,
the run that made it and that run's inputs, and ``groundwork lineage digits/3
--descendants`` shows the version's exports. An export node's id is ``export:<id>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from groundwork.config import Config
from groundwork.core.registry import MODEL_LINEAGE, ModelRef, _who, registry_store, resolve_row
from groundwork.errors import InvalidInput
from groundwork.storage.records import ArtifactRow, ExportRow


@dataclass(frozen=True)
class ExportRecord(ExportRow):
    """A recorded (passed) export of a model version: its row, with a summary and a reference."""

    @classmethod
    def from_row(cls, row: ExportRow) -> ExportRecord:
        return cls(**{f.name: getattr(row, f.name) for f in fields(ExportRow)})

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    def summary(self) -> str:
        """One line: ``web fp16, 12.3 MB, agreement 100.0% (label) in Chromium 140``."""
        v = self.verification
        agreement = v.get("agreement") or {}
        measure = agreement.get("measure", "agreement")
        value = agreement.get("value")
        if not isinstance(value, (int, float)):
            shown = "agreement ?"
        elif measure == "cosine":
            shown = f"mean cosine {value:.4f}"
        else:
            shown = f"{'label agreement' if measure == 'label' else measure} {value:.1%}"
        size = (v.get("size") or {}).get("total_bytes")
        return f"{self.target} {self.precision}, {_size(size)}, {shown} in {v.get('runtime', {}).get('name', '?')}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "version": self.version, "ref": self.ref, "target": self.target,
            "precision": self.precision, "artifact_digest": self.artifact_digest,
            "verification": dict(self.verification), "location": self.location, "user": self.user,
            "created_at": self.created_at,
        }


def _size(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "? B"
    if n >= 1e6:
        return f"{n / 1e6:.1f} MB"
    return f"{n / 1e3:.1f} KB" if n >= 1e3 else f"{int(n)} B"


def record_export(
    name: str,
    version: int,
    folder: Path,
    *,
    target: str,
    precision: str,
    verification: Mapping[str, Any],
    config: Config | None = None,
    user: str | None = None,
) -> ExportRecord:
    """Store ``folder`` (a passed export) as an artifact and record it as an export of ``name``/``version``."""
    from groundwork.storage.stores import open_stores

    config = config or Config.from_env()
    reg = registry_store(config)
    resolve_row(reg, ModelRef(name, version=version))  # the version must exist (ModelNotFound otherwise)
    info = open_stores(config).artifacts.put_dir(folder)
    export_id = reg.add_export(
        name, version, target=target, precision=precision,
        artifact=ArtifactRow(info.digest, info.size, info.is_dir, info.file_count),
        verification=verification, location=str(Path(folder).resolve()), user=user if user is not None else _who(),
    )
    row = reg.get_export(export_id)
    assert row is not None
    return ExportRecord.from_row(row)


def list_exports(ref: str, *, config: Config | None = None, all_versions: bool = False) -> list[ExportRecord]:
    """The recorded exports of the version ``ref`` names (or, ``all_versions``, of every version), newest first."""
    reg = registry_store(config)
    row = resolve_row(reg, ref)
    version = None if all_versions else row.version
    return [ExportRecord.from_row(r) for r in reg.exports(row.name, version)]


# =====================================================================================
# Lineage: model version -> export -> bundle artifact
# =====================================================================================
class ExportLineage:
    """Adds export nodes (``export:<id>``) between a model version and its stored bundle."""

    def resolve(self, ref: str, ctx: Any) -> Any:
        text = ref.strip()
        if not text.startswith("export:"):
            return None
        number = text[len("export:"):]
        if not number.isdigit():
            raise InvalidInput(f"{text!r} is not an export reference", hint="write export:ID (groundwork models show lists them)")
        row = ctx.registry.get_export(int(number))
        if row is None:
            from groundwork.errors import NotFound

            raise NotFound(f"no export {number} is recorded in this store", hint="groundwork models show NAME lists them")
        return _export_node(row)

    def expand(self, nodes: Sequence[Any], direction: str, ctx: Any) -> list[tuple[Any, Any]]:
        from groundwork.core.lineage import UP, LineageEdge, artifact_node

        reg = ctx.registry
        out: list[tuple[Any, Any]] = []
        for node in nodes:
            if node.kind == "model" and direction != UP:
                for row in reg.exports(node.attrs["name"], node.attrs["version"]):
                    out.append((LineageEdge(node.id, f"export:{row.id}", "exported", f"{row.target} {row.precision}"),
                                _export_node(row)))
            elif node.kind == "export" and direction == UP:
                model = MODEL_LINEAGE.resolve(f"{node.attrs['name']}/{node.attrs['version']}", ctx)
                if model is not None:
                    out.append((LineageEdge(model.id, node.id, "exported", f"{node.attrs['target']} {node.attrs['precision']}"),
                                model))
            elif node.kind == "export":
                digest = node.attrs["artifact_digest"]
                out.append((LineageEdge(node.id, f"artifact:{digest}", "bundle", node.attrs["target"]),
                            artifact_node(digest, None, name=f"{node.attrs['target']} {node.attrs['precision']}",
                                          artifact_kind="export")))
            elif node.kind == "artifact" and direction == UP:
                for row in reg.exports_for_artifact(node.attrs["digest"]):
                    out.append((LineageEdge(f"export:{row.id}", node.id, "bundle", row.target), _export_node(row)))
        return out


def _export_node(row: ExportRow) -> Any:
    from groundwork.core.lineage import LineageNode

    record = ExportRecord.from_row(row)
    return LineageNode(f"export:{row.id}", "export", f"export {row.id} of {row.name}/{row.version}: {record.summary()}", {
        "id": row.id, "name": row.name, "version": row.version, "target": row.target, "precision": row.precision,
        "artifact_digest": row.artifact_digest, "location": row.location, "created_at": row.created_at,
        "verification": dict(row.verification),
    })


EXPORT_LINEAGE = ExportLineage()


__all__ = ["EXPORT_LINEAGE", "ExportRecord", "list_exports", "record_export"]
