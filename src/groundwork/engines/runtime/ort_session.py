"""ONNX Runtime sessions (CPU execution provider, full graph optimization)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from groundwork.engines.runtime.base import Inputs, Outputs, check_inputs, run_split
from groundwork.engines.runtime.manifest import VariantManifest


def _options(threads: int, optimize: bool) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    opts.log_severity_level = 3
    return opts


class OrtSession:
    """An ONNX model on ONNX Runtime.

    One session with ``threads`` intra-op threads answers single requests; when
    ``streams > 1`` a second session with ``threads // streams`` threads is called
    from ``streams`` Python threads at once (ONNX Runtime's ``run`` is thread-safe
    and releases the GIL), each on its own micro-batch.
    """

    def __init__(self, manifest: VariantManifest, variant_dir: Path) -> None:
        import onnxruntime as ort

        self.manifest = manifest
        path = str(variant_dir / manifest.files["model"])
        optimize = bool(manifest.options.get("graph_optimization", True))
        providers = ["CPUExecutionProvider"]
        self._latency = ort.InferenceSession(path, _options(manifest.threads, optimize), providers=providers)
        self._throughput: Any = None
        self._pool: ThreadPoolExecutor | None = None
        if manifest.streams > 1:
            per_stream = max(1, manifest.threads // manifest.streams)
            self._throughput = ort.InferenceSession(path, _options(per_stream, optimize), providers=providers)
            self._pool = ThreadPoolExecutor(manifest.streams, thread_name_prefix="gw-ort")
        self._output_names = [o.name for o in self._latency.get_outputs()]

    def _run_one(self, feed: dict[str, np.ndarray]) -> Outputs:
        return [np.asarray(o) for o in self._latency.run(self._output_names, feed)]

    def _run_many(self, feeds: list[dict[str, np.ndarray]]) -> list[Outputs]:
        assert self._pool is not None and self._throughput is not None
        session = self._throughput
        futures = [self._pool.submit(session.run, self._output_names, feed) for feed in feeds]
        return [[np.asarray(o) for o in f.result()] for f in futures]

    def run(self, inputs: Inputs) -> Outputs:
        feed = check_inputs(inputs, self.manifest.inputs)
        many = self._run_many if self._pool is not None else None
        return run_split(feed, self.manifest.batch_size, self.manifest.streams, self._run_one, many)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._latency = None
        self._throughput = None
