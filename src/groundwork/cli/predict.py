"""``groundwork predict``: predictions from a registered model, in-process or from a running server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from groundwork.cli._app import ArtifactsOption, StoreOption, app, make_config
from groundwork.errors import InvalidInput


def _read_inputs(source: str) -> Any:
    import orjson

    if source == "-":
        raw = sys.stdin.buffer.read()
        where = "stdin"
    else:
        path = Path(source)
        if not path.is_file():
            raise InvalidInput(f"no such input file: {source}", hint="give a JSON file, or - to read stdin")
        raw = path.read_bytes()
        where = source
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{where} is not valid JSON: {exc}") from None
    # Accept the server's envelope {"inputs": ...} or the bare rows / columns.
    if isinstance(document, dict) and "inputs" in document:
        return document["inputs"]
    return document


@app.command(
    "predict",
    epilog="Example:  groundwork predict digits@production --input rows.json   "
    "(or --url http://127.0.0.1:8000 to ask a running server)",
)
def predict_command(
    ref: Annotated[str, typer.Argument(help="The model: NAME@ALIAS, NAME/VERSION or NAME.")],
    input: Annotated[str, typer.Option("--input", "-i", help='JSON file of rows (or {"inputs": ...}); - for stdin.')] = "-",
    url: Annotated[str | None, typer.Option("--url", help="A running groundwork serve to ask instead of loading the model here.")] = None,
    backend: Annotated[str, typer.Option("--backend", help="auto, onnx or native (in-process only).")] = "auto",
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Print {"outputs": [...], "model_version": N} for the given inputs."""
    import orjson

    inputs = _read_inputs(input)
    if url:
        result = _ask_server(url, ref, inputs)
    else:
        from groundwork.core.registry import get_model_version
        from groundwork.engines.flavors import load_model
        from groundwork.engines.serve.validation import Validator

        config = make_config(store, artifacts)
        version = get_model_version(ref, config=config)
        predictor = load_model(version, backend=backend, config=config)
        batch, _ = Validator(predictor.signature or version.signature, predictor.input_dtype)(inputs)
        result = {"outputs": predictor.predict_array(batch), "model_version": version.version}
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY, default=lambda v: v.tolist()).decode() + "\n")


def _ask_server(url: str, ref: str, inputs: Any) -> Any:
    import httpx

    from groundwork.core.registry import ModelRef
    from groundwork.errors import GroundworkError

    name = ModelRef.parse(ref).name
    endpoint = f"{url.rstrip('/')}/v1/models/{name}/predict"
    try:
        response = httpx.post(endpoint, json={"inputs": inputs}, timeout=60)
    except httpx.HTTPError as exc:
        raise InvalidInput(f"cannot reach {endpoint}: {exc}", hint="is groundwork serve running there?") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200:
        error = GroundworkError(
            (body or {}).get("message") or f"{endpoint} answered {response.status_code}",
            hint=(body or {}).get("hint"),
        )
        error.http_status = response.status_code
        raise error
    return body
