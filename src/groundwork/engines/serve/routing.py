"""Traffic between versions of one served model: weighted routes (a canary) and a shadow.

    groundwork serve digits --route production=90,candidate=10 --shadow candidate

A **route** splits a model's requests by weight between *targets*: aliases
(``production``), version numbers (``3``) or ``latest``, each loaded once, each with
its own batcher and its own alias watcher (so an alias that moves is hot-swapped
inside the route as it is outside one). Every request draws one random number and
goes to one target; its answer's ``model_version`` says which version made it.

A **shadow** target gets a copy of every request *after* the caller has its answer:
it is validated and run on the shadow's own batcher in a task of its own, its output
is never returned, and its failures never fail the request (they are counted). At
most :data:`MAX_SHADOW_IN_FLIGHT` shadow requests wait at once; more are dropped and
counted, so a slow shadow cannot take memory or the event loop from live traffic.

The table a request draws from (:class:`RouteTable`) is immutable and replaced in one
assignment, so weights change between two requests, never during one. Changing
weights at runtime is ``PUT /admin/models/NAME/route`` (see :mod:`.admin`).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import os
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from groundwork.config import Config
from groundwork.core.registry import LATEST, ModelRef, ModelVersion, check_alias, get_model_version
from groundwork.engines.serve.batching import DynamicBatcher
from groundwork.engines.serve.watcher import AliasWatcher, Loaded, load_version
from groundwork.errors import InvalidInput, ModelNotFound

#: Shadow requests waiting or running at once; beyond this they are dropped (and counted).
MAX_SHADOW_IN_FLIGHT = 256

_EXAMPLE = "production=90,candidate=10"
_ENTRY = re.compile(r"^\s*([^=,\s]+)\s*=\s*([^=,]*?)\s*$")


class BadRoute(InvalidInput):
    """A route spec that cannot be read: a malformed entry, a bad weight, weights not adding up to 100."""

    headline = "Invalid route"


def target_ref(name: str, label: str) -> ModelRef:
    """The reference a route target names (``production`` -> ``name@production``, ``3`` -> ``name/3``)."""
    if label == LATEST:
        return ModelRef(name)
    if label.isdigit():
        return ModelRef(name, version=int(label))
    return ModelRef(name, alias=label)


def own_label(ref: ModelRef) -> str:
    """The target label of a served reference (``digits@production`` -> ``production``, ``digits`` -> ``latest``)."""
    if ref.alias is not None:
        return ref.alias
    return str(ref.version) if ref.version is not None else LATEST


def check_target(label: str, what: str = "route") -> str:
    """``label`` when it names a target (an alias, a version number, ``latest``); else :class:`BadRoute`."""
    if label.isdigit():
        if int(label) < 1:
            raise BadRoute(f"{what}: {label!r} is not a version number (versions start at 1)",
                           hint=f"name aliases or version numbers, e.g. {_EXAMPLE}")
        return str(int(label))
    if label != LATEST:
        try:
            check_alias(label)
        except InvalidInput:
            raise BadRoute(f"{what}: {label!r} is neither an alias nor a version number",
                           hint=f"name aliases or version numbers, e.g. {_EXAMPLE}") from None
    return label


@dataclass(frozen=True)
class RouteSpec:
    """Targets and their integer weights (adding up to 100), and an optional shadow target."""

    weights: tuple[tuple[str, int], ...]
    shadow: str | None = None

    @classmethod
    def parse(cls, route: str | Mapping[str, Any] | None, shadow: str | None = None) -> RouteSpec:
        """``production=90,candidate=10`` (or ``{"production": 90, ...}``); None routes nothing (a shadow alone)."""
        shown = route if isinstance(route, str) else _format(route) if isinstance(route, Mapping) else ""
        entries: list[tuple[str, Any]] = []
        if isinstance(route, str):
            if not route.strip():
                raise BadRoute("the route is empty", hint=f"write TARGET=WEIGHT pairs, e.g. {_EXAMPLE}")
            for part in route.split(","):
                match = _ENTRY.match(part)
                if match is None:
                    raise BadRoute(f"route {shown!r}: {part.strip()!r} is not TARGET=WEIGHT",
                                   hint=f"write TARGET=WEIGHT pairs separated by commas, e.g. {_EXAMPLE}")
                entries.append((match.group(1), match.group(2)))
        elif isinstance(route, Mapping):
            entries = [(str(k), v) for k, v in route.items()]
            if not entries:
                raise BadRoute("the route is empty", hint=f"name targets and weights, e.g. {_EXAMPLE}")
        elif route is not None:
            raise BadRoute(f"a route is text like {_EXAMPLE!r} or an object of weights, not {type(route).__name__}")
        weights: list[tuple[str, int]] = []
        for label, raw in entries:
            label = check_target(label.strip())
            weight = _weight(raw, label, shown)
            if any(label == seen for seen, _ in weights):
                raise BadRoute(f"route {shown!r} names {label!r} twice", hint="name each target once")
            weights.append((label, weight))
        if weights:
            total = sum(w for _, w in weights)
            if total != 100:
                raise BadRoute(f"route {shown!r}: the weights add up to {total}; they must add up to 100",
                               hint=f"give each target a share of 100, e.g. {_EXAMPLE}")
        if shadow is not None:
            shadow = check_target(str(shadow).strip(), "shadow")
        return cls(tuple(weights), shadow)

    def labels(self) -> list[str]:
        """Every target this spec names, the shadow last (each once)."""
        out = [label for label, _ in self.weights]
        if self.shadow is not None and self.shadow not in out:
            out.append(self.shadow)
        return out

    def describe(self) -> str:
        text = ",".join(f"{label}={weight}" for label, weight in self.weights)
        if self.shadow is not None:
            text = f"{text} (shadow {self.shadow})" if text else f"shadow {self.shadow}"
        return text


def startup_spec(refs: Sequence[ModelRef], route: str | None, shadow: str | None) -> RouteSpec | None:
    """The route ``--route``/``--shadow`` ask for, checked against the served references (None: neither given)."""
    if route is None and shadow is None:
        return None
    flag = "--route" if route is not None else "--shadow"
    if len(refs) != 1:
        raise InvalidInput(f"{flag} applies to one model; this server is asked to serve {len(refs)}",
                           hint="serve the model with a route in a process of its own")
    ref = refs[0]
    if route is not None and (ref.alias is not None or ref.version is not None):
        raise InvalidInput(f"with --route, name the model alone ({ref.name}), not {ref}",
                           hint=f"the route names the versions: groundwork serve {ref.name} --route {route}")
    spec = RouteSpec.parse(route, shadow)
    if not spec.weights:  # a shadow alone: every request goes to the reference served
        spec = RouteSpec(((own_label(ref), 100),), spec.shadow)
    return spec


def resolve_target(name: str, label: str, spec: RouteSpec, config: Config) -> ModelVersion:
    """The version a route target names now; an unknown alias or version is one clear error naming the route."""
    try:
        return get_model_version(str(target_ref(name, label)), config=config)
    except ModelNotFound as exc:
        if label == spec.shadow and label not in dict(spec.weights):
            raise ModelNotFound(f"shadow {label!r}: {exc.message}", hint=exc.hint) from None
        weights = ",".join(f"{target}={weight}" for target, weight in spec.weights)
        raise ModelNotFound(f"route {weights!r}: {exc.message}", hint=exc.hint) from None


def _weight(raw: Any, label: str, shown: str) -> int:
    text = raw.strip() if isinstance(raw, str) else raw
    if isinstance(text, bool) or not (isinstance(text, int) or (isinstance(text, str) and text.isdigit())):
        raise BadRoute(f"route {shown!r}: the weight of {label!r} is {str(raw)!r:.20}, not a whole number from 0 to 100",
                       hint=f"weights are percentages adding up to 100, e.g. {_EXAMPLE}")
    weight = int(text)
    if not 0 <= weight <= 100:
        raise BadRoute(f"route {shown!r}: the weight of {label!r} is {weight}; a weight is from 0 to 100",
                       hint=f"weights are percentages adding up to 100, e.g. {_EXAMPLE}")
    return weight


def _format(route: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in route.items())


@dataclass(eq=False)
class Target:
    """One version a route sends requests to: what its label points at now, its batcher and watcher."""

    label: str
    ref: ModelRef
    current: Loaded
    batcher: DynamicBatcher
    watcher: AliasWatcher | None = None

    def describe(self) -> dict[str, Any]:
        return {"target": self.label, "ref": str(self.ref), "version": self.current.number}


@dataclass(frozen=True, eq=False)
class RouteTable:
    """What requests draw from: targets with cumulative weights, and the shadow (immutable; replaced whole)."""

    spec: RouteSpec
    targets: tuple[Target, ...]
    cumulative: tuple[int, ...]
    shadow: Target | None = None
    #: when this table replaced the previous one (``time.time()``); a worker's shared-file sequence
    sequence: int = 0
    _draw: Any = field(default=random.random, repr=False)

    @classmethod
    def build(cls, spec: RouteSpec, by_label: Mapping[str, Target], sequence: int = 0) -> RouteTable:
        """The table for ``spec``, from targets already loaded for each of its labels (zero weights kept out)."""
        targets: list[Target] = []
        cumulative: list[int] = []
        total = 0
        for label, weight in spec.weights:
            if weight <= 0:
                continue
            total += weight
            targets.append(by_label[label])
            cumulative.append(total)
        shadow = by_label[spec.shadow] if spec.shadow is not None else None
        return cls(spec, tuple(targets), tuple(cumulative), shadow, sequence)

    def pick(self) -> Target:
        """One target, drawn by weight (one random number and a bisection)."""
        targets = self.targets
        if len(targets) == 1:
            return targets[0]
        return targets[bisect.bisect_right(self.cumulative, self._draw() * 100.0)]

    def shares(self) -> list[tuple[Target, int]]:
        """Each target that takes requests, with its weight."""
        out = []
        previous = 0
        for target, upto in zip(self.targets, self.cumulative, strict=True):
            out.append((target, upto - previous))
            previous = upto
        return out

    def primary(self) -> Target | None:
        """The target with the largest weight (the first of equals): what ``/readyz`` and ``/docs`` show."""
        shares = self.shares()
        return max(shares, key=lambda share: share[1])[0] if shares else None

    def members(self) -> list[Target]:
        """Every target of the table, the shadow included (each once)."""
        out = list(self.targets)
        if self.shadow is not None and all(t is not self.shadow for t in out):
            out.append(self.shadow)
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "route": [{**t.describe(), "weight": weight} for t, weight in self.shares()],
            "shadow": self.shadow.describe() if self.shadow is not None else None,
            "spec": self.spec.describe(),
        }


class Router:
    """The route of one served model: the table its requests draw from, and the targets behind it.

    :meth:`prepare` loads what a spec names (blocking: call it off the event loop once
    serving); :meth:`install` swaps the new table in with one assignment, starts the new
    targets' watchers and retires the targets left out once their queued requests are
    answered. A target whose label the table already has is kept as it is (its batcher,
    its watcher, its loaded version); a version already loaded for another target is
    shared, not loaded twice.

    With ``state_file`` (``groundwork serve --workers N``), a route changed in one
    worker is written there and every other worker applies it at its next poll.
    """

    def __init__(
        self,
        name: str,
        *,
        config: Config,
        new_batcher: Callable[[str], DynamicBatcher],
        on_swap: Callable[[Target, Loaded, Loaded], None],
        backend: str = "auto",
        threads: int | None = 1,
        interval_s: float = 2.0,
        state_file: Path | None = None,
        seeds: Sequence[Loaded] = (),
    ) -> None:
        self.name = name
        self.config = config
        self.backend = backend
        self.threads = threads
        self.interval_s = interval_s
        self.state_file = state_file
        self.table: RouteTable | None = None
        self._new_batcher = new_batcher
        self._on_swap = on_swap
        self._seeds = list(seeds)
        self._running = False
        self._lock: asyncio.Lock | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._file_stamp: int | None = None

    # -- loading (blocking) ----------------------------------------------------------------
    def _loaded(self, number: int, extra: Sequence[Loaded] = ()) -> Loaded | None:
        members = self.table.members() if self.table is not None else []
        for loaded in (*(t.current for t in members), *extra, *self._seeds):
            if loaded.number == number:
                return loaded
        return None

    def load_number(self, number: int) -> Loaded:
        """Version ``number`` of this model, shared with a target that has it loaded already."""
        known = self._loaded(number)
        if known is not None:
            return known
        version = get_model_version(f"{self.name}/{number}", config=self.config)
        return load_version(version, config=self.config, backend=self.backend, threads=self.threads)

    def prepare(self, spec: RouteSpec) -> dict[str, Target | tuple[ModelRef, Loaded]]:
        """What each label of ``spec`` answers with: a target kept from the table, or a newly loaded version."""
        kept = {t.label: t for t in self.table.members()} if self.table is not None else {}
        out: dict[str, Target | tuple[ModelRef, Loaded]] = {}
        fresh: list[Loaded] = []
        for label in spec.labels():
            if label in kept:
                out[label] = kept[label]
                continue
            ref = target_ref(self.name, label)
            version = resolve_target(self.name, label, spec, self.config)
            loaded = self._loaded(version.version, fresh) or load_version(
                version, config=self.config, backend=self.backend, threads=self.threads)
            fresh.append(loaded)
            out[label] = (ref, loaded)
        return out

    # -- the table (on the event loop) -------------------------------------------------------
    def install(self, spec: RouteSpec, prepared: Mapping[str, Target | tuple[ModelRef, Loaded]],
                sequence: int = 0) -> RouteTable:
        by_label: dict[str, Target] = {}
        for label, item in prepared.items():
            if isinstance(item, Target):
                by_label[label] = item
            else:
                ref, loaded = item
                by_label[label] = Target(label, ref, loaded, self._new_batcher(label))
        old = self.table.members() if self.table is not None else []
        table = RouteTable.build(spec, by_label, sequence)
        self.table = table
        self._seeds = []  # what the route started from is now either a target or unused
        members = table.members()
        if self._running:
            for target in members:
                if target.watcher is None:
                    self._watch(target)
            for target in old:
                if all(target is not m for m in members):
                    task = asyncio.get_running_loop().create_task(self._retire(target))
                    self._retiring.add(task)
                    task.add_done_callback(self._retiring.discard)
        return table

    async def update(self, spec: RouteSpec, *, sequence: int | None = None, publish: bool = True) -> RouteTable:
        """Load what ``spec`` needs (in a thread), then install it; with a state file, tell the other workers."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            prepared = await asyncio.to_thread(self.prepare, spec)
            table = self.install(spec, prepared, time.time_ns() if sequence is None else sequence)
            if publish and self.state_file is not None:
                await asyncio.to_thread(self._publish, table)
            return table

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the targets' watchers (and the shared-file poll); call on the event loop."""
        self._running = True
        if self.table is not None:
            for target in self.table.members():
                self._watch(target)
        if self.state_file is not None and self.interval_s > 0:
            self._sync_task = asyncio.get_running_loop().create_task(self._sync_loop(), name=f"gw-route-{self.name}")

    async def stop(self) -> None:
        self._running = False
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
        for task in list(self._retiring):
            task.cancel()
        for target in self.table.members() if self.table is not None else []:
            if target.watcher is not None:
                await target.watcher.stop()
            target.batcher.close()

    def _watch(self, target: Target) -> None:
        watcher = AliasWatcher(
            target.ref,
            current=lambda: target.current.number,
            swap=lambda loaded: self._swap(target, loaded),
            config=self.config,
            interval_s=self.interval_s,
            backend=self.backend,
            threads=self.threads,
            loader=self.load_number,
        )
        target.watcher = watcher
        watcher.start()

    def _swap(self, target: Target, loaded: Loaded) -> None:
        old = target.current
        target.current = loaded
        self._on_swap(target, old, loaded)

    async def _retire(self, target: Target) -> None:
        """Stop a target the route no longer names, once the requests it already took are answered."""
        if target.watcher is not None:
            await target.watcher.stop()
        while not target.batcher.idle:
            await asyncio.sleep(0.05)
        target.batcher.close()

    # -- several workers: one shared file ----------------------------------------------------------
    def _publish(self, table: RouteTable) -> None:
        assert self.state_file is not None
        record = {"sequence": table.sequence, "route": dict(table.spec.weights), "shadow": table.spec.shadow}
        fd, tmp = tempfile.mkstemp(prefix=".route-", dir=self.state_file.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh)
        os.replace(tmp, self.state_file)

    async def _sync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a half-read file or a version that will not load: retry next time
                print(f"groundwork serve: applying the shared route of {self.name} failed, will retry: {exc}",
                      file=sys.stderr, flush=True)
                self._file_stamp = None

    async def sync(self) -> bool:
        """Apply the route another worker wrote, when it is newer than ours; True when it was applied."""
        assert self.state_file is not None
        try:
            stamp = self.state_file.stat().st_mtime_ns
        except FileNotFoundError:
            return False
        if stamp == self._file_stamp:
            return False
        record = json.loads(self.state_file.read_text())
        self._file_stamp = stamp
        current = self.table.sequence if self.table is not None else -1
        if int(record["sequence"]) <= current:
            return False
        await self.update(RouteSpec.parse(record["route"] or None, record.get("shadow")),
                          sequence=int(record["sequence"]), publish=False)
        return True


__all__ = ["MAX_SHADOW_IN_FLIGHT", "BadRoute", "RouteSpec", "RouteTable", "Router", "Target", "check_target", "own_label", "resolve_target", "startup_spec",
           "target_ref"]
