"""``groundwork demo``: the end-to-end demo on the embedded default store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from groundwork.cli._app import ArtifactsOption, StoreOption, app, console, make_config
from groundwork.errors import GroundworkError

if TYPE_CHECKING:
    from groundwork.config import Config
    from groundwork.core.pipelines.run import PipelineResult


class DemoFailed(GroundworkError):
    headline = "Demo failed"


@app.command("demo", epilog="Example:  groundwork demo --epochs 10 --port 8000")
def demo_command(
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs of the digits MLP.")] = 10,
    port: Annotated[int | None, typer.Option(
        "--port", "-p", help="Port of the model server of step 9 on 127.0.0.1 (default: a free one).")] = None,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """The end-to-end demo on the embedded store: a recorded run, a cached pipeline, lineage, reproduction, serving.

    1. [bold]groundwork run[/] records the digits example's training script (a PyTorch MLP on scikit-learn's digits);
    2. [bold]groundwork pipeline run[/] runs the digits pipeline, then again: fully cached;
    3. [bold]groundwork lineage[/] shows how the evaluation was made, from the raw data;
    4. [bold]groundwork reproduce[/] reruns the training step and checks every output digest;
    5. the pipeline's MLP is registered as model [bold]digits[/] and promoted to [bold]production[/];
    6. [bold]groundwork lineage digits@production[/] walks from the alias down to the raw data;
    7. [bold]groundwork serve digits@production[/] answers one prediction over HTTP, then stops.
    """
    from groundwork.cli.lineage import lineage_command
    from groundwork.cli.models import show_command
    from groundwork.cli.pipeline import run_and_show
    from groundwork.cli.reproduce import print_reproduction
    from groundwork.cli.runs import runs_command
    from groundwork.core.execution import execute_command
    from groundwork.core.reproduce import reproduce
    from groundwork.engines.serve import claim_port

    config = make_config(store, artifacts)
    if port is not None:
        claim_port(port)  # a taken port fails now, not after the training
    console.rule("[bold]1. groundwork run -- python -m groundwork.examples.digits.train")
    result = execute_command(
        [sys.executable, "-m", "groundwork.examples.digits.train"],
        config=config,
        name="digits-mlp",
        params={"epochs": epochs, "lr": 0.01, "hidden": 128, "seed": 0},
    )
    if result.exit_code != 0:
        raise typer.Exit(result.exit_code)

    target = "groundwork.examples.digits.pipeline:digits_pipeline"
    console.rule(f"[bold]2. groundwork pipeline run {target}")
    first = run_and_show(target, {"epochs": epochs}, config=config)
    console.rule("[bold]3. the same pipeline again: every step comes from the cache")
    second = run_and_show(target, {"epochs": epochs}, config=config)

    console.rule("[bold]4. groundwork lineage: how the evaluation was made")
    lineage_command(second.run_id, descendants=False, depth=None, dot=False, json_out=False, store=store, artifacts=artifacts)

    console.rule("[bold]5. groundwork reproduce: rerun the training step and compare digests")
    train_run = first["train"].run_id
    assert train_run is not None  # the first run computed every step
    reproduction = reproduce(train_run, config=config, echo=False)
    print_reproduction(reproduction)

    console.rule("[bold]6. groundwork runs --filter \"kind != 'step'\"")
    runs_command(filter="kind != 'step'", order_by=None, limit=10, columns=None, json_out=False, store=store, artifacts=artifacts)

    console.rule("[bold]7. register the pipeline's MLP as model 'digits' and promote it to production")
    version, reason = register_digits(second, config)
    show_command(f"digits/{version}", json_out=False, store=store, artifacts=artifacts)
    console.print(f"digits@production -> version {version}  (reason: {reason})", highlight=False)

    console.rule("[bold]8. groundwork lineage digits@production: from the alias down to the raw data")
    lineage_command("digits@production", descendants=False, depth=None, dot=False, json_out=False,
                    store=store, artifacts=artifacts)

    console.rule("[bold]9. groundwork serve digits@production: one prediction over HTTP")
    serve_once(config, second.output("split", "test"), port=port)

    console.print(
        f"\n[bold green]Demo done.[/] Store: {config.store_url}  Artifacts: {config.artifacts_url}\n"
        "Next:  groundwork models show digits   ·   groundwork serve digits@production   ·   "
        "groundwork runs --filter \"metrics.acc > 0.9\"   ·   groundwork ui"
    )


def register_digits(result: PipelineResult, config: Config) -> tuple[int, str]:
    """Log the pipeline's MLP (with its scaler, taking raw pixels, answering labels) as a new version of
    ``digits`` in a run that records the step outputs it was built from, and promote it to production."""
    import tempfile

    import numpy as np
    import torch

    import groundwork as gw
    from groundwork.storage.stores import open_stores

    state = result.output("train")
    _train, _test, scaler = result.output("standardize")
    raw_test = result.output("split", "test")
    features = [c for c in raw_test.columns if c != "label"]
    x = raw_test[features].to_numpy(np.float32)
    labels = raw_test["label"].to_numpy()

    hidden = int(state["0.weight"].shape[0])
    mlp = torch.nn.Sequential(torch.nn.Linear(len(features), hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10))
    mlp.load_state_dict(state)
    standardize = torch.nn.Linear(len(features), len(features))
    with torch.no_grad():
        standardize.weight.copy_(torch.diag(torch.tensor(1.0 / scaler.scale_, dtype=torch.float32)))
        standardize.bias.copy_(torch.tensor(-scaler.mean_ / scaler.scale_, dtype=torch.float32))

    class DigitClassifier(torch.nn.Module):
        """Raw 8x8 pixel values (0-16) in, the digit out."""

        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(standardize, mlp)

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            digits: torch.Tensor = self.net(pixels).argmax(dim=1)
            return digits

    model = DigitClassifier().eval()
    with torch.no_grad():
        accuracy = float((model(torch.from_numpy(np.array(x))).numpy() == labels).mean())

    artifacts = open_stores(config).artifacts
    with tempfile.TemporaryDirectory(prefix="gw-demo-") as tmp, \
            gw.start_run(name="register-digits", config=config, capture_code=False) as run:
        # What the served model was made from: the trained weights, the scaler inside it, and the raw training
        # split it was fitted on (a dataset input: what groundwork monitor compares live requests with).
        for step, output, kind in (("train", None, "model"), ("standardize", "scaler", "model"),
                                   ("split", "train", "dataset")):
            info = result[step].outputs[output or result.graph[step].outputs[0]]
            path = artifacts.restore(info.digest, Path(tmp) / f"{step}-{info.filename}")
            run.log_input(path, name=f"{step}.{info.name}", kind=kind)
        run.log({"acc": accuracy})
        version = run.log_model(model, "digits", example=x[:5])
    reason = f"pipeline MLP: {accuracy:.1%} accuracy on the held-out split"
    gw.promote_model("digits", version.version, alias="production", reason=reason, config=config)
    return version.version, reason


def serve_once(config: Config, raw_test: Any, port: int | None = None) -> None:
    """Start ``groundwork serve digits@production`` on 127.0.0.1:``port`` (a free one by default), ask it once,
    stop it by PID."""
    import tempfile

    import httpx

    from groundwork.engines.serve import serve_subprocess

    with tempfile.TemporaryDirectory() as tmp, serve_subprocess(
        ["digits@production"], config=config, log_path=Path(tmp) / "serve.log", ready_timeout_s=180, port=port
    ) as (url, proc):
        console.print(f"$ groundwork serve digits@production --host 127.0.0.1 --port {url.rsplit(':', 1)[1]}",
                      highlight=False)
        row = raw_test.drop(columns=["label"]).iloc[:1].to_numpy().tolist()
        console.print(f"$ curl -d '{{\"inputs\": [[{', '.join(f'{v:g}' for v in row[0][:6])}, ...]]}}' "
                      f"{url}/v1/models/digits/predict", highlight=False)
        response = httpx.post(f"{url}/v1/models/digits/predict", json={"inputs": row}, timeout=60)
        if response.status_code != 200:
            raise DemoFailed(f"the server answered {response.status_code}: {response.text}")
        console.print(response.text, highlight=False)
        answer = response.json()
        console.print(f"served prediction: digit {answer['outputs'][0]} (true label {int(raw_test['label'].iloc[0])}), "
                      f"model version {answer['model_version']}", highlight=False)
    console.print(f"server stopped (pid {proc.pid})", highlight=False)
