"""The rerun's child process: a step or a whole pipeline, imported from the workspace.

``python -m groundwork.core.reproduce SPEC.json`` (see :func:`groundwork.core.reproduce.rerun.run_child`)
runs in a fresh interpreter so that it imports the workspace's code and captures its own
environment.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from groundwork.config import Config
from groundwork.core.reproduce.checkout import NotReproducible
from groundwork.errors import GroundworkError


def _load_step(file: str, function: str, root: str) -> Any:
    """The ``@gw.step`` object ``module:qualname`` defined in ``file`` (a file of the worktree)."""
    import importlib
    import importlib.util

    from groundwork.core.pipelines.step import Step

    module_name, _, qualname = function.rpartition(":")
    if "<locals>" in qualname:
        raise NotReproducible(f"step function {function} is defined inside a function: it cannot be imported again",
                              hint="define steps at module level")
    folder = str(Path(file).parent)
    for entry in (folder, root):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    module: Any
    if module_name == "__main__" or not file.endswith(".py") or not Path(file).exists():
        raise NotReproducible(f"cannot find the source of step {function} (recorded file {file!r})")
    if "." in module_name:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            module = None
        if module is not None and Path(getattr(module, "__file__", "") or "").resolve() != Path(file).resolve():
            module = None
    else:
        module = None
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, file)
        if spec is None or spec.loader is None:
            raise NotReproducible(f"cannot load {file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise NotReproducible(f"{file} no longer defines {qualname} at the recorded commit")
    if isinstance(obj, Step):
        return obj
    return Step(obj, _options_for(obj))


def _options_for(fn: Any) -> Any:
    from groundwork.core.pipelines.step import _make_options

    return _make_options(fn)


def _child_step(spec: Mapping[str, Any], config: Config) -> str:
    import cloudpickle

    from groundwork.core.pipelines.run import TAG_OUTPUTS, TAG_STEP, _outputs_tag, spec_from_json
    from groundwork.core.pipelines.worker import StepTask, execute_task
    from groundwork.core.tracking import start_run
    from groundwork.storage.records import Link
    from groundwork.storage.stores import open_stores

    step = _load_step(str(spec["file"]), str(spec["function"]), str(spec["root"]))
    inputs = {name: spec_from_json(value) for name, value in (spec.get("inputs") or {}).items()}
    for name, value in (spec.get("params") or {}).items():
        from groundwork.core.pipelines.worker import InputSpec

        inputs[name] = InputSpec("value", value=value)
    tag = dict(spec.get("step_tag") or {})  # as recorded (not the workspace's paths): reproducible again
    run = start_run(
        name=str(spec["name"]), kind="step", params=spec.get("params") or {}, config=config,
        tags={"reproduces": spec["original"], TAG_STEP: json.dumps(tag, sort_keys=True, default=str)},
        command=[sys.executable, "-m", "groundwork.core.reproduce", str(spec["function"])],
    )
    run_id = run.id
    run.flush()  # written now: the step attaches to it
    task = StepTask(
        run_id=run_id, node=str(spec["name"]), fn=cloudpickle.dumps((step.fn, step.options)), inputs=inputs,
        outputs=tuple(spec.get("outputs") or ("output",)), multiple=bool(spec.get("multiple")), config=config,
        cwd=os.getcwd(), seed=os.environ.get("GROUNDWORK_SEED"), echo=True,
    )
    outcome = execute_task(task)
    kinds = spec.get("input_kinds") or {}
    links = []
    for name, value in inputs.items():
        for item in (value.items if value.kind == "artifacts" else (value,)):
            digest = item.digest
            if item.kind == "file" and item.path and Path(item.path).exists():
                from groundwork.storage.artifacts import ArtifactStore

                info = ArtifactStore.digest_path(Path(item.path))
                links.append(Link("input", name, info.digest, info.size, info.is_dir, info.file_count,
                                  kinds.get(name, "dataset")))
            elif digest:
                info = open_stores(config).artifacts.info(digest)
                links.append(Link("input", name, digest, info.size, info.is_dir, info.file_count,
                                  kinds.get(name, "dataset")))
    links += [Link("output", o.name, o.digest, o.size, o.is_dir, o.file_count, o.kind) for o in outcome.outputs]
    error = None if outcome.ok else (outcome.error or "failed") + (f"\n{outcome.traceback}" if outcome.traceback else "")
    if error and outcome.traceback:
        print(outcome.traceback, file=sys.stderr)
    status = "finished" if outcome.ok else "failed"
    open_stores(config).pipelines.finish_run(run_id, status, links=links,
               tags={TAG_OUTPUTS: _outputs_tag(outcome.outputs)} if outcome.ok else {}, error=error)
    run.end(status, error=error)  # already ended above, with its links: this flushes and stops the heartbeat
    return run_id


def _child_pipeline(spec: Mapping[str, Any], config: Config) -> str:
    from groundwork.core.pipelines import PipelineFailed, run_pipeline

    root = str(spec["root"])
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        result = run_pipeline(str(spec["pipeline"]), params=spec.get("params") or {}, cache=False, config=config,
                              tags={"reproduces": spec["original"]}, name=str(spec["name"]))
    except PipelineFailed as failed:
        return failed.result.run_id
    return result.run_id


def main(argv: Sequence[str]) -> int:
    """Rerun the step or pipeline described in the spec file ``argv[0]``; write the rerun's id beside it."""
    spec = json.loads(Path(argv[0]).read_text())
    out = Path(spec["result"])
    config = Config.from_env(store_url=spec.get("store_url"), artifacts_url=spec.get("artifacts_url"))
    try:
        run_id = _child_step(spec, config) if spec["mode"] == "step" else _child_pipeline(spec, config)
    except GroundworkError as exc:
        out.write_text(json.dumps({"error": exc.one_line()}))
        return 1
    except Exception as exc:
        import traceback

        traceback.print_exc()
        out.write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    out.write_text(json.dumps({"run_id": run_id}))
    return 0
