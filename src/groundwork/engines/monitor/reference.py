"""The reference a stream is compared with: by default the data that trained the served version.

:func:`find_reference` walks the version's lineage upstream (version -> its artifact ->
the run that logged it -> that run's inputs -> the runs that made them ...) and takes the
nearest **dataset** (an input logged with kind ``dataset``: every pipeline step input is
one; ``run.log_input(path)`` is one) whose columns fit the model's inputs. Where two are
equally near, one whose name says ``train`` wins. The demo's ``digits@production`` finds
``split.train`` this way: the run that registers the model logs the raw training split as
its input. :func:`load_reference` reads one the user names instead (``--reference``: a
Parquet, CSV or ``.npy`` file, or an artifact digest).

Columns are matched to the logged features by the served layout: a model taking rows of
``k`` numbers needs ``k`` numeric columns (in order), and may have one more, the target
(``label``, ``target``, ``y``, or the last); a model taking named columns needs those
names. The target, where there is one, is what the predictions are compared with.
"""

from __future__ import annotations

import io
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from groundwork.config import Config
from groundwork.engines.monitor.segment import Layout
from groundwork.engines.monitor.sketch import BlockSketch, CategoryCounts, NumberSketch, Summary
from groundwork.errors import GroundworkError, InvalidInput, NotFound

#: Column names taken for the target of a reference with one column more than the model takes.
TARGET_NAMES = ("label", "labels", "target", "y", "class", "outcome")


class ReferenceNotFound(NotFound):
    headline = "Reference not found"


class ReferenceMismatch(InvalidInput):
    """A reference whose columns do not fit what the model takes."""

    headline = "Reference does not fit the model"


@dataclass
class Reference:
    """Summaries of a reference data set, keyed by the logged feature names (``x0``... or column names)."""

    source: str  # lineage | given
    description: str
    digest: str | None
    rows: int
    names: dict[str, str]  # logged feature -> the reference's column name
    features: dict[str, Summary]
    prediction: Summary | None = None
    target: str | None = None
    path: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "description": self.description, "digest": self.digest, "rows": self.rows,
                "target": self.target, "columns": list(self.names.values()), "path": self.path}


# -- tables --------------------------------------------------------------------------------------------------
def read_table(data: bytes, what: str) -> dict[str, np.ndarray[Any, Any]]:
    """Columns of a Parquet, ``.npy`` or CSV file's bytes (sniffed), as NumPy arrays."""
    if data[:4] == b"PAR1":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(pa.BufferReader(data), use_threads=False)  # see segment.read_segment: a clean exit
        return {name: _column(table.column(name)) for name in table.column_names if not name.startswith("__")}
    if data[:6] == b"\x93NUMPY":
        array = np.load(io.BytesIO(data), allow_pickle=False)
        if array.ndim == 1:
            array = array.reshape(-1, 1)
        if array.ndim != 2:
            raise ReferenceMismatch(f"{what} is an array shaped {list(array.shape)}; a reference is a table of rows",
                                    hint="give rows of the model's inputs (n, features)")
        return {f"x{i}": array[:, i] for i in range(array.shape[1])}
    try:
        import pyarrow.csv as pcsv

        table = pcsv.read_csv(io.BytesIO(data))
    except Exception:
        raise ReferenceMismatch(f"{what} is not a Parquet, CSV or .npy file",
                                hint="give a table of the model's inputs as Parquet, CSV or .npy") from None
    return {name: _column(table.column(name)) for name in table.column_names}


def _column(column: Any) -> np.ndarray[Any, Any]:
    array = column.to_numpy()
    return np.asarray(array)


def _is_number(values: np.ndarray[Any, Any]) -> bool:
    return values.dtype.kind in "iufb"


def fit_table(columns: dict[str, np.ndarray[Any, Any]], layout: Layout, what: str) -> tuple[dict[str, str], str | None]:
    """Which reference column is each logged feature (and which is the target), or :class:`ReferenceMismatch`."""
    names = list(columns)
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    if layout.inputs == "tensor":
        k = len(layout.names)
        if len(names) == k:
            chosen, target = names, None
        elif len(names) == k + 1:
            target = next((n for n in names if n.lower() in TARGET_NAMES), names[-1])
            chosen = [n for n in names if n != target]
        else:
            raise ReferenceMismatch(
                f"{what} has {len(names)} columns ({shown}); the model takes rows of {k} values",
                hint=f"give a table of {k} input columns, and at most one target column (label)")
        text = [n for n in chosen if not _is_number(columns[n])]
        if text:
            raise ReferenceMismatch(f"{what}: column {text[0]!r} is not numbers; the model takes rows of {k} numbers",
                                    hint="give the model's input columns (and at most one target column)")
        return dict(zip(layout.names, chosen, strict=True)), target
    if layout.inputs == "columns":
        missing = [n for n in layout.names if n not in columns]
        if missing:
            raise ReferenceMismatch(
                f"{what} lacks the model's input column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(map(repr, missing[:5]))} (it has {shown})",
                hint="give a table with the columns the model takes")
        rest = [n for n in names if n not in layout.names]
        target = next((n for n in rest if n.lower() in TARGET_NAMES), rest[0] if len(rest) == 1 else None)
        return {n: n for n in layout.names}, target
    if layout.inputs == "text":
        text = [n for n in names if not _is_number(columns[n])]
        if not text:
            raise ReferenceMismatch(f"{what} has no text column ({shown}); the model takes text",
                                    hint="give a table with the texts in a column")
        rest = [n for n in names if n != text[0]]
        return {"text_length": text[0]}, next((n for n in rest if n.lower() in TARGET_NAMES), None)
    raise ReferenceMismatch(f"{what} cannot be compared: this model's inputs are logged whole, not per feature",
                            hint="drift is measured for models that take rows of numbers, named columns or text")


