"""``groundwork export``: a model version for the browser, ONNX Runtime mobile or plain ONNX, verified."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from groundwork.cli._app import (
    ArtifactsOption,
    JsonOption,
    StoreOption,
    app,
    console,
    err_console,
    make_config,
)

EXAMPLE = (
    "Examples:\n\n"
    "  groundwork export digits@production --target web --precision fp16 --out web/digits\n\n"
    "  groundwork export digits@production --target onnx --precision int8 --opset 17 --out onnx/digits\n\n"
    "  groundwork export digits/3 --target ort-mobile --out mobile/digits --data check.npz --json"
)


@app.command("export", epilog=EXAMPLE)
def export_command(
    ref: Annotated[str, typer.Argument(help="The model version: NAME@ALIAS, NAME/VERSION or NAME (its newest).")],
    target: Annotated[str, typer.Option("--target", help="web (a browser bundle), onnx, or ort-mobile (.ort).")] = "web",
    precision: Annotated[str, typer.Option("--precision", help="fp32, fp16 or int8.")] = "fp32",
    out: Annotated[
        Path | None, typer.Option("--out", help="The folder to write (new or empty). Default exports/NAME-vN-TARGET-PRECISION.")
    ] = None,
    data: Annotated[
        str | None,
        typer.Option("--data", help="Verification rows: .npz (one array per input), .npy, or module:function. "
                     "Default: 64 rows made from the registered example."),
    ] = None,
    min_agreement: Annotated[
        float, typer.Option("--min-agreement", help="Least label agreement (integer outputs) or mean cosine (floats).")
    ] = 0.99,
    opset: Annotated[int | None, typer.Option("--opset", help="ONNX opset for --target onnx / ort-mobile.")] = None,
    webgpu: Annotated[
        bool, typer.Option("--webgpu", help="Also vendor onnxruntime-web's WebGPU build (used where a GPU adapter exists).")
    ] = False,
    tokenizer: Annotated[
        Path | None, typer.Option("--tokenizer", help="A folder with tokenizer.json: bundle a JS tokenizer (tokenize()).")
    ] = None,
    template: Annotated[
        Path | None, typer.Option("--template", help="A folder of files replacing model.js, index.html or README.md.")
    ] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="The 'several threads' count (default min(4, CPUs)).")] = None,
    repeat: Annotated[int, typer.Option("--repeat", help="One-row predictions timed per runtime.")] = 30,
    force: Annotated[bool, typer.Option("--force", help="Replace what OUT holds (only once the check passed).")] = False,
    record: Annotated[bool, typer.Option("--record/--no-record", help="Record the passed export in the registry.")] = True,
    json_out: JsonOption = False,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Package a model version for another runtime and check it answers like the source model.

    web: a self-contained folder (model.onnx, model.js with load() and predict(), schema, index.html, onnxruntime-web vendored from npm), opened in headless Chromium with no network and compared with the Python model.

    onnx and ort-mobile: checked with ONNX Runtime. A failed check exits 1 and writes nothing, to OUT or the registry.
    """
    from groundwork.engines.export import export
    from groundwork.engines.export.verify import describe
    from groundwork.errors import ExecutionError

    config = make_config(store, artifacts)

    def progress(stage: str, message: str) -> None:
        if not json_out:
            err_console.print(f"[dim]{stage:>8}[/]  {message}", highlight=False)

    result = export(
        ref, target=target, precision=precision, out=out, data=data, min_agreement=min_agreement, opset=opset,
        webgpu=webgpu, tokenizer=tokenizer, template=template, threads=threads, repeat=repeat, record=record,
        force=force, strict=False, config=config, progress=progress,
    )
    if json_out:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    else:
        _print(result, describe)
    if not result.passed:
        raise ExecutionError(f"export refused: {'; '.join(result.problems)}",
                             hint="nothing was written or recorded")


def _print(result: Any, describe: Any) -> None:
    v = result.verification
    rows: list[tuple[str, str]] = [
        ("source", f"{v['source']['ref']} ({v['source']['flavor']}; reference: {v.get('reference', '?')})"),
        ("target", f"{result.target} {result.precision}"),
        ("checked in", f"{v.get('runtime', {}).get('name', '?')} · {v.get('runtime', {}).get('engine', '')}"),
        ("rows", str(v.get("data", ""))),
    ]
    if "agreement" in v:
        rows.append(("agreement", describe(v["agreement"])))
    for backend, other in (v.get("agreement_other_backends") or {}).items():
        rows.append((f"  {backend.replace('_', ' ')}", describe(other)))
    size = v.get("size") or {}
    if size:
        rows.append(("size", f"{size.get('total_bytes', 0) / 1e6:.2f} MB in all, model {size.get('model_bytes', 0) / 1e6:.2f} MB"
                     + (f", runtime {size['runtime_bytes'] / 1e6:.2f} MB" if size.get("runtime_bytes") else "")))
    for key, value in (v.get("latency_ms") or {}).items():
        rows.append((f"latency {key.replace('_', ' ')}", f"{value:.3f} ms (one row, median)" if value is not None else "-"))
    if v.get("browser_vs_native_1_thread"):
        rows.append(("browser / native", f"{v['browser_vs_native_1_thread']:.2f}x (one thread)"))
    if v.get("webgpu"):
        rows.append(("webgpu", str(v["webgpu"])))
    network = v.get("network")
    if network:
        blocked = network.get("blocked_requests") or []
        rows.append(("network", f"no request left 127.0.0.1 ({network.get('files_served')} files served)" if not blocked
                     else f"{len(blocked)} blocked: {blocked[0]}"))
    table = Table(show_header=False, show_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    if result.passed:
        where = f"export {result.record.id} of {result.record.ref}" if result.record else "not recorded (--no-record)"
        console.print(f"[bold green]passed[/]: wrote {result.out}/ ({len(result.files)} files); {where}", highlight=False)
    else:
        console.print("[bold red]refused[/]: " + "; ".join(result.problems), highlight=False)
