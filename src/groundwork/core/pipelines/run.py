"""Running a pipeline: walk the graph, reuse what the cache has, execute the rest, record it all.

``run_pipeline`` records the pipeline as a run (kind ``pipeline``) holding its
graph as an artifact (kind ``pipeline``, ``pipeline.json``), then visits the
steps in topological order. For each step whose inputs are ready it computes the
cache key (:mod:`~groundwork.core.pipelines.cache`) and looks for the newest
``finished`` step run with that key whose outputs are all still in the artifact
store. On a hit it records a ``cached`` run pointing at it (``cached_from``) and
linking the same outputs, without running anything; on a miss it records a
``running`` step run and hands the step to the executor. Cached runs are
written in batches, one transaction for all the hits found in one pass, so
deciding that a whole pipeline is cached costs a few queries per step.

A step that raises (after its ``retries``) fails the pipeline: no new step
starts, running ones finish, and their outputs (and those of every step that
finished before) stay recorded, so the next run resumes from the cache.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from groundwork._text import plural
from groundwork.config import Config
from groundwork.core.pipelines.cache import CodeDigest, cache_key, package_versions, project_root
from groundwork.core.pipelines.dag import Graph, Node, OutputRef
from groundwork.core.pipelines.executors import Executor, executor_class
from groundwork.core.pipelines.materializers import (
    canonical_json,
    get_materializer,
    materializer_for,
    no_materializer_error,
    registered_materializers,
    type_name,
)
from groundwork.core.pipelines.pipeline import Pipeline, load_pipeline
from groundwork.core.pipelines.step import Output
from groundwork.core.pipelines.worker import InputSpec, OutputInfo, StepOutcome, StepTask
from groundwork.errors import ExecutionError, GroundworkError, InvalidInput
from groundwork.storage.records import Link, NewRun, RunRow
from groundwork.storage.stores import MetadataStore, open_stores

#: Running step runs get a heartbeat this often (crash detection waits 30 s).
HEARTBEAT_INTERVAL_S = 5.0

#: Tag names on step runs (see docs/pipelines.md).
TAG_STEP = "gw.step"
TAG_OUTPUTS = "gw.outputs"
TAG_ATTEMPTS = "gw.attempts"


logger = logging.getLogger("groundwork.core.pipelines.run")

class PipelineFailed(ExecutionError):
    """A step failed, so the pipeline did; ``result`` has every step's state, ``traceback`` the step's."""

    headline = "Pipeline failed"

    def __init__(self, message: str, *, result: PipelineResult, step: str | None, traceback: str | None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.result = result
        self.step = step
        self.traceback = traceback


@dataclass
class StepResult:
    """What happened to one step in one pipeline run."""

    name: str
    status: str = "pending"  # pending, running, finished, cached, failed, skipped
    run_id: str | None = None
    cached_from: str | None = None
    cache_key: str | None = None
    outputs: dict[str, OutputInfo] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    attempts: int = 0

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return max(0.0, self.ended_at - self.started_at)

    @property
    def ok(self) -> bool:
        return self.status in ("finished", "cached")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "run_id": self.run_id,
            "cached_from": self.cached_from,
            "cache_key": self.cache_key,
            "duration": self.duration,
            "attempts": self.attempts,
            "error": self.error,
            "outputs": {
                name: {"digest": o.digest, "kind": o.kind, "materializer": o.materializer, "type": o.type,
                       "size": o.size}
                for name, o in self.outputs.items()
            },
        }


@dataclass(frozen=True)
class StepEvent:
    """A change of a step's state, for live displays (``on_event``)."""

    step: str
    status: str  # running, retrying, finished, cached, failed, skipped
    result: StepResult


