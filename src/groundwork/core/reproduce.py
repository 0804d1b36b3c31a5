"""``groundwork reproduce RUN``: rerun a recorded run from its recorded code and inputs, and compare.

1. **Code.** A git worktree of the run's repository at the recorded commit, in a
   temporary folder, with the recorded uncommitted diff applied (``git apply``).
   The user's checkout is not touched (the worktree is removed afterwards).
2. **Inputs.** Every recorded input is restored from the artifact store to its
   recorded path relative to the run's working directory. An input recorded by
   digest only (not stored) is taken from the working tree as it is now, and named
   when it differs; ``current_inputs=True`` does that for every input ("would
   this still reproduce with today's data?").
3. **Rerun.** A command run (``groundwork run`` or an SDK script) reruns its recorded
   command from the same relative folder, with its params as ``GROUNDWORK_PARAM_*``
   and its ``seed`` tag as ``GROUNDWORK_SEED``. A pipeline step reruns its function
   from the worktree on the recorded inputs and params. A pipeline reruns every
   step, without the cache. The rerun is recorded as a new run tagged
   ``reproduces=<id>``.
4. **Compare.** Equal output digests: "reproduced exactly". Otherwise each differing
   output, the metric deltas, and the differences between the two recorded
   environments (package versions, Python, CPU and its features) that may explain
   them. ``tolerance`` accepts metric deltas up to that size.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from groundwork.config import Config
from groundwork.errors import ArtifactNotFound, ExecutionError, GroundworkError, InvalidInput
from groundwork.storage.metadata import ArtifactLink, MetadataStore, RunRow

#: Output kinds that describe a run rather than its result (never compared).
_NOT_RESULTS = frozenset({"code", "pipeline", "log"})
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0"}


class NotReproducible(ExecutionError):
    """The recorded run cannot be rerun (its commit is gone, its diff does not apply...)."""

    headline = "Cannot reproduce"


@dataclass(frozen=True)
class OutputDiff:
    name: str
    recorded: str | None
    reproduced: str | None

    @property
    def same(self) -> bool:
        return self.recorded == self.reproduced


@dataclass(frozen=True)
class MetricDelta:
    key: str
    recorded: float | None
    reproduced: float | None

    @property
    def delta(self) -> float | None:
        if self.recorded is None or self.reproduced is None:
            return None
        return self.reproduced - self.recorded

    @property
    def same(self) -> bool:
        a, b = self.recorded, self.reproduced
        if a is None or b is None:
            return a is b
        return a == b or (math.isnan(a) and math.isnan(b))

    def within(self, tolerance: float) -> bool:
        delta = self.delta
        return self.same or (delta is not None and not math.isnan(delta) and abs(delta) <= tolerance)


@dataclass(frozen=True)
class EnvDifference:
    what: str  # package, python, cpu, cpu feature, os, gpu
    name: str
    recorded: str | None
    reproduced: str | None

    def describe(self) -> str:
        before = self.recorded if self.recorded is not None else "(none)"
        after = self.reproduced if self.reproduced is not None else "(none)"
        return f"{self.what} {self.name}: {before} -> {after}".replace("  ", " ")


@dataclass(frozen=True)
class InputNote:
    name: str
    recorded: str
    used: str | None  # the digest the rerun read; None when missing
    source: str  # store, working tree, missing

    @property
    def changed(self) -> bool:
        return self.used != self.recorded


@dataclass
class Reproduction:
    """The outcome of reproducing one run."""

    original_id: str
    original_name: str
    kind: str
    rerun_id: str | None = None
    rerun_status: str | None = None
    rerun_error: str | None = None
    code: str = ""
    tolerance: float | None = None
    outputs: list[OutputDiff] = field(default_factory=list)
    metrics: list[MetricDelta] = field(default_factory=list)
    environment: list[EnvDifference] = field(default_factory=list)
    inputs: list[InputNote] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def outputs_equal(self) -> bool:
        return all(o.same for o in self.outputs)

    @property
    def exact(self) -> bool:
        """The rerun finished and every output (and metric) is identical."""
        return self.rerun_status == "finished" and self.outputs_equal and all(m.same for m in self.metrics)

    @property
    def within_tolerance(self) -> bool:
        if self.tolerance is None or self.rerun_status != "finished":
            return False
        return all(m.within(self.tolerance) for m in self.metrics)

    @property
    def ok(self) -> bool:
        return self.exact or self.within_tolerance

    def verdict(self) -> str:
        if self.exact:
            n = len(self.outputs)
            return f"reproduced exactly: {n} output{'s' if n != 1 else ''} identical"
        if self.rerun_status != "finished":
            return f"not reproduced: the rerun {self.rerun_status or 'did not run'}"
        if self.within_tolerance:
            return f"reproduced within tolerance {self.tolerance:g}: every metric delta is within it"
        differing = [o for o in self.outputs if not o.same]
        parts = []
        if differing:
            parts.append(f"{len(differing)} of {len(self.outputs)} outputs differ")
        changed_metrics = [m for m in self.metrics if not m.same]
        if changed_metrics:
            parts.append(f"{len(changed_metrics)} metric{'s' if len(changed_metrics) != 1 else ''} changed")
        return "not reproduced: " + (", ".join(parts) or "results differ")

    def to_dict(self) -> dict[str, Any]:
        return {
            "original": self.original_id,
            "name": self.original_name,
            "kind": self.kind,
            "rerun": self.rerun_id,
            "rerun_status": self.rerun_status,
            "rerun_error": self.rerun_error,
            "exact": self.exact,
            "within_tolerance": self.within_tolerance,
            "ok": self.ok,
            "verdict": self.verdict(),
            "tolerance": self.tolerance,
            "code": self.code,
            "outputs": [{**asdict(o), "same": o.same} for o in self.outputs],
            "metrics": [{**asdict(m), "delta": m.delta, "same": m.same} for m in self.metrics],
            "environment": [asdict(e) for e in self.environment],
            "inputs": [{**asdict(i), "changed": i.changed} for i in self.inputs],
            "notes": list(self.notes),
        }


# -- code: a worktree at the recorded commit, with the recorded diff ------------------------------------------


def _git(args: Sequence[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    git = shutil.which("git")
    if git is None:
        raise NotReproducible("git is not installed", hint="install git to reproduce runs")
    done = subprocess.run([git, *args], cwd=cwd, env={**os.environ, **_GIT_ENV}, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise NotReproducible(f"git {args[0]} failed: {detail[-1] if detail else done.returncode}")
    return done


def _repository_with(commit: str, candidates: Sequence[Path]) -> Path | None:
    for candidate in candidates:
        if not candidate.is_dir():
            continue
        top = _git(["rev-parse", "--show-toplevel"], candidate, check=False)
        if top.returncode != 0:
            continue
        root = Path(top.stdout.strip())
        if _git(["cat-file", "-e", f"{commit}^{{commit}}"], root, check=False).returncode == 0:
            return root
    return None


@dataclass
class Checkout:
    """The recorded code, ready to run: ``root`` is the worktree, ``cwd`` the run's folder inside it."""

    root: Path
    cwd: Path
    original_root: Path | None
    description: str

    def translate(self, path: str) -> str:
        """An absolute path under the original repository, moved into the worktree."""
        if self.original_root is None or not os.path.isabs(path):
            return path
        try:
            rel = Path(path).relative_to(self.original_root)
        except ValueError:
            return path
        return str(self.root / rel)


