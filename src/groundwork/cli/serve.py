"""``groundwork serve``: serve registered models over HTTP with dynamic batching and alias hot-swap."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from groundwork.cli._app import ArtifactsOption, StoreOption, app, err_console, make_config


@app.command(
    "serve",
    epilog="Example:  groundwork serve digits@production --port 8000 --workers 2   "
    "then: curl --json '{\"inputs\": [[0, 1, ...]]}' http://127.0.0.1:8000/v1/models/digits/predict   "
    "A canary:  groundwork serve digits --route production=90,candidate=10 --shadow staging",
)
def serve_command(
    refs: Annotated[list[str], typer.Argument(help="Models to serve: NAME@ALIAS (follows the alias), NAME/VERSION, NAME.",
                                              show_default=False)],
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", "-w", help="Server processes sharing the port.")] = 1,
    max_batch_size: Annotated[int, typer.Option("--max-batch-size", help="Most rows in one runtime call.")] = 64,
    max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", help="Longest a batch waits for requests already arriving.")] = 2.0,
    log_sample: Annotated[float, typer.Option("--log-sample", help="Fraction of requests the prediction log keeps, with inputs, outputs, latency and version (0 to 1; see groundwork monitor).")] = 1.0,
    log_segment_seconds: Annotated[float, typer.Option("--log-segment-seconds", help="A prediction-log segment is stored this many seconds after its first request (or at 250,000 rows).")] = 60.0,
    poll_interval: Annotated[float, typer.Option("--poll-interval", help="Seconds between alias checks (0: never hot-swap).")] = 2.0,
    max_body_mb: Annotated[float, typer.Option("--max-body-mb", help="Largest request body accepted (413 above).")] = 16.0,
    threads: Annotated[int, typer.Option("--threads", help="ONNX Runtime threads per worker.")] = 1,
    backend: Annotated[str, typer.Option("--backend", help="auto (ONNX when there is an ONNX form), onnx, or native.")] = "auto",
    inline: Annotated[bool | None, typer.Option("--inline/--threaded", show_default="by the model's speed", help="Run the model on the event loop or in a worker thread (default: inline while its calls take under 0.5 ms).")] = None,
    limit_concurrency: Annotated[int, typer.Option("--limit-concurrency", help="Most connections per process; more are answered 503.")] = 1024,
    timeout_keep_alive: Annotated[float, typer.Option("--timeout-keep-alive", help="Seconds an idle keep-alive connection stays open.")] = 5.0,
    header_timeout: Annotated[float, typer.Option("--header-timeout", help="Seconds a client has to send a request's headers (slow clients are closed).")] = 10.0,
    body_timeout: Annotated[float, typer.Option("--body-timeout", help="Seconds a client has to send a request's body after its headers (or may stall reading an answer).")] = 60.0,
    route: Annotated[str | None, typer.Option("--route", help="Split the model's requests by weight between aliases or versions: production=90,candidate=10 (weights add up to 100).", show_default=False)] = None,
    shadow: Annotated[str | None, typer.Option("--shadow", help="Also send every request to this alias or version, after answering; its answers are never returned.", show_default=False)] = None,
    allow_host: Annotated[list[str] | None, typer.Option("--allow-host", help="A name clients may use in Host besides loopback names and --host (repeat it; '*': any).", show_default=False)] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn's log level.")] = "warning",
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Serve models: POST /v1/models/NAME/predict with {"inputs": [[...], ...]}; /docs, /metrics, /healthz, /readyz."""
    from groundwork.engines.serve import ServeOptions, run_server
    from groundwork.errors import InvalidInput

    if not 0 < port < 65536:
        raise InvalidInput(f"--port must be between 1 and 65535, not {port}")
    options = ServeOptions(
        max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, max_body_bytes=int(max_body_mb * 1024 * 1024),
        log_sample=log_sample, log_segment_seconds=log_segment_seconds, poll_interval_s=poll_interval, threads=threads, backend=backend, inline=inline,
        allowed_hosts=tuple(allow_host or ()), limit_concurrency=limit_concurrency,
        timeout_keep_alive_s=timeout_keep_alive, header_timeout_s=header_timeout, body_timeout_s=body_timeout,
        route=route, shadow=shadow,
    )
    config = make_config(store, artifacts)

    def announce(serving: Any) -> None:
        base = f"http://{host}:{port}"
        if serving is None:
            err_console.print(f"groundwork serve: {', '.join(refs)} on {base} with {workers} workers", highlight=False)
            return
        for served in serving.models.values():
            loaded = served.current
            table = served.router.table if served.router is not None else None
            err_console.print(
                f"groundwork serve: {served.ref} (version {loaded.number}, {loaded.predictor.backend}) at "
                f"{base}/v1/models/{served.name}/predict", highlight=False)
            table = served.router.table if served.router is not None else None
            if table is not None:
                shares = ", ".join(f"{t.label} (version {t.current.number}) {w}%" for t, w in table.shares())
                shadow = f"; shadow: {table.shadow.label} (version {table.shadow.current.number})" if table.shadow else ""
                err_console.print(f"groundwork serve: {served.name} routed {shares}{shadow}", highlight=False)
        err_console.print(f"groundwork serve: API docs at {base}/docs, metrics at {base}/metrics", highlight=False)

    run_server(refs, config=config, options=options, host=host, port=port, workers=workers,
               log_level=log_level, on_ready=announce)