class PipelineResult:
    """The outcome of a pipeline run: its run id, status, and every step's :class:`StepResult`."""

    def __init__(self, pipeline: str, run_id: str, graph: Graph, config: Config) -> None:
        self.pipeline = pipeline
        self.run_id = run_id
        self.graph = graph
        self.config = config
        self.status = "running"
        self.steps: dict[str, StepResult] = {name: StepResult(name) for name in graph.nodes}
        self.started_at = time.time()
        self.ended_at: float | None = None

    def __repr__(self) -> str:
        return f"<PipelineResult {self.pipeline} {self.run_id[:12]} {self.status} {self.summary()}>"

    def __getitem__(self, step: str) -> StepResult:
        return self.steps[step]

    @property
    def duration(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at

    def count(self, status: str) -> int:
        return sum(1 for s in self.steps.values() if s.status == status)

    @property
    def fully_cached(self) -> bool:
        """Every step reused an earlier result (nothing was computed)."""
        return bool(self.steps) and all(s.status == "cached" for s in self.steps.values())

    def summary(self) -> str:
        parts = [plural(len(self.steps), "step")]
        for status in ("finished", "cached", "failed", "skipped"):
            n = self.count(status)
            if n:
                parts.append(f"{n} {'ran' if status == 'finished' else status}")
        return ", ".join(parts)

    def output(self, step: str | Output, name: str | None = None) -> Any:
        """Load a step's output: ``result.output("train")``, ``result.output("split", "test")``.

        A step with several outputs and no ``name`` gives a tuple of them all.
        """
        if isinstance(step, Output):
            handle = step
            step, name = handle.node, handle.name
        if step not in self.steps:
            raise InvalidInput(f"pipeline {self.pipeline!r} has no step {step!r}",
                               hint=f"steps: {', '.join(self.steps)}")
        result = self.steps[step]
        if not result.ok:
            raise InvalidInput(f"step {step!r} has no outputs: it is {result.status}")
        if name is None:
            names = self.graph[step].outputs
            if len(names) > 1:
                return tuple(load_output(result.outputs[n], self.config) for n in names)
            name = names[0]
        if name not in result.outputs:
            raise InvalidInput(f"step {step!r} has no output {name!r}", hint=f"outputs: {', '.join(result.outputs)}")
        return load_output(result.outputs[name], self.config)

    @property
    def value(self) -> Any:
        """What the pipeline function returned, with every output loaded."""
        return self._load_returns(self.graph.returns)

    def _load_returns(self, value: Any) -> Any:
        if isinstance(value, OutputRef):
            return self.output(value.node, value.output)
        if isinstance(value, tuple):
            return tuple(self._load_returns(v) for v in value)
        if isinstance(value, dict):
            return {k: self._load_returns(v) for k, v in value.items()}
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "run_id": self.run_id,
            "status": self.status,
            "fully_cached": self.fully_cached,
            "duration": self.duration,
            "steps": [s.to_dict() for s in self.steps.values()],
        }


def load_output(info: OutputInfo, config: Config, dest: Path | None = None) -> Any:
    """Read one stored output back into a value (files are restored under ``dest`` or a temp folder)."""
    from groundwork.storage.stores import open_stores

    materializer = get_materializer(info.materializer)
    if materializer.loads is not None and materializer.dumps is not None and dest is None:
        return materializer.loads(open_stores(config).artifacts.get_bytes(info.digest))
    folder = dest or Path(tempfile.mkdtemp(prefix="gw-output-"))
    path = folder / (info.filename or materializer.filename or "value")
    open_stores(config).artifacts.restore(info.digest, path)
    value = materializer.load(path)
    if materializer.source is None and dest is None:
        shutil.rmtree(folder, ignore_errors=True)
    return value


# -- running ------------------------------------------------------------------------------------------------


def run_pipeline(
    pipeline: Pipeline | str,
    params: Mapping[str, Any] | None = None,
    *,
    executor: str = "local",
    cache: bool = True,
    config: Config | None = None,
    max_workers: int | None = None,
    name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    echo: bool = True,
    on_event: Callable[[StepEvent], None] | None = None,
    command: Sequence[str] | None = None,
) -> PipelineResult:
    """Run ``pipeline`` (a ``@gw.pipeline`` function, or ``"module:function"``/``"file.py:function"``).

    ``cache=False`` runs every step (and records them, so a later run can reuse
    them). Raises :class:`PipelineFailed` when a step fails; ``.result`` then
    holds what happened to each step.
    """
    if isinstance(pipeline, str):
        pipeline = load_pipeline(pipeline)
    if not isinstance(pipeline, Pipeline):
        raise InvalidInput(f"run_pipeline takes a @gw.pipeline function or 'module:function', not {pipeline!r}")
    config = config or Config.from_env()
    executor_cls = executor_class(executor)  # an unknown name fails here, before anything is recorded
    graph = pipeline.build(**dict(params or {}))
    runner = _Runner(pipeline, graph, config, executor, executor_cls, cache=cache, max_workers=max_workers,
                     echo=echo, on_event=on_event)
    return runner.run(name=name, tags=tags, command=command)


