"""``groundwork models``: list, show, promote and the alias history of registered models."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer
from rich.table import Table

from groundwork.cli._app import ArtifactsOption, JsonOption, StoreOption, app, console, make_config
from groundwork.cli.runs import fmt_time, print_json

models_app = typer.Typer(
    help="Registered models: versions, aliases (production, staging...) and every alias move.\n\n"
    "Example:  groundwork models promote digits 3 --alias production --reason \"beats v2 on acc\"",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")


def _short(value: str | None, n: int = 12) -> str:
    return value[:n] if value else "-"


@models_app.command("list", epilog="Example:  groundwork models list --json")
def list_command(json_out: JsonOption = False, store: StoreOption = None, artifacts: ArtifactsOption = None) -> None:
    """Every registered model with its newest version and its aliases."""
    from groundwork.core.registry import list_models

    found = list_models(config=make_config(store, artifacts))
    if json_out:
        print_json([m.to_dict() for m in found])
        return
    if not found:
        console.print("No models yet. Register one with run.log_model(model, \"name\") inside gw.start_run().")
        return
    table = Table(show_edge=False, header_style="bold")
    for column in ("name", "latest", "aliases", "updated", "description"):
        table.add_column(column)
    for m in found:
        aliases = ", ".join(f"{a} -> {v}" for a, v in m.aliases.items()) or "-"
        table.add_row(m.name, str(m.latest_version or "-"), aliases, fmt_time(m.updated_at), m.description or "")
    console.print(table)


@models_app.command("show", epilog="Example:  groundwork models show digits   (or digits/3, digits@production)")
def show_command(
    ref: Annotated[str, typer.Argument(help="A model name (all its versions), or one version: NAME/3, NAME@ALIAS.")],
    json_out: JsonOption = False,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """A model's versions (flavor, ONNX form, run, signature, aliases), or one version in detail."""
    from groundwork.core.exports import list_exports
    from groundwork.core.registry import ModelRef, get_model_version, model_versions

    config = make_config(store, artifacts)
    parsed = ModelRef.parse(ref)
    if parsed.alias is None and parsed.version is None and "@" not in ref:
        versions = model_versions(parsed.name, config=config)
        exports = list_exports(parsed.name, config=config, all_versions=True)
        if json_out:
            print_json({"name": parsed.name, "versions": [v.to_dict() for v in versions],
                        "exports": [e.to_dict() for e in exports]})
            return
        table = Table(title=f"model {parsed.name}", show_edge=False, header_style="bold", title_justify="left")
        for column in ("version", "aliases", "flavor", "onnx", "run", "created", "signature"):
            table.add_column(column)
        for v in versions:
            table.add_row(
                str(v.version), ", ".join(v.aliases) or "", v.flavor, "yes" if v.onnx_digest else "no",
                _short(v.run_id), fmt_time(v.created_at), v.signature.describe() if v.signature else "-",
            )
        console.print(table)
        _print_exports(exports)
        return
    version = get_model_version(ref, config=config)
    exports = list_exports(version.ref, config=config)
    if json_out:
        print_json({**version.to_dict(), "exports": [e.to_dict() for e in exports]})
        return
    rows: list[tuple[str, Any]] = [
        ("version", version.ref),
        ("aliases", ", ".join(version.aliases) or "-"),
        ("flavor", version.flavor),
        ("signature", version.signature.describe() if version.signature else "-"),
        ("run", version.run_id or "-"),
        ("artifact", version.artifact_digest),
        ("onnx form", version.onnx_digest or f"none ({version.info.get('onnx_note', 'not converted')})"),
        ("created", f"{fmt_time(version.created_at)} by {version.user or '?'}"),
    ]
    if version.onnx_digest:
        rows.append(("onnx check", version.info.get("onnx_note", "-")))
    for key in ("format", "sklearn", "torch", "python", "estimator", "module_class"):
        if key in version.info:
            rows.append((key, version.info[key]))
    if version.description:
        rows.append(("description", version.description))
    for key, value in sorted(version.tags.items()):
        rows.append((f"tag {key}", value))
    table = Table(show_header=False, show_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, str(value))
    console.print(table)
    _print_exports(exports)


def _print_exports(exports: list[Any]) -> None:
    """The recorded (verified) exports: groundwork export."""
    if not exports:
        return
    table = Table(title="exports (groundwork export; each verified against the version)", show_edge=False,
                  header_style="bold", title_justify="left")
    for column in ("id", "version", "target", "verified", "latency", "folder", "created"):
        table.add_column(column)
    for e in exports:
        latency = e.verification.get("latency_ms") or {}
        shown = next((f"{value:.2f} ms {key.replace('_', ' ')}" for key, value in latency.items() if value is not None), "-")
        table.add_row(str(e.id), str(e.version), f"{e.target} {e.precision}", e.summary().split(", ", 1)[1], shown,
                      e.location or "-", fmt_time(e.created_at))
    console.print(table)


@models_app.command(
    "promote", epilog="Example:  groundwork models promote digits 3 --alias production --reason \"beats v2 on acc\""
)
def promote_command(
    name: Annotated[str, typer.Argument(help="The model name.")],
    version: Annotated[int, typer.Argument(help="The version the alias should point at.")],
    alias: Annotated[str, typer.Option("--alias", "-a", help="The alias to move (production, staging...).")] = "production",
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="Why (kept in the history).")] = None,
    json_out: JsonOption = False,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Point an alias at a version; the move (who, when, from, to, why) is kept in the history."""
    from groundwork.core.registry import promote

    move = promote(name, version, alias, reason=reason, config=make_config(store, artifacts))
    if json_out:
        print_json(dataclasses.asdict(move))
        return
    if move.from_version == move.to_version:
        console.print(f"{name}@{alias} already points at version {version}; nothing changed.")
    else:
        was = f" (was {move.from_version})" if move.from_version is not None else ""
        console.print(f"{name}@{alias} -> version {move.to_version}{was}")


@models_app.command("unalias", epilog="Example:  groundwork models unalias digits --alias staging --reason retired")
def unalias_command(
    name: Annotated[str, typer.Argument(help="The model name.")],
    alias: Annotated[str, typer.Option("--alias", "-a", help="The alias to remove.")],
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="Why (kept in the history).")] = None,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Remove an alias from a model (recorded in the history)."""
    from groundwork.core.registry import remove_alias

    previous = remove_alias(name, alias, reason=reason, config=make_config(store, artifacts))
    console.print(f"{name}@{alias} removed (it pointed at version {previous})")


@models_app.command("history", epilog="Example:  groundwork models history digits --alias production")
def history_command(
    name: Annotated[str, typer.Argument(help="The model name.")],
    alias: Annotated[str | None, typer.Option("--alias", "-a", help="Only this alias.")] = None,
    json_out: JsonOption = False,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Every alias move of a model, newest first: when, who, alias, from, to, why."""
    from groundwork.core.registry import alias_history

    moves = alias_history(name, alias, config=make_config(store, artifacts))
    if json_out:
        print_json([dataclasses.asdict(m) for m in moves])
        return
    if not moves:
        console.print(f"No alias of {name} has moved yet. Promote a version with: groundwork models promote {name} 1")
        return
    table = Table(show_edge=False, header_style="bold")
    for column in ("when", "who", "alias", "from", "to", "reason"):
        table.add_column(column)
    for m in moves:
        table.add_row(
            fmt_time(m.changed_at), m.who or "?", m.alias,
            "-" if m.from_version is None else str(m.from_version),
            "(removed)" if m.to_version is None else str(m.to_version),
            m.reason or "",
        )
    console.print(table)
