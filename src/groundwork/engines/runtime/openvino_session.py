"""OpenVINO sessions on the CPU plugin (FP32, BF16 on AVX512-BF16/AMX, INT8 from NNCF)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from groundwork.engines.runtime.base import Inputs, Outputs, check_inputs, run_split
from groundwork.engines.runtime.manifest import VariantManifest

#: The CPU plugin's name for each precision we ask for. INT8 layers come from the
#: quantized model itself; the hint only sets the precision of the layers around them.
_PRECISION_HINT = {"fp32": "f32", "bf16": "bf16"}


@functools.lru_cache(maxsize=1)
def _core() -> Any:
    import openvino as ov

    return ov.Core()


def compile_config(precision: str, threads: int, streams: int, options: dict[str, Any]) -> dict[str, str]:
    """The CPU plugin configuration for a variant (empty options = OpenVINO's own defaults)."""
    if options.get("openvino_defaults"):
        return {}
    hint = options.get("inference_precision") or _PRECISION_HINT.get(precision, "f32")
    return {
        "PERFORMANCE_HINT": "LATENCY" if streams <= 1 else "THROUGHPUT",
        "NUM_STREAMS": str(max(1, streams)),
        "INFERENCE_NUM_THREADS": str(max(1, threads)),
        "INFERENCE_PRECISION_HINT": str(hint),
    }


class OpenVINOSession:
    """A model (OpenVINO IR or ONNX) compiled for the CPU.

    One compiled model with a single stream of ``threads`` threads answers single
    requests; when ``streams > 1`` a second one with ``streams`` streams serves the
    micro-batches of a large request through an ``AsyncInferQueue``.
    """

    def __init__(self, manifest: VariantManifest, variant_dir: Path) -> None:
        import openvino as ov

        self.manifest = manifest
        core = _core()
        model = core.read_model(str(variant_dir / manifest.files["model"]))
        config = compile_config(manifest.precision, manifest.threads, 1, manifest.options)
        self._latency = core.compile_model(model, "CPU", config)
        self._request = self._latency.create_infer_request()
        self._queue: Any = None
        if manifest.streams > 1 and not manifest.options.get("openvino_defaults"):
            config = compile_config(manifest.precision, manifest.threads, manifest.streams, manifest.options)
            self._throughput = core.compile_model(model, "CPU", config)
            self._queue = ov.AsyncInferQueue(self._throughput, manifest.streams)
        self._outputs = list(self._latency.outputs)

    def _run_one(self, feed: dict[str, np.ndarray]) -> Outputs:
        result = self._request.infer(feed)
        return [np.array(result[o]) for o in self._outputs]

    def _run_many(self, feeds: list[dict[str, np.ndarray]]) -> list[Outputs]:
        results: list[Outputs] = [[] for _ in feeds]
        outputs = self._outputs

        def done(request: Any, index: int) -> None:
            results[index] = [np.array(request.get_output_tensor(i).data) for i in range(len(outputs))]

        self._queue.set_callback(done)
        for index, feed in enumerate(feeds):
            self._queue.start_async(feed, index)
        self._queue.wait_all()
        return results

    def run(self, inputs: Inputs) -> Outputs:
        feed = check_inputs(inputs, self.manifest.inputs)
        many = self._run_many if self._queue is not None else None
        return run_split(feed, self.manifest.batch_size, self.manifest.streams, self._run_one, many)

    def close(self) -> None:
        self._queue = None
        self._request = None
        self._latency = None
