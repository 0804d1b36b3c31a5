"""``groundwork monitor TARGET``: drift against the training data, latency, errors and throughput of a served model."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from groundwork.cli._app import (
    ArtifactsOption,
    JsonOption,
    StoreOption,
    app,
    console,
    err_console,
    make_config,
)
from groundwork.errors import InvalidInput

if TYPE_CHECKING:
    from groundwork.engines.monitor.report import MonitorReport

#: Feature rows shown in the table (all of them are in --json).
SHOWN_FEATURES = 20


@app.command(
    "monitor",
    epilog="Example:  groundwork monitor digits@production --since 1h   ·   "
    "groundwork monitor digits@production --json --alert-command 'mail -s drift me@example.com'   ·   "
    "groundwork monitor digits --compare production candidate",
)
def monitor_command(
    target: Annotated[str, typer.Argument(help="What to watch: NAME@ALIAS (the requests that route answered), "
                                               "NAME/VERSION, or NAME (every answered request).")],
    since: Annotated[str | None, typer.Option("--since", help="Only requests from this long ago (30m, 1h, 2d) or "
                                              "this date on (2026-12-06T10:00).", show_default=False)] = None,
    until: Annotated[str | None, typer.Option("--until", help="Only requests up to this long ago, or this date.",
                                              show_default=False)] = None,
    reference: Annotated[str | None, typer.Option("--reference", help="Compare with this data set (a Parquet, CSV or "
                                                  ".npy file, or an artifact digest) instead of the data that trained "
                                                  "the served version (found through lineage).",
                                                  show_default=False)] = None,
    compare: Annotated[tuple[str, str] | None, typer.Option("--compare", help="Two routes side by side: agreement "
                                                            "(shadow copies of the same requests), predictions, "
                                                            "latency and errors.", show_default=False)] = None,
    alert_command: Annotated[str | None, typer.Option("--alert-command", help="When a threshold is crossed, run this "
                                                      "shell command with the report (JSON) on its stdin.",
                                                      show_default=False)] = None,
    psi: Annotated[float, typer.Option("--psi", help="A feature drifts at this PSI or more ...")] = 0.2,
    ks: Annotated[float, typer.Option("--ks", help="... or this Kolmogorov-Smirnov distance ...")] = 0.1,
    wasserstein: Annotated[float, typer.Option("--wasserstein", help="... or this Wasserstein distance (in reference "
                                               "standard deviations), when the change is significant:")] = 0.1,
    alpha: Annotated[float, typer.Option("--alpha", help="the test's p-value below alpha / features (Bonferroni).")
                     ] = 0.05,
    min_rows: Annotated[int, typer.Option("--min-rows", help="Fewer logged rows decide nothing.")] = 100,
    max_error_rate: Annotated[float, typer.Option("--max-error-rate", help="Alert above this share of failed "
                                                  "requests.")] = 0.05,
    max_p99_ms: Annotated[float | None, typer.Option("--max-p99-ms", help="Alert above this p99 latency (ms).",
                                                     show_default=False)] = None,
    json_out: JsonOption = False,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Drift of every input feature and of the predictions against the training data, latency p50/p99, error rate
    and throughput, from the prediction log that [bold]groundwork serve[/] writes. Exits 1 when a threshold is crossed.
    """
    import orjson

    from groundwork.engines.monitor.drift import Thresholds
    from groundwork.engines.monitor.report import monitor_report

    for flag, value in (("--psi", psi), ("--ks", ks), ("--wasserstein", wasserstein)):
        if not value > 0 or not math.isfinite(value):
            raise InvalidInput(f"{flag} must be a positive number, not {value}")
    if not 0 < alpha < 1:
        raise InvalidInput(f"--alpha is a probability between 0 and 1, not {alpha}")
    if not 0 <= max_error_rate <= 1:
        raise InvalidInput(f"--max-error-rate is a fraction between 0 and 1, not {max_error_rate}")
    if min_rows < 1:
        raise InvalidInput(f"--min-rows must be at least 1, not {min_rows}")
    thresholds = Thresholds(psi=psi, ks=ks, wasserstein=wasserstein, alpha=alpha, min_rows=min_rows,
                            max_error_rate=max_error_rate, max_p99_ms=max_p99_ms)
    report = monitor_report(target, since=since, until=until, reference=reference, thresholds=thresholds,
                            compare=(compare[0], compare[1]) if compare else None,
                            config=make_config(store, artifacts))
    document = orjson.dumps(report.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_INDENT_2)
    if json_out:
        sys.stdout.write(document.decode() + "\n")
    else:
        _print(report)
    if report.alert and alert_command:
        _alert(alert_command, document, target)
    if report.alert:
        raise typer.Exit(1)


def _alert(command: str, document: bytes, target: str) -> None:
    try:
        done = subprocess.run(command, shell=True, input=document, timeout=120, check=False,
                              env={**os.environ, "GROUNDWORK_MONITOR_TARGET": target})
    except subprocess.TimeoutExpired:
        err_console.print("Warning: the alert command did not finish within 120 s", highlight=False)
        return
    if done.returncode != 0:
        err_console.print(f"Warning: the alert command exited with {done.returncode}", highlight=False)


