"""The rerun itself: a command, a pipeline step or a whole pipeline, in the workspace; then the comparison."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from groundwork.config import Config
from groundwork.core.reproduce.checkout import Checkout, NotReproducible, checkout
from groundwork.core.reproduce.compare import NOT_RESULTS, Reproduction, compare, compare_pipelines
from groundwork.core.reproduce.inputs import (
    in_checkout,
    make_output_folders,
    place_input,
    prepare_step_input,
    restore_command_inputs,
)
from groundwork.errors import InvalidInput
from groundwork.storage.artifacts import ArtifactStore
from groundwork.storage.records import RunRow
from groundwork.storage.stores import MetadataStore

#: The tag every rerun carries: the id of the run it reproduces.
TAG_REPRODUCES = "reproduces"


def reproduce(
    ref: str,
    *,
    config: Config | None = None,
    tolerance: float | None = None,
    current_inputs: bool = False,
    keep_worktree: bool = False,
    echo: bool = True,
) -> Reproduction:
    """Rerun run ``ref`` (id, prefix or name) from its recorded code and inputs, and compare.

    A name means the newest run of that name that is not itself a reproduction (and not a
    pipeline step, when another run has the name).

    >>> r = reproduce("1a2b3c4d")
    >>> r.exact, r.verdict(), [o for o in r.outputs if not o.same]
    """
    from groundwork.core.runs import find_run
    from groundwork.storage.stores import open_stores

    if tolerance is not None and (tolerance < 0 or math.isnan(tolerance)):
        raise InvalidInput(f"--tolerance must be a number >= 0, not {tolerance}")
    config = config or Config.from_env()
    store = open_stores(config).metadata
    row = find_run(store, ref)
    result = Reproduction(row.id, row.name, row.kind, tolerance=tolerance)
    if row.status == "cached" and row.cached_from:
        result.notes.append(f"run {row.id[:12]} reused run {row.cached_from[:12]} from the cache: reproducing that one")
        row = store.get_run(row.cached_from)
        result.original_id = row.id
    if row.status == "running":
        raise NotReproducible(f"run {row.id[:12]} is still running", hint="wait for it to end")
    repository = None
    if row.kind == "step" and row.tags.get("gw.step"):
        repository = _step_tag(row).get("root")
    with checkout(row, config, keep=keep_worktree, repository=repository) as code:
        result.code = code.description
        result.notes += code.notes
        if row.kind == "step":
            rerun_id = _rerun_step(row, code, config, store, result, current_inputs=current_inputs, echo=echo)
        elif row.kind == "pipeline":
            rerun_id = _rerun_pipeline(row, code, config, store, result, current_inputs=current_inputs, echo=echo)
        else:
            rerun_id = _rerun_command(row, code, config, store, result, current_inputs=current_inputs, echo=echo)
    rerun = store.get_run(rerun_id)
    result.rerun_id, result.rerun_status = rerun.id, rerun.status
    if rerun.status != "finished":
        first = (rerun.error or "").strip().splitlines()
        result.rerun_error = first[-1] if first else None
    if row.kind == "pipeline":
        compare_pipelines(row, rerun, store, result)
    else:
        compare(row, rerun, store, result)
    if current_inputs and not result.inputs:
        result.unchecked = (f"run {row.id[:12]} recorded no inputs, so --current-inputs had none to compare "
                            "(reproduce it without --current-inputs)")
    return result


def _seed_env(row: RunRow) -> dict[str, str]:
    seed = row.tags.get("seed")
    return {"GROUNDWORK_SEED": str(seed)} if seed else {}


def _rerun_command(
    row: RunRow, code: Checkout, config: Config, store: MetadataStore, result: Reproduction,
    *, current_inputs: bool, echo: bool,
) -> str:
    from groundwork.core.execution import execute_command

    if not row.command:
        raise NotReproducible(f"run {row.id[:12]} recorded no command to rerun")
    links = [link for link in store.run_artifacts(row.id, "input") if link.kind not in NOT_RESULTS]
    notes, used = restore_command_inputs(links, code, Path(row.cwd) if row.cwd else None, _artifacts(config),
                                         current_inputs=current_inputs)
    result.inputs += notes
    outputs = make_output_folders([link.name for link in store.run_artifacts(row.id, "output")
                                   if link.kind not in NOT_RESULTS], code)
    argv = [code.translate(arg) for arg in row.command]
    previous = Path.cwd()
    os.chdir(code.cwd)  # inputs, outputs and the new run's cwd are relative to the run's folder
    try:
        executed = execute_command(
            argv, config=config, name=row.name, params=dict(row.params), tags={TAG_REPRODUCES: row.id},
            inputs=[code.translate(name) for name in used], outputs=outputs, cwd=code.cwd,
            extra_env=_seed_env(row), echo=echo,
        )
    finally:
        os.chdir(previous)
    return executed.run_id


def _artifacts(config: Config) -> ArtifactStore:
    from groundwork.storage.stores import open_stores

    return open_stores(config).artifacts


def _step_tag(row: RunRow) -> dict[str, Any]:
    from groundwork.core.pipelines.run import TAG_STEP

    raw = row.tags.get(TAG_STEP)
    if not raw:
        raise NotReproducible(f"step run {row.id[:12]} has no recorded step definition ({TAG_STEP} tag)")
    data: dict[str, Any] = json.loads(raw)
    return data


def _step_file(tag: Mapping[str, Any], row: RunRow) -> str:
    """The step's source file as recorded, made absolute against the folder it was recorded in."""
    file = str(tag.get("file") or "")
    if file and not os.path.isabs(file) and row.cwd:
        file = os.path.normpath(os.path.join(row.cwd, file))
    return file


