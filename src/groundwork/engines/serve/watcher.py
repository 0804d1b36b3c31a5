"""Loading served versions, and the watcher that hot-swaps a model when its alias moves.

A :class:`Loaded` is one version ready to answer: predictor, validator, version
number. It is immutable; a swap replaces the served model's ``current`` Loaded in
one assignment on the event loop, so every request is validated and run against one
version from start to end (the batcher never mixes versions in a runtime call).
Requests already queued finish on the old version; the next ones get the new one.

The :class:`AliasWatcher` polls where the served reference points (one indexed read
per interval). When it moves, the new version is loaded and warmed up in a thread,
off the event loop, and swapped in only once it has answered its warm-up; a version
that fails to load is reported and retried later, while the old one keeps serving.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from groundwork.config import Config
from groundwork.core.registry import ModelRef, ModelVersion, get_model_version, registry_store
from groundwork.engines.flavors import Predictor, input_example, load_model
from groundwork.engines.flavors.base import synthetic_input
from groundwork.engines.serve.validation import Validator

#: A version that failed to load is tried again after this long (or as soon as the alias moves again).
RETRY_AFTER_S = 30.0


@dataclass(frozen=True, eq=False)
class Loaded:
    """One model version ready to answer (what a batch runs on)."""

    predictor: Predictor
    version: ModelVersion
    validator: Validator
    example: Any
    loaded_at: float

    @property
    def number(self) -> int:
        return self.version.version

    def predict_array(self, batch: Any) -> Any:
        return self.predictor.predict_array(batch)


def load_version(version: ModelVersion, *, config: Config, backend: str = "auto", threads: int | None = 1) -> Loaded:
    """Load ``version``, build its validator and run one warm-up prediction (blocking)."""
    predictor = load_model(version, backend=backend, threads=threads, config=config)
    signature = predictor.signature or version.signature
    validator = Validator(signature, predictor.input_dtype)
    example = input_example(version, config=config)
    warm = example
    if warm is None and signature is not None and not signature.columnar and signature.inputs:
        synthetic = synthetic_input(signature, rows=1)
        warm = synthetic.tolist() if synthetic is not None else None
    if warm is not None:
        batch, _ = validator(warm)
        predictor.predict_array(batch)  # the first call allocates; do it before traffic arrives
    return Loaded(predictor, version, validator, example, time.time())


def target_version(ref: ModelRef, config: Config) -> int | None:
    """Where ``ref`` points now (None for a pinned ``name/3``, which never moves)."""
    if ref.version is not None:
        return None
    reg = registry_store(config)
    if ref.alias is not None:
        return reg.alias_version(ref.name, ref.alias)
    return reg.latest_version(ref.name)


class AliasWatcher:
    """Polls one served reference and swaps in the version it moves to."""

    def __init__(
        self,
        ref: ModelRef,
        *,
        current: Callable[[], int],
        swap: Callable[[Loaded], None],
        config: Config,
        interval_s: float = 2.0,
        backend: str = "auto",
        threads: int | None = 1,
        loader: Callable[[int], Loaded] | None = None,
    ) -> None:
        self.ref = ref
        #: how a version number becomes a Loaded (a route shares versions between its targets)
        self._loader = loader
        self._current = current
        self._swap = swap
        self.config = config
        self.interval_s = interval_s
        self.backend = backend
        self.threads = threads
        self._failed: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None
        self.checks = 0

    def start(self) -> None:
        if self.ref.version is None and self.interval_s > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"gw-watch-{self.ref}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a store hiccup must not stop the watcher
                print(f"groundwork serve: watching {self.ref} failed, will retry: {exc}", file=sys.stderr)

    async def check(self) -> bool:
        """One poll; True when a new version was swapped in."""
        self.checks += 1
        wanted = await asyncio.to_thread(target_version, self.ref, self.config)
        if wanted is None or wanted == self._current():
            return False
        failed_at = self._failed.get(wanted)
        if failed_at is not None and time.monotonic() - failed_at < RETRY_AFTER_S:
            return False
        try:
            loaded = await asyncio.to_thread(self._load, wanted)
        except Exception as exc:
            self._failed[wanted] = time.monotonic()
            print(f"groundwork serve: could not load {self.ref.name}/{wanted} (still serving "
                  f"{self.ref.name}/{self._current()}): {exc}", file=sys.stderr)
            return False
        self._failed.pop(wanted, None)
        self._swap(loaded)
        return True

    def _load(self, number: int) -> Loaded:
        if self._loader is not None:
            return self._loader(number)
        version = get_model_version(f"{self.ref.name}/{number}", config=self.config)
        return load_version(version, config=self.config, backend=self.backend, threads=self.threads)