def _number(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}g}"


def _print(report: MonitorReport) -> None:
    from rich.table import Table

    traffic = report.traffic
    versions = ", ".join(f"v{v}" for v in traffic.get("versions", {})) or "–"
    window = f"{report.segments} segment{'s' if report.segments != 1 else ''}"
    console.print(f"[bold]{report.target}[/]: version {report.version} now; answered by {versions}; {window}",
                  highlight=False)
    for lost in report.lost:
        err_console.print(f"Warning: a segment was lost (its server stopped before closing it): up to "
                          f"{lost['requests']} requests, {lost['rows']} rows as of its last refresh", highlight=False)
    for note in report.notes:
        console.print(note, style="dim", highlight=False)
    if traffic.get("requests"):
        latency = traffic["latency_ms"]
        console.print(
            f"{traffic['requests']:,} requests ({traffic['rows']:,} rows), {traffic['throughput_rps']:,.1f} req/s; "
            f"errors {traffic['errors']:,} ({traffic['error_rate']:.2%}); latency p50 {_number(latency['p50'])} ms, "
            f"p99 {_number(latency['p99'])} ms", highlight=False)
    if report.reference is not None:
        ref = report.reference
        how = "through lineage" if ref.source == "lineage" else "as given"
        console.print(f"reference: {ref.description}, {ref.rows:,} rows ({how})", highlight=False)
    elif report.reference_error:
        err_console.print(f"Warning: no drift: {report.reference_error}", highlight=False)
    features = sorted(report.features, key=lambda f: (not f.drifted, -(f.psi or 0.0)))
    if features:
        table = Table(title="drift against the reference", title_justify="left")
        for column in ("feature", "rows", "PSI", "KS", "Wasserstein (sd)", "chi2 p", "drifted"):
            table.add_column(column, justify="left" if column in ("feature", "drifted") else "right")
        shown = features[:SHOWN_FEATURES] + ([report.prediction] if report.prediction else [])
        for f in shown:
            table.add_row(f.name, f"{f.rows:,}", _number(f.psi), _number(f.ks), _number(f.wasserstein),
                          _number(f.chi2_pvalue), "[red]yes[/]" if f.drifted else (f.note or "no"))
        console.print(table)
        if len(features) > SHOWN_FEATURES:
            console.print(f"… and {len(features) - SHOWN_FEATURES} more features without drift (--json for all)",
                          style="dim", highlight=False)
    if report.compare is not None:
        _print_compare(report.compare)
    if report.crossings:
        for crossing in report.crossings:
            console.print(f"[bold red]threshold crossed:[/] {crossing}", highlight=False)
    else:
        console.print("[green]no threshold crossed[/]", highlight=False)


def _print_compare(compare: dict[str, Any]) -> None:
    from rich.table import Table

    a, b = compare["routes"]
    table = Table(title=f"{a} and {b}", title_justify="left")
    table.add_column("")
    table.add_column(a, justify="right")
    table.add_column(b, justify="right")
    ta, tb = compare["traffic"][a], compare["traffic"][b]
    table.add_row("requests", f"{ta['requests']:,}", f"{tb['requests']:,}")
    table.add_row("versions", ", ".join(ta["versions"]) or "–", ", ".join(tb["versions"]) or "–")
    table.add_row("error rate", f"{ta['error_rate']:.2%}", f"{tb['error_rate']:.2%}")
    table.add_row("latency p50 ms", _number(ta["latency_ms"]["p50"]), _number(tb["latency_ms"]["p50"]))
    table.add_row("latency p99 ms", _number(ta["latency_ms"]["p99"]), _number(tb["latency_ms"]["p99"]))
    table.add_row("throughput req/s", f"{ta['throughput_rps']:,.1f}", f"{tb['throughput_rps']:,.1f}")
    console.print(table)
    agreement = compare.get("agreement")
    if agreement:
        extra = f", mean absolute difference {agreement['mean_abs_diff']:.3g}" if "mean_abs_diff" in agreement else ""
        console.print(f"agreement: {agreement['rate']:.2%} of {agreement['paired_rows']:,} rows answered by both "
                      f"(shadow copies of the same requests){extra}", highlight=False)
    else:
        console.print("agreement: no request was answered by both (a shadow pairs them: --shadow)", style="dim",
                      highlight=False)
    predictions = compare.get("predictions")
    if predictions:
        console.print(f"predictions: {predictions['by']}: PSI {_number(predictions['psi'])}"
                      + (f", chi2 p {_number(predictions['chi2_pvalue'])}" if predictions.get("chi2_pvalue") is not None
                         else f", KS {_number(predictions['ks'])}")
                      + (" (they differ)" if predictions["drifted"] else " (alike)"), highlight=False)