def run_child(spec: Mapping[str, Any], code: Checkout, config: Config, env: Mapping[str, str], echo: bool) -> str:
    """Run :func:`groundwork.core.reproduce.child.main` in a fresh interpreter (it imports the workspace's code)."""
    with tempfile.TemporaryDirectory(prefix="gw-reproduce-spec-") as folder:
        spec_path = Path(folder, "spec.json")
        out_path = Path(folder, "result.json")
        spec_path.write_text(json.dumps({**spec, "result": str(out_path)}, default=str))
        environ = {**os.environ, **config.child_environ(), **env}
        environ.pop("GROUNDWORK_RUN_ID", None)
        done = subprocess.run(
            [sys.executable, "-m", "groundwork.core.reproduce", str(spec_path)],
            cwd=code.cwd, env=environ, stdin=subprocess.DEVNULL,
            stdout=None if echo else subprocess.PIPE, stderr=None if echo else subprocess.PIPE, text=True,
            check=False,
        )
        if not out_path.exists():
            detail = (done.stderr or "").strip().splitlines() if not echo else []
            raise NotReproducible(
                f"the rerun could not start (exit {done.returncode})" + (f": {detail[-1]}" if detail else "")
            )
        answer: dict[str, Any] = json.loads(out_path.read_text())
    if answer.get("error"):
        raise NotReproducible(str(answer["error"]))
    return str(answer["run_id"])


def _rerun_step(
    row: RunRow, code: Checkout, config: Config, store: MetadataStore, result: Reproduction,
    *, current_inputs: bool, echo: bool,
) -> str:
    tag = _step_tag(row)
    root = tag.get("root")
    artifacts = _artifacts(config)
    inputs: dict[str, Any] = {}
    for name, spec in (tag.get("inputs") or {}).items():
        inputs[name] = prepare_step_input(name, dict(spec), root, code, artifacts, result.inputs, current_inputs)
    spec = {
        "mode": "step",
        "original": row.id,
        "name": row.name,
        "file": in_checkout(_step_file(tag, row), root, code),
        "function": tag.get("function", ""),
        "root": str(code.root),
        "params": tag.get("params") or {},
        "inputs": inputs,
        "outputs": tag.get("outputs") or ["output"],
        "multiple": bool(tag.get("multiple")),
        "step_tag": tag,
        "input_kinds": {link.name: link.kind for link in store.run_artifacts(row.id, "input")},
        "store_url": config.store_url,
        "artifacts_url": config.artifacts_url,
    }
    return run_child(spec, code, config, _seed_env(row), echo)


def _rerun_pipeline(
    row: RunRow, code: Checkout, config: Config, store: MetadataStore, result: Reproduction,
    *, current_inputs: bool, echo: bool,
) -> str:
    ref = row.tags.get("gw.pipeline")
    if not ref:
        raise NotReproducible(f"pipeline run {row.id[:12]} recorded no pipeline reference")
    target, _, attr = ref.rpartition(":")
    artifacts = _artifacts(config)
    params: dict[str, Any] = {}
    dag = next((lk for lk in store.run_artifacts(row.id, "output") if lk.kind == "pipeline"), None)
    if dag is not None:
        params = json.loads(artifacts.get_bytes(dag.digest)).get("params") or {}
    if target.endswith(".py") or "/" in target:
        target = code.translate(target) if os.path.isabs(target) else str(code.cwd / target)
    _restore_step_files(row, code, store, artifacts, result, current_inputs)
    spec = {
        "mode": "pipeline", "original": row.id, "name": row.name, "pipeline": f"{target}:{attr}",
        "params": params, "root": str(code.root), "store_url": config.store_url, "artifacts_url": config.artifacts_url,
    }
    result.notes.append("every step reran without the cache")
    return run_child(spec, code, config, _seed_env(row), echo)


def _restore_step_files(row: RunRow, code: Checkout, store: MetadataStore, artifacts: ArtifactStore,
                        result: Reproduction, current_inputs: bool) -> None:
    """The files a pipeline's steps read (``gw.File`` arguments), restored in the workspace where they were."""
    placed: set[str] = set()
    for child in store.child_runs(row.id):
        source = store.get_run(child.cached_from) if child.status == "cached" and child.cached_from else child
        if not source.tags.get("gw.step"):
            continue
        tag = _step_tag(source)
        for name, spec in (tag.get("inputs") or {}).items():
            original, digest = str(spec.get("path") or ""), str(spec.get("digest") or "")
            moved = in_checkout(original, tag.get("root"), code)
            if spec.get("kind") != "file" or not digest or moved == original or moved in placed:
                continue
            placed.add(moved)
            dest = code.check(Path(moved), f"input {name!r} of step {child.name!r}")
            result.inputs.append(place_input(f"{child.name}.{name}", digest, dest, Path(original),
                                             prefer_current=current_inputs, artifacts=artifacts))