@dataclass
class _Prepared:
    node: Node
    key: str
    inputs: dict[str, InputSpec]
    input_links: list[Link]
    step_tag: dict[str, Any]


class _Heartbeat:
    """Keeps the heartbeat of running step runs fresh from a background thread."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store
        self.ids: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._warned = False
        self._thread = threading.Thread(target=self._loop, name="groundwork-step-heartbeat", daemon=True)
        self._thread.start()

    def add(self, run_id: str) -> None:
        with self._lock:
            self.ids.add(run_id)

    def discard(self, run_id: str) -> None:
        with self._lock:
            self.ids.discard(run_id)

    def _loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_INTERVAL_S):
            with self._lock:
                ids = list(self.ids)
            if ids:
                try:
                    self.store.heartbeat(ids)
                except Exception as exc:  # a busy store now and then must not stop the pipeline
                    if not self._warned:
                        self._warned = True
                        logger.warning("pipeline heartbeat not written (retried every %s s): %s", HEARTBEAT_INTERVAL_S, exc)

    def stop(self) -> None:
        self._stop.set()


class _Runner:
    def __init__(
        self,
        pipeline: Pipeline,
        graph: Graph,
        config: Config,
        executor_name: str,
        executor_cls: Any,
        *,
        cache: bool,
        max_workers: int | None,
        echo: bool,
        on_event: Callable[[StepEvent], None] | None,
    ) -> None:
        self.pipeline = pipeline
        self.graph = graph
        self.config = config
        self.executor_name = executor_name
        self.executor_cls = executor_cls
        self.executor: Executor | None = None
        self.use_cache = cache
        self.max_workers = max_workers
        self.echo = echo
        self.on_event = on_event
        stores = open_stores(config)
        self.store = stores.metadata
        self.pipelines = stores.pipelines
        self.artifacts = stores.artifacts
        self.code = CodeDigest()
        self.package_memo: dict[str, str | None] = {}
        self.file_digests: dict[str, Any] = {}
        self.pickled: dict[str, bytes] = {}
        self.materializers_blob: bytes | None = None
        self.pending_rows: list[NewRun] = []
        self.pending_tasks: list[tuple[StepTask, Mapping[str, Any], StepResult]] = []
        self.running: dict[Future[StepOutcome], tuple[str, StepTask]] = {}
        self.used_slots = 0
        self.slot_use: dict[str, int] = {}
        self.seed = os.environ.get("GROUNDWORK_SEED") or None
        self.prepared: dict[str, _Prepared] = {}
        self.code_versions: dict[str, dict[str, Any]] = {}

    # -- the pipeline run ------------------------------------------------------------------------
    def run(self, *, name: str | None, tags: Mapping[str, Any] | None, command: Sequence[str] | None) -> PipelineResult:
        from groundwork.core.tracking import start_run

        run_tags = {"gw.pipeline": self.pipeline.reference, "gw.executor": self.executor_name}
        run_tags.update(dict(tags or {}))
        if not self.use_cache:
            run_tags["gw.cache"] = "off"
        self.prun = start_run(
            name=name or self.pipeline.name, kind="pipeline", params=self.graph.params, tags=run_tags,
            command=command, config=self.config,
        )
        self.prun.flush()  # written now: step runs refer to it, from other processes too
        self.row: RunRow = self.store.get_run(self.prun.id)
        self.result = PipelineResult(self.pipeline.name, self.prun.id, self.graph, self.config)
        self.heartbeat = _Heartbeat(self.store)
        try:
            dag = self.artifacts.put_bytes(canonical_json(self.graph.to_dict(ref=self.pipeline.reference)))
            self.dag_link = Link("output", "pipeline.json", dag.digest, dag.size, False, 1, "pipeline")
            self._loop()
        except BaseException as exc:
            self._abort(exc)
            raise
        finally:
            self.heartbeat.stop()
            if self.executor is not None:
                self.executor.shutdown()
        return self._finish()

    def _abort(self, exc: BaseException) -> None:
        """Something other than a step failed (Ctrl-C, the store, the executor): end every open run."""
        if isinstance(exc, KeyboardInterrupt):
            reason = "interrupted (Ctrl-C)"
        elif isinstance(exc, GroundworkError):
            reason = exc.one_line()
        else:
            reason = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        # Cache hits found in this pass are complete records: keep them. Queued steps never started.
        hits = [r for r in self.pending_rows if r.row.get("status") == "cached"]
        self.pending_rows, self.pending_tasks = [], []
        try:
            self.pipelines.insert_runs(hits)
        except Exception as exc:  # the pipeline already failed; say why these records are missing
            logger.warning("the %d cached steps found before the failure were not recorded: %s", len(hits), exc)
        for task_step in self.result.steps.values():
            if task_step.status == "pending" and task_step.run_id is not None:
                task_step.run_id = None  # queued but never recorded
        for future, (node, _task) in list(self.running.items()):
            future.cancel()
            step = self.result.steps[node]
            step.status, step.error, step.ended_at = "failed", reason, time.time()
            try:
                self.pipelines.finish_run(step.run_id or "", "failed", error=reason)
            except Exception as exc:
                logger.warning("step %s (run %s) could not be marked failed: %s", node, step.run_id, exc)
        self.result.status = "failed"
        self.result.ended_at = time.time()
        try:
            self.prun.end("failed", error=reason)
        except Exception as exc:
            logger.warning("pipeline run %s could not be marked failed: %s", self.prun.id, exc)

    def _finish(self) -> PipelineResult:
        result = self.result
        failed = [s for s in result.steps.values() if s.status == "failed"]
        status = "failed" if failed else "finished"
        links = [self.dag_link, *self._return_links()]
        summary = {"gw.steps": len(result.steps), "gw.ran": result.count("finished"),
                   "gw.cached": result.count("cached")}
        error = None
        if failed:
            first = failed[0]
            error = f"step {first.name!r} failed: {first.error}"
            if first.traceback:
                error += "\n" + first.traceback
        # The pipeline run owns the writer's heartbeat: end it through the tracking API.
        finish_links = [link for link in links if link.direction == "output"]

        self.pipelines.add_links(self.prun.id, finish_links)
        self.prun.set_tags(summary)
        self.prun.end(status, error=error)
        result.status = status
        result.ended_at = time.time()
        if failed:
            first = failed[0]
            skipped = result.count("skipped")
            hint = "fix it and run again: finished steps are reused from the cache"
            message = f"pipeline {self.pipeline.name!r} failed: {first.error}"
            if skipped:
                message += f" ({skipped} downstream step{'s' if skipped != 1 else ''} skipped)"
            raise PipelineFailed(message, result=result, step=first.name, traceback=first.traceback, hint=hint)
        return result

    def _return_links(self) -> list[Link]:
        links = []
        for ref in _refs(self.graph.returns):
            step = self.result.steps.get(ref.node)
            info = step.outputs.get(ref.output) if step else None
            if info is not None:
                links.append(Link("output", ref.label(), info.digest, info.size, info.is_dir, info.file_count, info.kind))
        return links

    # -- the loop --------------------------------------------------------------------------------
    def _loop(self) -> None:
        order = self.graph.topological_order()
        waiting = list(order)
        failed = False
        while True:
            progressed = True
            while progressed:
                progressed = False
                for name in list(waiting):
                    node = self.graph[name]
                    deps = [self.result.steps[d] for d in node.dependencies()]
                    if any(d.status in ("failed", "skipped") for d in deps):
                        self._set(name, "skipped", error="an upstream step failed")
                        waiting.remove(name)
                        progressed = True
                        continue
                    if not all(d.ok for d in deps) or failed:
                        continue
                    need = self._slots_needed(node)
                    prepared = self.prepared.get(name)
                    if prepared is None:
                        prepared = self.prepared[name] = self._prepare(node)
                        if self.use_cache and node.step.options.cache and self._try_cache(prepared):
                            waiting.remove(name)
                            progressed = True
                            continue
                    if not self._has_slots(need):
                        continue
                    self._queue(prepared, need)
                    waiting.remove(name)
                    progressed = True
            self._flush()
            if not self.running:
                for name in waiting:  # left waiting after a failure
                    self._set(name, "skipped", error="not started: another step failed")
                return
            done, _ = wait(list(self.running), timeout=HEARTBEAT_INTERVAL_S, return_when=FIRST_COMPLETED)
            for future in done:
                if self._complete(future) == "failed":
                    failed = True

    def _slots_needed(self, node: Node) -> int:
        cpus = node.step.options.resources.get("cpus", 1)
        return max(1, int(-(-float(cpus) // 1))) if cpus else 1

    def _has_slots(self, need: int) -> bool:
        slots = self._executor().slots
        if slots is None:
            return True
        return self.used_slots == 0 or self.used_slots + min(need, slots) <= slots

    def _executor(self) -> Executor:
        if self.executor is None:
            self.executor = self.executor_cls(self.config, self.max_workers)
        assert self.executor is not None
        return self.executor

    def _set(self, name: str, status: str, **changes: Any) -> None:
        step = self.result.steps[name]
        step.status = status
        for key, value in changes.items():
            setattr(step, key, value)
        if status in ("finished", "cached", "failed", "skipped") and step.ended_at is None:
            step.ended_at = time.time()
        if self.on_event is not None:
            self.on_event(StepEvent(name, status, step))

    # -- preparing a step ------------------------------------------------------------------------
    def _prepare(self, node: Node) -> _Prepared:
        inputs: dict[str, InputSpec] = {}
        key_inputs: dict[str, Any] = {}
        links: list[Link] = []
        for arg_name, arg in node.args.items():
            if arg.kind == "input" and arg.ref is not None:
                spec, info = self._upstream(arg.ref)
                inputs[arg_name] = spec
                key_inputs[arg_name] = info.digest
                links.append(Link("input", arg_name, info.digest, info.size, info.is_dir, info.file_count, info.kind))
            elif arg.kind == "inputs":
                items = []
                for i, ref in enumerate(arg.refs):
                    spec, info = self._upstream(ref)
                    items.append(spec)
                    links.append(Link("input", f"{arg_name}[{i}]", info.digest, info.size, info.is_dir,
                                      info.file_count, info.kind))
                inputs[arg_name] = InputSpec("artifacts", items=tuple(items))
                key_inputs[arg_name] = [s.digest for s in items]
            elif arg.kind == "file":
                path = Path(arg.value).resolve()
                info = self._file_digest(node, arg_name, path)
                inputs[arg_name] = InputSpec("file", path=str(path), digest=info.digest)
                key_inputs[arg_name] = info.digest
                links.append(Link("input", arg_name, info.digest, info.size, info.is_dir, info.file_count, "dataset"))
            elif arg.kind == "const":
                info = self._store_const(node, arg_name, arg.value)
                inputs[arg_name] = InputSpec("artifact", digest=info.digest, materializer=info.materializer,
                                             filename=info.filename)
                key_inputs[arg_name] = info.digest
                links.append(Link("input", arg_name, info.digest, info.size, info.is_dir, info.file_count, info.kind))
            else:
                inputs[arg_name] = InputSpec("value", value=arg.value)
        options = node.step.options
        code = self.code.of(node.step.fn)
        packages = package_versions(options.packages, self.package_memo)
        params = node.params
        if self.seed is not None:
            params = {**params, "GROUNDWORK_SEED": self.seed}
        key = cache_key(code=code, params=params, inputs=key_inputs, packages=packages, outputs=node.outputs)
        fn_file = getattr(getattr(node.step.fn, "__code__", None), "co_filename", "") or ""
        step_tag: dict[str, Any] = {
            "pipeline": self.pipeline.reference,
            "node": node.name,
            "function": node.step.reference,
            "file": fn_file,
            "root": project_root(fn_file) if fn_file and Path(fn_file).exists() else None,
            "params": node.params,
            "inputs": {k: _spec_json(v) for k, v in inputs.items() if v.kind != "value"},
            "outputs": list(node.outputs),
            "multiple": self._multiple(node),
            "packages": packages,
        }
        return _Prepared(node, key, inputs, links, step_tag)

    def _multiple(self, node: Node) -> bool:
        return node.step.options.outputs is not None or node.outputs != ("output",)

    def _upstream(self, ref: OutputRef) -> tuple[InputSpec, OutputInfo]:
        info = self.result.steps[ref.node].outputs[ref.output]
        return InputSpec("artifact", digest=info.digest, materializer=info.materializer, filename=info.filename), info

    def _file_digest(self, node: Node, arg_name: str, path: Path) -> Any:
        hit = self.file_digests.get(str(path))
        if hit is None:
            if not path.exists():
                raise InvalidInput(f"step {node.name!r}: file argument {arg_name!r} does not exist: {path}")
            hit = self.artifacts.put_path(path)  # stored, so the run can be reproduced from the store
            self.file_digests[str(path)] = hit
        return hit

    def _store_const(self, node: Node, arg_name: str, value: Any) -> OutputInfo:
        materializer = materializer_for(value)
        if materializer is None:
            raise no_materializer_error(node.name, value, what=f"was given (argument {arg_name!r})")
        folder = Path(tempfile.mkdtemp(prefix="gw-const-"))
        try:
            data = materializer.to_bytes(value) if materializer.source is None else None
            if data is not None:
                info = self.artifacts.put_bytes(data)
                filename = materializer.filename
            elif materializer.source is not None:
                path = materializer.source(value)
                filename = path.name
                info = self.artifacts.put_path(path)
            else:
                path = folder / materializer.filename
                materializer.save(value, path)
                filename = materializer.filename
                info = self.artifacts.put_path(path)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return OutputInfo(arg_name, info.digest, info.size, info.is_dir, info.file_count, materializer.kind,
                          materializer.name, type_name(value), filename)

    # -- the cache ---------------------------------------------------------------------------------
    def _try_cache(self, prepared: _Prepared) -> bool:
        node = prepared.node
        candidates = self.pipelines.find_cached([prepared.key], tag_keys=[TAG_OUTPUTS]).get(prepared.key, [])
        for candidate in candidates:
            outputs = _outputs_from(candidate.outputs, candidate.tags.get(TAG_OUTPUTS))
            if outputs is None or set(outputs) != set(node.outputs):
                continue
            if not all(self.artifacts.exists(info.digest) for info in outputs.values()):
                continue
            run_id = uuid.uuid4().hex
            now = time.time()
            row = self._row(run_id, node, "cached", prepared.key, now)
            row.update(ended_at=now, cached_from=candidate.run_id)
            out_links = [Link("output", o.name, o.digest, o.size, o.is_dir, o.file_count, o.kind)
                         for o in outputs.values()]
            self.pending_rows.append(NewRun(
                row=row,
                params=node.params,
                tags=self._tags(prepared, {TAG_OUTPUTS: candidate.tags[TAG_OUTPUTS]}),
                links=[*prepared.input_links, *out_links],
            ))
            self._set(node.name, "cached", run_id=run_id, cached_from=candidate.run_id, cache_key=prepared.key,
                      outputs=outputs, started_at=now, ended_at=now)
            return True
        return False

    def _row(self, run_id: str, node: Node, status: str, key: str | None, now: float) -> dict[str, Any]:
        row = self.row
        return {
            "id": run_id, "name": node.name, "kind": "step", "status": status, "parent_id": row.id,
            "command": row.command, "cwd": row.cwd, "user": row.user, "host": socket.gethostname(),
            "pid": os.getpid(), "created_at": now, "heartbeat_at": now, **self._code_version(node),
            "env_digest": row.env_digest, "cache_key": key, "ended_at": None, "cached_from": None,
        }

    def _code_version(self, node: Node) -> dict[str, Any]:
        """The git state of the repository holding the step's code (usually the pipeline run's)."""
        row = self.row
        mine = {"git_commit": row.git_commit, "git_branch": row.git_branch, "git_dirty": row.git_dirty,
                "diff_digest": row.diff_digest}
        file = getattr(getattr(node.step.fn, "__code__", None), "co_filename", "") or ""
        if not file or not Path(file).exists():
            return mine
        root = project_root(file)
        if root == project_root(os.path.join(os.getcwd(), "_")):
            return mine
        version = self.code_versions.get(root)
        if version is None:
            from groundwork.core.environment import git_state

            state = git_state(Path(root))
            version = {"git_commit": state.commit, "git_branch": state.branch,
                       "git_dirty": state.dirty if state.commit else None, "diff_digest": None}
            if state.diff:
                version["diff_digest"] = self.artifacts.put_bytes(state.diff).digest
            self.code_versions[root] = version
        return version

    def _tags(self, prepared: _Prepared, extra: Mapping[str, str]) -> dict[str, str]:
        tags = {TAG_STEP: json.dumps(prepared.step_tag, sort_keys=True, default=str), **extra}
        if self.seed is not None:
            tags["seed"] = self.seed
        return tags

    # -- executing ---------------------------------------------------------------------------------
    def _queue(self, prepared: _Prepared, need: int) -> None:
        node = prepared.node
        run_id = uuid.uuid4().hex
        now = time.time()
        key = prepared.key if node.step.options.cache else None
        self.pending_rows.append(NewRun(
            row=self._row(run_id, node, "running", key, now),
            params=node.params,
            tags=self._tags(prepared, {}),
            links=prepared.input_links,
        ))
        executor = self._executor()
        task = StepTask(
            run_id=run_id,
            node=node.name,
            fn=self._pickled(node),
            inputs=prepared.inputs,
            outputs=node.outputs,
            multiple=self._multiple(node),
            config=self.config,
            materializers=self._materializers(),
            sys_path=tuple(sys.path),
            cwd=os.getcwd(),
            seed=self.seed,
            echo=self.echo,
            capture_environment=executor.capture_environment,
        )
        step = self.result.steps[node.name]
        step.run_id, step.cache_key, step.started_at = run_id, prepared.key, now
        self.slot_use[node.name] = need
        self.used_slots += need
        self.pending_tasks.append((task, dict(node.step.options.resources), step))

    def _flush(self) -> None:
        """Write the runs found in this pass (one transaction), then start their tasks."""
        if self.pending_rows:
            self.pipelines.insert_runs(self.pending_rows)
            self.pending_rows = []
        tasks, self.pending_tasks = self.pending_tasks, []
        for task, resources, step in tasks:
            self._submit(task, resources, step)

    def _submit(self, task: StepTask, resources: Mapping[str, Any], step: StepResult) -> None:
        step.attempts = task.attempt
        self.heartbeat.add(task.run_id)
        self._set(task.node, "running" if task.attempt == 1 else "retrying")
        future = self._executor().submit(task, resources)
        self.running[future] = (task.node, task)

    def _complete(self, future: Future[StepOutcome]) -> str:
        node_name, task = self.running.pop(future)
        node = self.graph[node_name]
        step = self.result.steps[node_name]
        try:
            outcome = future.result()
        except Exception as exc:  # the worker itself died (killed, out of memory, Ray lost a node)
            outcome = StepOutcome(task.run_id, node_name, ok=False, user_error=True,
                                  error=f"the worker running step {node_name!r} died: {type(exc).__name__}: {exc}")
        if not outcome.ok and outcome.user_error and task.attempt <= node.step.options.retries:
            retry = _with_attempt(task, task.attempt + 1)
            try:
                self.store.set_tags(task.run_id, {TAG_ATTEMPTS: retry.attempt})
            except GroundworkError:
                pass
            self._submit(retry, dict(node.step.options.resources), step)
            return "retrying"
        self.heartbeat.discard(task.run_id)
        self.used_slots -= self.slot_use.pop(node_name, 0)
        if outcome.ok:
            outputs = {o.name: o for o in outcome.outputs}
            links = [Link("output", o.name, o.digest, o.size, o.is_dir, o.file_count, o.kind) for o in outcome.outputs]
            tags = {TAG_OUTPUTS: _outputs_tag(outcome.outputs)}
            if task.attempt > 1:
                tags[TAG_ATTEMPTS] = str(task.attempt)
            self.pipelines.finish_run(task.run_id, "finished", links=links, tags=tags, environment=outcome.environment)
            self._set(node_name, "finished", outputs=outputs, started_at=outcome.started_at or step.started_at,
                      ended_at=outcome.ended_at or time.time())
            return "finished"
        error = outcome.error or "failed"
        detail = f"{error}\n{outcome.traceback}" if outcome.traceback else error
        self.pipelines.finish_run(task.run_id, "failed", error=detail, environment=outcome.environment)
        self._set(node_name, "failed", error=error, traceback=outcome.traceback,
                  ended_at=outcome.ended_at or time.time())
        return "failed"

    def _pickled(self, node: Node) -> bytes:
        import cloudpickle

        key = node.step.reference + repr(node.step.options)
        blob = self.pickled.get(key)
        if blob is None:
            # Project modules travel by value: a worker runs exactly the code the cache key was computed
            # from, even when the module changed on disk since the worker imported it.
            for module in self.code.modules(node.step.fn):
                try:
                    cloudpickle.register_pickle_by_value(module)
                except ValueError:
                    continue
            try:
                blob = cloudpickle.dumps((node.step.fn, node.step.options), protocol=5)
            except Exception as exc:
                raise InvalidInput(
                    f"step {node.name!r} cannot be sent to a worker process: {type(exc).__name__}: {exc}",
                    hint="keep unpicklable objects (locks, connections) out of the step's globals, "
                         "or run with --executor inline",
                ) from None
            self.pickled[key] = blob
        return blob

    def _materializers(self) -> bytes:
        if self.materializers_blob is None:
            import cloudpickle

            registered = registered_materializers()
            self.materializers_blob = cloudpickle.dumps(registered) if registered else b""
        return self.materializers_blob


def _with_attempt(task: StepTask, attempt: int) -> StepTask:
    from dataclasses import replace

    return replace(task, attempt=attempt)


def _refs(value: Any) -> list[OutputRef]:
    if isinstance(value, OutputRef):
        return [value]
    if isinstance(value, (tuple, list)):
        return [r for v in value for r in _refs(v)]
    if isinstance(value, dict):
        return [r for v in value.values() for r in _refs(v)]
    return []


def _spec_json(spec: InputSpec) -> dict[str, Any]:
    if spec.kind == "artifacts":
        return {"kind": "artifacts", "items": [_spec_json(i) for i in spec.items]}
    out: dict[str, Any] = {"kind": spec.kind, "digest": spec.digest}
    if spec.materializer:
        out["materializer"] = spec.materializer
    if spec.filename:
        out["filename"] = spec.filename
    if spec.path:
        out["path"] = spec.path
    return out


def spec_from_json(data: Mapping[str, Any]) -> InputSpec:
    """The inverse of the ``inputs`` entries of a step run's ``gw.step`` tag."""
    if data.get("kind") == "artifacts":
        return InputSpec("artifacts", items=tuple(spec_from_json(i) for i in data.get("items", [])))
    return InputSpec(str(data["kind"]), digest=data.get("digest"), materializer=data.get("materializer"),
                     filename=data.get("filename"), path=data.get("path"))