def summarize(columns: dict[str, np.ndarray[Any, Any]], layout: Layout, what: str, *, source: str,
              digest: str | None, path: list[dict[str, str]] | None = None) -> Reference:
    """The reference's summaries, in the logged features' terms."""
    names, target = fit_table(columns, layout, what)
    rows = len(next(iter(columns.values()))) if columns else 0
    features: dict[str, Summary] = {}
    numbers = [f for f, kind in zip(layout.names, layout.kinds, strict=True)
               if kind == "number" and layout.inputs != "text"]
    if numbers:
        block = BlockSketch(len(numbers))
        block.add(np.column_stack([columns[names[f]].astype(np.float64, copy=False) for f in numbers]))
        features.update(zip(numbers, block.sketches(), strict=True))
    for feature, column in names.items():
        if feature in features:
            continue
        values = columns[column]
        if layout.inputs == "text":
            features[feature] = NumberSketch.of(np.fromiter((len(str(v)) for v in values.tolist()), dtype=np.float64))
        else:
            features[feature] = CategoryCounts.of(values)
    prediction: Summary | None = None
    if target is not None and layout.outputs == "vector":
        values = columns[target]
        prediction = CategoryCounts.of(values) if layout.output_kind == "category" else NumberSketch.of(
            values.astype(np.float64))
    return Reference(source, what, digest, rows, names, features, prediction, target, path or [])


# -- finding one ----------------------------------------------------------------------------------------------
def load_reference(spec: str, layout: Layout, *, config: Config, files: bool = True) -> Reference:
    """The reference ``spec`` names: a file path (unless ``files`` is False), or the digest (or a prefix) of an artifact."""
    path = Path(spec).expanduser()
    if files and path.is_file():
        return summarize(read_table(path.read_bytes(), str(path)), layout, str(path), source="given", digest=None)
    if files and path.exists():
        raise InvalidInput(f"--reference {spec}: a folder; give one Parquet, CSV or .npy file")
    from groundwork.storage.stores import open_stores

    stores = open_stores(config)
    text = spec.lower().removeprefix("sha256:")
    if len(text) >= 4 and all(c in "0123456789abcdef" for c in text):
        found = stores.metadata.find_artifacts(text)
        if len(found) > 1:
            raise InvalidInput(f"--reference {spec} matches {len(found)} artifacts", hint="type more characters")
        if found:
            digest = found[0]
            data = stores.artifacts.get_bytes(digest)
            return summarize(read_table(data, f"artifact {digest[:12]}"), layout, f"artifact {digest[:12]}",
                             source="given", digest=digest)
    raise ReferenceNotFound(f"--reference {spec}: no such file, and no recorded artifact has that digest",
                            hint="give the path of a Parquet, CSV or .npy file, or an artifact digest")


def find_reference(model: str, version: int, layout: Layout, *, config: Config) -> Reference:
    """The data that trained ``model``/``version``, found through lineage (see the module's docstring)."""
    from groundwork.core.lineage import lineage
    from groundwork.storage.stores import open_stores

    graph = lineage(f"{model}/{version}", config=config)
    parents: dict[str, str | None] = {graph.root.id: None}
    distance = {graph.root.id: 0}
    order: list[str] = []
    queue = deque([graph.root.id])
    while queue:
        node_id = queue.popleft()
        order.append(node_id)
        for _edge, node in graph.next_of(node_id):
            if node.id not in distance:
                distance[node.id] = distance[node_id] + 1
                parents[node.id] = node_id
                queue.append(node.id)
    candidates = [graph.nodes[i] for i in order
                  if graph.nodes[i].kind == "artifact" and graph.nodes[i].attrs.get("artifact_kind") == "dataset"
                  and not graph.nodes[i].attrs.get("is_dir")]
    candidates.sort(key=lambda n: (distance[n.id], "train" not in str(n.attrs.get("name", "")).lower(),
                                   order.index(n.id)))
    artifacts = open_stores(config).artifacts
    refused: list[str] = []
    for node in candidates:
        digest = node.attrs["digest"]
        name = str(node.attrs.get("name") or digest[:12])
        what = f"{name} (sha256 {digest[:12]})"
        try:
            columns = read_table(artifacts.get_bytes(digest), what)
            return summarize(columns, layout, what, source="lineage", digest=digest,
                             path=_path(graph, parents, node.id))
        except GroundworkError as exc:
            refused.append(str(exc).splitlines()[0])
    if refused:
        raise ReferenceNotFound(
            f"no data set upstream of {model}/{version} fits its inputs: {'; '.join(refused[:3])}",
            hint="pass --reference PATH (a table of the model's input columns), or log the training data as an input "
                 "of the run that logs the model (run.log_input(path, kind='dataset'))")
    raise ReferenceNotFound(
        f"no training data is recorded upstream of {model}/{version} (lineage found no data set)",
        hint="pass --reference PATH, or log the training data as an input of the run that logs the model "
             "(run.log_input(path, kind='dataset'))")


def _path(graph: Any, parents: dict[str, str | None], node_id: str) -> list[dict[str, str]]:
    """The chain from the version to ``node_id``: id, kind and label of each node."""
    chain = []
    at: str | None = node_id
    while at is not None:
        node = graph.nodes[at]
        chain.append({"id": node.id, "type": node.kind, "label": node.label})
        at = parents[at]
    return list(reversed(chain))


__all__ = ["Reference", "ReferenceMismatch", "ReferenceNotFound", "find_reference", "fit_table", "load_reference",
           "read_table", "summarize"]
