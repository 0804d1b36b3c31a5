"""Export a model version to where the data is: the browser, ONNX Runtime mobile, plain ONNX; verified.

    gw.export("digits@production", target="web", precision="fp16", out="web/digits")
    groundwork export digits@production --target web --precision fp16 --out web/digits

Each export is built into a staging folder inside ``out``, then checked against the
source model in Python on the version's registered example and a verification set:

=============  ===================================================  ==========================================
target         what is written                                      how it is checked
=============  ===================================================  ==========================================
``web``        model.onnx, model.js (load, predict), schema,        in headless Chromium (Playwright), offline,
               index.html, onnxruntime-web from npm (no CDN)        WASM with 1 and several threads, WebGPU
                                                                    where the browser offers it
``onnx``       model.onnx (a chosen ``opset``), schema              ONNX Runtime (Python, CPU)
``ort-mobile`` model.ort + required_operators.config, schema        ONNX Runtime (Python, CPU) on the .ort file
=============  ===================================================  ==========================================

Precision: ``fp32`` (as registered), ``fp16`` (onnxconverter-common; inputs and outputs
stay FP32), ``int8`` (ONNX Runtime's dynamic quantization, per channel). The check
passes when label agreement (integer outputs) or mean cosine (float outputs) reaches
``min_agreement`` and the bundle fetched nothing from the network. Only then do the
files land in ``out`` (with ``verification.json``) and is the export recorded in the
registry as an artifact of the version (:mod:`groundwork.core.exports`); a failed
check leaves nothing behind and records nothing.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from groundwork.config import Config
from groundwork.engines.export.precision import PRECISIONS
from groundwork.errors import BrowserCheckFailed, ExecutionError, GroundworkError, InvalidInput

if TYPE_CHECKING:
    from groundwork.core.exports import ExportRecord
    from groundwork.engines.export.browser import BrowserSession

TARGETS = ("web", "onnx", "ort-mobile")
VERIFICATION_FILE = "verification.json"
Progress = Callable[[str, str], None]


@dataclass
class ExportResult:
    """What :func:`export` made: where, how it answered, and the registry record (when it passed and was recorded)."""

    ref: str
    target: str
    precision: str
    out: Path
    passed: bool
    verification: dict[str, Any]
    record: ExportRecord | None = None
    files: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return list(self.verification.get("problems", []))

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref, "target": self.target, "precision": self.precision, "out": str(self.out),
            "passed": self.passed, "files": list(self.files), "verification": self.verification,
            "export_id": self.record.id if self.record else None,
            "artifact_digest": self.record.artifact_digest if self.record else None,
        }


def export(
    ref: str,
    *,
    target: str = "web",
    precision: str = "fp32",
    out: str | os.PathLike[str] | None = None,
    data: Any = None,
    min_agreement: float = 0.99,
    opset: int | None = None,
    webgpu: bool = False,
    tokenizer: str | os.PathLike[str] | None = None,
    template: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    repeat: int = 30,
    record: bool = True,
    force: bool = False,
    strict: bool = True,
    browser: BrowserSession | None = None,
    config: Config | None = None,
    progress: Progress | None = None,
) -> ExportResult:
    """Export the version ``ref`` names to ``target`` at ``precision`` into ``out``, verified; see the module doc.

    ``data``: the verification set (``.npz``/``.npy`` path, ``module:function``, arrays);
    default: rows made from the registered example. ``threads``: the "several threads"
    count (default min(4, CPUs)). ``strict=False`` returns a failed result instead of
    raising :class:`ExecutionError`. ``browser``: a :class:`BrowserSession` to reuse.
    """
    say = progress or (lambda stage, message: None)
    if target not in TARGETS:
        raise InvalidInput(f"unknown export target {target!r}", hint=f"use one of {', '.join(TARGETS)}")
    if precision not in PRECISIONS:
        raise InvalidInput(f"unknown precision {precision!r}", hint=f"use one of {', '.join(PRECISIONS)}")
    if not 0 < min_agreement <= 1:
        raise InvalidInput(f"min_agreement must be in (0, 1], not {min_agreement}")
    if opset is not None and target == "web":
        raise InvalidInput("--opset applies to --target onnx and ort-mobile", hint="a web bundle keeps the version's opset")
    if (webgpu or tokenizer or template) and target != "web":
        raise InvalidInput("--webgpu, --tokenizer and --template apply to --target web only")
    if repeat < 1:
        raise InvalidInput(f"repeat must be at least 1, not {repeat}")
    config = config or Config.from_env()
    from groundwork.core.registry import get_model_version

    version = get_model_version(ref, config=config)
    target_dir = Path(out) if out is not None else Path("exports") / f"{version.name}-v{version.version}-{target}-{precision}"
    if not version.onnx_digest:
        note = version.info.get("onnx_note") or "it was not converted"
        raise InvalidInput(
            f"model {version.ref} ({version.flavor}) has no ONNX form to export ({note})",
            hint="log a model whose flavor converts to ONNX (scikit-learn, PyTorch with an example, an .onnx file)",
        )
    created = _prepare_out(target_dir, force)
    staging = target_dir / f".gw-export-{uuid.uuid4().hex[:12]}"
    try:
        staging.mkdir()
        result = _export(version, ref, target, precision, target_dir, staging, data=data, min_agreement=min_agreement,
                         opset=opset, webgpu=webgpu, tokenizer=tokenizer, template=template, threads=threads,
                         repeat=repeat, browser=browser, config=config, say=say)
        if result.passed:
            _land(staging, target_dir, result)
            if record:
                from groundwork.core.exports import record_export

                say("record", "recording the export in the registry")
                result.record = record_export(version.name, version.version, target_dir, target=target,
                                              precision=precision, verification=result.verification, config=config)
    except BaseException:
        _clean(staging, target_dir, created)
        raise
    if not result.passed:
        _clean(staging, target_dir, created)
        if strict:
            raise ExecutionError(f"export refused: {'; '.join(result.problems)}",
                                 hint="nothing was written or recorded; the check compares with the source model")
    return result


def _export(version: Any, ref: str, target: str, precision: str, out: Path, staging: Path, *, data: Any,
            min_agreement: float, opset: int | None, webgpu: bool, tokenizer: Any, template: Any,
            threads: int | None, repeat: int, browser: BrowserSession | None, config: Config,
            say: Progress) -> ExportResult:
    import onnxruntime

    from groundwork.engines.export import verify
    from groundwork.engines.export.precision import convert_precision, graph_operators
    from groundwork.engines.flavors import input_example
    from groundwork.storage.stores import open_stores

    say("load", f"loading {version.ref} ({version.flavor}) and its ONNX form")
    source_onnx = open_stores(config).artifacts.get_bytes(version.onnx_digest)
    inputs, outputs = verify.graph_io(source_onnx)
    check = verify.check_data(input_example(version, config=config), inputs, data)
    predictor, reference_note = _reference(version, config)
    reference = verify.reference_outputs(predictor, check)
    say("convert", f"{precision} graph" + (f" at opset {opset}" if opset else ""))
    model = convert_precision(source_onnx, precision)
    source = {"ref": version.ref, "requested": ref, "name": version.name, "version": version.version,
              "flavor": version.flavor,
              "signature": version.signature.describe() if version.signature else None}
    example = check.rows(0, check.example_rows) if check.example_rows else check.rows(0, min(5, len(check)))
    schema = {"source": source, "inputs": inputs, "outputs": outputs, "precision": precision, "example": example}
    several = threads or min(4, os.cpu_count() or 1)
    one_row = check.rows(0, 1)
    verification: dict[str, Any] = {
        "target": target, "precision": precision, "source": source, "reference": reference_note,
        "data": check.origin, "threads": several, "checked_at": time.time(),
    }
    problems: list[str] = []
    if target == "web":
        from groundwork.engines.export import web

        say("bundle", "writing the bundle (onnxruntime-web from the verified npm cache)")
        verification["size"] = web.build_bundle(
            staging, model, source=source, inputs=inputs, outputs=outputs, precision=precision, example=example,
            webgpu=webgpu, tokenizer=Path(tokenizer) if tokenizer else None,
            template=Path(template) if template else None)
        say("browser", "checking the bundle in headless Chromium (offline)")
        try:
            seen = web.check_in_browser(staging, check, session=browser, threads=several, repeat=repeat,
                                        operators=graph_operators(model), precision=precision)
        except BrowserCheckFailed as exc:
            problems.append(str(exc))
            seen = {}
        verification["runtime"] = {"name": seen.get("browser", "Chromium"),
                                   "engine": f"onnxruntime-web {_schema_runtime(staging)}",
                                   "backend": seen.get("backend", "wasm")}
        if seen:
            agreement = verify.compare(reference, seen["outputs"], min_agreement, check.example_rows)
            verification["agreement"] = agreement
            if not agreement["passed"]:
                problems.append(f"the browser answers differ from {version.ref}: {verify.describe(agreement)}")
            example_ref = reference[: max(1, check.example_rows)]
            for key, label in (("example_outputs_threaded", f"wasm_{several}_threads"), ("example_outputs_webgpu", "webgpu")):
                if key in seen:
                    other = verify.compare(example_ref, seen[key], min_agreement, 0)
                    verification.setdefault("agreement_other_backends", {})[label] = other
                    if not other["passed"]:
                        problems.append(f"on {label.replace('_', ' ')} the example answers differently: {verify.describe(other)}")
            latency = {f"browser_{k}": v for k, v in seen["latency_ms"].items()}
            verification["webgpu"] = seen.get("webgpu")
            verification["network"] = {"blocked_requests": seen["blocked_requests"], "files_served": seen.get("served"),
                                       "cross_origin_isolated": seen.get("isolated")}
            if seen["blocked_requests"]:
                problems.append(f"the bundle tried to fetch {seen['blocked_requests'][0]} (a bundle must not need the network)")
            if seen["page_errors"]:
                verification["page_errors"] = seen["page_errors"][:5]
        else:
            latency = {}
        exported_file: Path = staging / "model.onnx"
    else:
        from groundwork.engines.export import mobile, onnx_target

        builder = onnx_target.build_onnx if target == "onnx" else mobile.build_ort
        say("convert", f"writing {'model.onnx' if target == 'onnx' else 'model.ort'}")
        exported_file = builder(staging, model, opset=opset, **schema)
        say("check", "checking it with ONNX Runtime")
        outputs_seen = verify.ort_outputs(str(exported_file), check, precision=precision, operators=graph_operators(model))
        agreement = verify.compare(reference, outputs_seen, min_agreement, check.example_rows)
        verification["agreement"] = agreement
        verification["runtime"] = {"name": f"onnxruntime {onnxruntime.__version__} (Python, CPU)",
                                   "engine": f"onnxruntime {onnxruntime.__version__}", "backend": "cpu"}
        from groundwork.engines.export.web import bundle_sizes

        sizes = bundle_sizes(staging)
        sizes["model_bytes"] = exported_file.stat().st_size
        verification["size"] = sizes
        latency = {}
        if not agreement["passed"]:
            problems.append(f"ONNX Runtime's answers on the export differ from {version.ref}: {verify.describe(agreement)}")
    if not problems:
        say("latency", "timing ONNX Runtime (Python, CPU) on the same model and row")
        latency["onnxruntime_1_thread"] = verify.ort_latency(str(exported_file), one_row, 1, repeat)
        if several > 1:
            latency[f"onnxruntime_{several}_threads"] = verify.ort_latency(str(exported_file), one_row, several, repeat)
        if "browser_wasm_1_thread" in latency and latency["onnxruntime_1_thread"]:
            verification["browser_vs_native_1_thread"] = latency["browser_wasm_1_thread"] / latency["onnxruntime_1_thread"]
    verification["latency_ms"] = latency
    verification["problems"] = problems
    verification["passed"] = not problems
    files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
    return ExportResult(ref, target, precision, out, not problems, verification, files=files)


def _reference(version: Any, config: Config) -> tuple[Any, str]:
    """The source model in Python: its native flavor, or its ONNX form where the native one cannot load here."""
    from groundwork.engines.flavors import load_model

    try:
        predictor = load_model(version, backend="native", config=config)
        return predictor, f"{version.flavor} ({predictor.backend}), the version's native form"
    except (GroundworkError, ImportError, RuntimeError, ValueError, AttributeError) as exc:
        predictor = load_model(version, backend="onnx", config=config)
        return predictor, f"the version's ONNX form on onnxruntime (native form did not load: {str(exc)[:120]})"


def _schema_runtime(folder: Path) -> str:
    import json

    try:
        return str(json.loads((folder / "schema.json").read_text())["runtime"]["version"])
    except (OSError, ValueError, KeyError):
        return "?"


def _prepare_out(out: Path, force: bool) -> bool:
    """Make sure ``out`` is a folder this process can write, empty unless ``force``; True when it was created here."""
    if out.exists() and not out.is_dir():
        raise InvalidInput(f"cannot write the export to {out}: it is a file", hint="give a folder path with --out")
    existed = out.exists()
    if existed and any(p for p in out.iterdir() if not p.name.startswith(".gw-export-")) and not force:
        raise InvalidInput(f"{out} is not empty", hint="give a new or empty folder, or --force to replace its contents")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".gw-export-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        if not existed:
            shutil.rmtree(out, ignore_errors=True)
        raise InvalidInput(f"cannot write to {out}: {exc.strerror or exc}",
                           hint="choose a folder you can write, with --out") from None
    return not existed


def _land(staging: Path, out: Path, result: ExportResult) -> None:
    """Move the checked files from ``staging`` into ``out`` (replacing what ``force`` allowed to be there)."""
    import json

    (staging / VERIFICATION_FILE).write_text(json.dumps(result.verification, indent=1, default=str) + "\n")
    for old in out.iterdir():
        if old != staging:
            shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
    for item in staging.iterdir():
        os.replace(item, out / item.name)
    staging.rmdir()
    result.files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def _clean(staging: Path, out: Path, created: bool) -> None:
    shutil.rmtree(staging, ignore_errors=True)
    if created:
        shutil.rmtree(out, ignore_errors=True)


__all__ = ["PRECISIONS", "TARGETS", "ExportResult", "export"]