@contextlib.contextmanager
def checkout(row: RunRow, config: Config, *, keep: bool = False, repository: str | None = None) -> Iterator[Checkout]:
    """A temporary worktree with the run's recorded code (see the module docstring).

    ``repository`` is where the code was (a step's project root), tried before the run's cwd.
    """
    recorded_cwd = Path(row.cwd) if row.cwd else Path.cwd()
    if not row.git_commit:
        folder = recorded_cwd if recorded_cwd.is_dir() else Path.cwd()
        yield Checkout(folder, folder, None, f"no git commit was recorded: using the files in {folder} as they are now")
        return
    candidates = [Path(repository)] if repository else []
    root = _repository_with(row.git_commit, [*candidates, recorded_cwd, Path.cwd()])
    if root is None:
        raise NotReproducible(
            f"commit {row.git_commit[:12]} of run {row.id[:12]} is not in the repository at {recorded_cwd} "
            "nor in the current folder's",
            hint="run from a clone that has the commit (git fetch), or push the commit first",
        )
    try:
        rel_cwd: Path | None = recorded_cwd.resolve().relative_to(root.resolve())
    except ValueError:
        rel_cwd = None  # the run ran outside the repository: it runs from the same folder again
    scratch = Path(tempfile.mkdtemp(prefix="gw-reproduce-"))
    tree = scratch / root.name
    _git(["worktree", "add", "--detach", "--force", str(tree), row.git_commit], root)
    try:
        description = f"commit {row.git_commit[:12]}"
        if row.diff_digest:
            from groundwork.core.tracking import artifact_store_for

            try:
                diff = artifact_store_for(config).get_bytes(row.diff_digest)
            except ArtifactNotFound:
                raise NotReproducible(
                    f"the uncommitted changes of run {row.id[:12]} (diff {row.diff_digest[:12]}) are not in the artifact store",
                    hint="point GROUNDWORK_ARTIFACTS at the store the run logged to",
                ) from None
            patch = scratch / "recorded.diff"
            patch.write_bytes(diff)
            applied = _git(["apply", "--binary", "--whitespace=nowarn", str(patch)], tree, check=False)
            if applied.returncode != 0:
                lines = (applied.stderr or "").strip().splitlines()
                raise NotReproducible(
                    f"the recorded uncommitted changes do not apply to commit {row.git_commit[:12]}: "
                    f"{lines[-1] if lines else 'git apply failed'}"
                )
            files = sum(1 for line in diff.splitlines() if line.startswith(b"diff --git "))
            description += f" + recorded uncommitted changes ({files} file{'s' if files != 1 else ''})"
        if rel_cwd is not None:
            cwd = tree / rel_cwd
            cwd.mkdir(parents=True, exist_ok=True)
        else:
            cwd = recorded_cwd if recorded_cwd.is_dir() else tree
        yield Checkout(tree, cwd, root, description + (f", in {tree}" if keep else ""))
    finally:
        if not keep:
            _git(["worktree", "remove", "--force", str(tree)], root, check=False)
            shutil.rmtree(scratch, ignore_errors=True)
            _git(["worktree", "prune"], root, check=False)