def _outputs_tag(outputs: Sequence[OutputInfo]) -> str:
    return json.dumps(
        {o.name: {"materializer": o.materializer, "type": o.type, "filename": o.filename, "kind": o.kind}
         for o in outputs},
        sort_keys=True,
    )


def _outputs_from(links: Sequence[Any], tag: str | None) -> dict[str, OutputInfo] | None:
    """A cached run's outputs as :class:`OutputInfo`, or None when its record is incomplete."""
    if not tag:
        return None
    try:
        meta = json.loads(tag)
    except ValueError:
        return None
    out: dict[str, OutputInfo] = {}
    for link in links:
        m = meta.get(link.name)
        if not isinstance(m, dict) or "materializer" not in m:
            return None
        out[link.name] = OutputInfo(link.name, link.digest, link.size, link.is_dir, link.file_count,
                                    m.get("kind", link.kind), m["materializer"], m.get("type", ""),
                                    m.get("filename", ""))
    return out


def step_outputs(run_id: str, config: Config) -> dict[str, OutputInfo]:
    """The outputs of a recorded step run (for loading them back, or reproducing the run)."""
    store = open_stores(config).metadata
    row = store.get_run(run_id)
    outputs = _outputs_from(store.run_artifacts(run_id, "output"), row.tags.get(TAG_OUTPUTS))
    return outputs or {}