# -- inputs ---------------------------------------------------------------------------------------------------


def _place_input(
    name: str, digest: str, dest: Path, current: Path | None, *, prefer_current: bool, artifacts: Any
) -> InputNote:
    """Put the input at ``dest``: from the store, or from ``current`` (the working tree now)."""
    from groundwork.storage.artifacts import ArtifactStore

    stored = artifacts.exists(digest)
    if stored and not prefer_current:
        if dest.is_dir():
            shutil.rmtree(dest)
        artifacts.restore(digest, dest)
        return InputNote(name, digest, digest, "store")
    if current is not None and current.exists():
        used = ArtifactStore.digest_path(current).digest
        if current.resolve() != dest.resolve():
            if dest.is_dir():
                shutil.rmtree(dest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if current.is_dir():
                shutil.copytree(current, dest, dirs_exist_ok=True)
            else:
                shutil.copyfile(current, dest)
        return InputNote(name, digest, used, "working tree")
    if stored:
        artifacts.restore(digest, dest)
        return InputNote(name, digest, digest, "store")
    return InputNote(name, digest, None, "missing")


# -- environments ---------------------------------------------------------------------------------------------


def environment_differences(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[EnvDifference]:
    """What differs between two captured environments, in the terms that change results."""
    if not before or not after:
        return []
    out: list[EnvDifference] = []
    bp, ap = before.get("python") or {}, after.get("python") or {}
    for key in ("version", "implementation"):
        if bp.get(key) != ap.get(key):
            out.append(EnvDifference("python", key, _s(bp.get(key)), _s(ap.get(key))))
    pb, pa = before.get("packages") or {}, after.get("packages") or {}
    for name in sorted(set(pb) | set(pa), key=str.lower):
        if pb.get(name) != pa.get(name):
            out.append(EnvDifference("package", name, _s(pb.get(name)), _s(pa.get(name))))
    cb, ca = before.get("cpu") or {}, after.get("cpu") or {}
    if cb.get("model") != ca.get("model"):
        out.append(EnvDifference("cpu", "model", _s(cb.get("model")), _s(ca.get("model"))))
    fb, fa = set(cb.get("features") or []), set(ca.get("features") or [])
    for feature in sorted(fb - fa):
        out.append(EnvDifference("cpu feature", feature, "present", "absent"))
    for feature in sorted(fa - fb):
        out.append(EnvDifference("cpu feature", feature, "absent", "present"))
    ob, oa = before.get("os") or {}, after.get("os") or {}
    for key in ("system", "release"):
        if ob.get(key) != oa.get(key):
            out.append(EnvDifference("os", key, _s(ob.get(key)), _s(oa.get(key))))
    gb = [g.get("name") for g in before.get("gpus") or [] if isinstance(g, dict)]
    ga = [g.get("name") for g in after.get("gpus") or [] if isinstance(g, dict)]
    if gb != ga:
        out.append(EnvDifference("gpu", "devices", ", ".join(map(str, gb)) or None, ", ".join(map(str, ga)) or None))
    return out


def _s(value: Any) -> str | None:
    return None if value is None else str(value)


# -- comparing two runs ---------------------------------------------------------------------------------------


def _results(links: Sequence[ArtifactLink]) -> dict[str, str]:
    return {link.name: link.digest for link in links if link.kind not in _NOT_RESULTS}


def compare(original: RunRow, rerun: RunRow, store: MetadataStore, result: Reproduction) -> None:
    """Fill ``result`` with the output, metric and environment differences of two runs."""
    recorded = _results(store.run_artifacts(original.id, "output"))
    again = _results(store.run_artifacts(rerun.id, "output"))
    result.outputs = [OutputDiff(n, recorded.get(n), again.get(n)) for n in sorted(set(recorded) | set(again))]
    keys = sorted(set(original.metrics) | set(rerun.metrics))
    result.metrics = [MetricDelta(k, original.metrics.get(k), rerun.metrics.get(k)) for k in keys]
    before = store.environment(original.env_digest) if original.env_digest else None
    after = store.environment(rerun.env_digest) if rerun.env_digest else None
    result.environment = environment_differences(before, after)
    if before is None:
        result.notes.append("the original run recorded no environment to compare with")


# -- the entry point ------------------------------------------------------------------------------------------


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

    >>> r = reproduce("1a2b3c4d")
    >>> r.exact, r.verdict(), [o for o in r.outputs if not o.same]
    """
    from groundwork.core.tracking import metadata_store_for

    if tolerance is not None and (tolerance < 0 or math.isnan(tolerance)):
        raise InvalidInput(f"--tolerance must be a number >= 0, not {tolerance}")
    config = config or Config.from_env()
    store = metadata_store_for(config)
    row = store.get_run(store.resolve_run(ref))
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
        if row.kind == "step":
            rerun_id = _rerun_step(row, code, config, store, result, current_inputs=current_inputs, echo=echo)
        elif row.kind == "pipeline":
            rerun_id = _rerun_pipeline(row, code, config, store, result, echo=echo)
        else:
            rerun_id = _rerun_command(row, code, config, store, result, current_inputs=current_inputs, echo=echo)
    rerun = store.get_run(rerun_id)
    result.rerun_id, result.rerun_status = rerun.id, rerun.status
    if rerun.status != "finished":
        first = (rerun.error or "").strip().splitlines()
        result.rerun_error = first[-1] if first else None
    if row.kind == "pipeline":
        _compare_pipelines(row, rerun, store, result)
    else:
        compare(row, rerun, store, result)
    return result


def _seed_env(row: RunRow) -> dict[str, str]:
    seed = row.tags.get("seed")
    return {"GROUNDWORK_SEED": str(seed)} if seed else {}


def _rerun_command(
    row: RunRow, code: Checkout, config: Config, store: MetadataStore, result: Reproduction,
    *, current_inputs: bool, echo: bool,
) -> str:
    from groundwork.core.execution import execute_command
    from groundwork.core.tracking import artifact_store_for

    if not row.command:
        raise NotReproducible(f"run {row.id[:12]} recorded no command to rerun")
    artifacts = artifact_store_for(config)
    recorded_cwd = Path(row.cwd) if row.cwd else None
    for link in store.run_artifacts(row.id, "input"):
        if link.kind in _NOT_RESULTS:
            continue
        current: Path | None
        if os.path.isabs(link.name):
            moved = code.translate(link.name)
            dest = Path(moved)
            current = Path(link.name)
            if moved == link.name:  # outside the repository: read it where it is, never overwrite it
                from groundwork.storage.artifacts import ArtifactStore

                used = ArtifactStore.digest_path(Path(link.name)).digest if Path(link.name).exists() else None
                result.inputs.append(InputNote(link.name, link.digest, used, "working tree" if used else "missing"))
                continue
        else:
            dest = code.cwd / link.name
            current = recorded_cwd / link.name if recorded_cwd else None
        result.inputs.append(_place_input(link.name, link.digest, dest, current, prefer_current=current_inputs,
                                          artifacts=artifacts))
    argv = [code.translate(arg) for arg in row.command]
    outputs = [link.name for link in store.run_artifacts(row.id, "output")
               if link.kind not in _NOT_RESULTS and not os.path.isabs(link.name)]
    previous = Path.cwd()
    os.chdir(code.cwd)  # outputs and the new run's cwd are relative to the run's folder
    try:
        executed = execute_command(
            argv, config=config, name=row.name, params=dict(row.params), tags={"reproduces": row.id},
            outputs=outputs, cwd=code.cwd, extra_env=_seed_env(row), echo=echo,
        )
    finally:
        os.chdir(previous)
    return executed.run_id


def _step_tag(row: RunRow) -> dict[str, Any]:
    from groundwork.core.pipelines.run import TAG_STEP

    raw = row.tags.get(TAG_STEP)
    if not raw:
        raise NotReproducible(f"step run {row.id[:12]} has no recorded step definition ({TAG_STEP} tag)")
    data: dict[str, Any] = json.loads(raw)
    return data


def _in_checkout(path: str, root: str | None, code: Checkout) -> str:
    """A file of the recorded project, moved into the worktree."""
    if root and os.path.isabs(path):
        try:
            return str(code.root / Path(path).relative_to(root))
        except ValueError:
            pass
    return code.translate(path)


def _run_child(spec: Mapping[str, Any], code: Checkout, config: Config, env: Mapping[str, str], echo: bool) -> str:
    """Run :func:`_child_main` in a fresh interpreter (imports the worktree's code, captures its own env)."""
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
    from groundwork.core.tracking import artifact_store_for

    tag = _step_tag(row)
    root = tag.get("root")
    artifacts = artifact_store_for(config)
    inputs: dict[str, Any] = {}
    for name, spec in (tag.get("inputs") or {}).items():
        inputs[name] = _prepare_step_input(name, dict(spec), root, code, artifacts, result, current_inputs)
    spec = {
        "mode": "step",
        "original": row.id,
        "name": row.name,
        "file": _in_checkout(str(tag.get("file") or ""), root, code),
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
    return _run_child(spec, code, config, _seed_env(row), echo)


def _prepare_step_input(
    name: str, spec: dict[str, Any], root: str | None, code: Checkout, artifacts: Any,
    result: Reproduction, current_inputs: bool,
) -> dict[str, Any]:
    kind = spec.get("kind")
    if kind == "artifacts":
        spec["items"] = [_prepare_step_input(f"{name}[{i}]", dict(item), root, code, artifacts, result, current_inputs)
                         for i, item in enumerate(spec.get("items") or [])]
        return spec
    digest = str(spec.get("digest") or "")
    if kind == "file":
        original = str(spec.get("path") or "")
        moved = _in_checkout(original, root, code)
        note = _place_input(name, digest, Path(moved), Path(original), prefer_current=current_inputs,
                            artifacts=artifacts)
        result.inputs.append(note)
        spec["path"] = moved
        spec["digest"] = None  # the file is in place: the step reads it there
        return spec
    if not artifacts.exists(digest):
        raise NotReproducible(
            f"input {name!r} (artifact {digest[:12]}) is no longer in the artifact store",
            hint="point GROUNDWORK_ARTIFACTS at the store the run logged to",
        )
    result.inputs.append(InputNote(name, digest, digest, "store"))
    return spec


def _rerun_pipeline(
    row: RunRow, code: Checkout, config: Config, store: MetadataStore, result: Reproduction, *, echo: bool,
) -> str:
    from groundwork.core.tracking import artifact_store_for

    ref = row.tags.get("gw.pipeline")
    if not ref:
        raise NotReproducible(f"pipeline run {row.id[:12]} recorded no pipeline reference")
    target, _, attr = ref.rpartition(":")
    params: dict[str, Any] = {}
    dag = next((lk for lk in store.run_artifacts(row.id, "output") if lk.kind == "pipeline"), None)
    if dag is not None:
        params = json.loads(artifact_store_for(config).get_bytes(dag.digest)).get("params") or {}
    if target.endswith(".py") or "/" in target:
        target = code.translate(target) if os.path.isabs(target) else str(code.cwd / target)
    spec = {
        "mode": "pipeline", "original": row.id, "name": row.name, "pipeline": f"{target}:{attr}",
        "params": params, "root": str(code.root), "store_url": config.store_url, "artifacts_url": config.artifacts_url,
    }
    result.notes.append("every step reran without the cache")
    return _run_child(spec, code, config, _seed_env(row), echo)


def _compare_pipelines(original: RunRow, rerun: RunRow, store: MetadataStore, result: Reproduction) -> None:
    """Compare step by step (outputs as ``step.output``, metrics as ``step.metric``)."""
    def by_step(pipeline_id: str) -> dict[str, RunRow]:
        steps = {}
        for child in store.child_runs(pipeline_id):
            source = store.get_run(child.cached_from) if child.status == "cached" and child.cached_from else child
            steps[child.name] = source
        return steps

    before, after = by_step(original.id), by_step(rerun.id)
    outputs: list[OutputDiff] = []
    metrics: list[MetricDelta] = []
    for name in sorted(set(before) | set(after)):
        a = _results(store.run_artifacts(before[name].id, "output")) if name in before else {}
        b = _results(store.run_artifacts(after[name].id, "output")) if name in after else {}
        outputs += [OutputDiff(f"{name}.{o}", a.get(o), b.get(o)) for o in sorted(set(a) | set(b))]
        ma = before[name].metrics if name in before else {}
        mb = after[name].metrics if name in after else {}
        metrics += [MetricDelta(f"{name}.{k}", ma.get(k), mb.get(k)) for k in sorted(set(ma) | set(mb))]
    result.outputs, result.metrics = outputs, metrics
    env_before = store.environment(original.env_digest) if original.env_digest else None
    env_after = store.environment(rerun.env_digest) if rerun.env_digest else None
    result.environment = environment_differences(env_before, env_after)


# -- the child process: rerun a step or a pipeline from the worktree --------------------------------------------


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
    from groundwork.core.tracking import artifact_store_for, metadata_store_for, start_run
    from groundwork.storage.pipelines import Link, finish_run

    step = _load_step(str(spec["file"]), str(spec["function"]), str(spec["root"]))
    inputs = {name: spec_from_json(value) for name, value in (spec.get("inputs") or {}).items()}
    for name, value in (spec.get("params") or {}).items():
        from groundwork.core.pipelines.worker import InputSpec

        inputs[name] = InputSpec("value", value=value)
    tag = dict(spec.get("step_tag") or {})
    tag["file"] = spec["file"]
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
                info = artifact_store_for(config).info(digest)
                links.append(Link("input", name, digest, info.size, info.is_dir, info.file_count,
                                  kinds.get(name, "dataset")))
    links += [Link("output", o.name, o.digest, o.size, o.is_dir, o.file_count, o.kind) for o in outcome.outputs]
    error = None if outcome.ok else (outcome.error or "failed") + (f"\n{outcome.traceback}" if outcome.traceback else "")
    if error and outcome.traceback:
        print(outcome.traceback, file=sys.stderr)
    status = "finished" if outcome.ok else "failed"
    finish_run(metadata_store_for(config), run_id, status, links=links,
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


def _child_main(argv: Sequence[str]) -> int:
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


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
