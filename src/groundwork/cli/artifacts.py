"""``groundwork artifacts``: list a run's artifacts and restore them (verified) to disk."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from groundwork.cli._app import ArtifactsOption, JsonOption, StoreOption, app, console, make_config

artifacts_app = typer.Typer(
    help="List and restore content-addressed artifacts.\n\nExample:  groundwork artifacts get 3f9a2c:model.pt ./model.pt",
    no_args_is_help=True,
)
app.add_typer(artifacts_app, name="artifacts")


@artifacts_app.command("list", epilog="Example:  groundwork artifacts list 3f9a2c")
def list_command(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="Run id, unique id prefix, or name.")],
    json_out: JsonOption = False,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """A run's inputs and outputs with their digests."""
    from groundwork.cli.runs import print_json
    from groundwork.core.runs import get_run

    run = get_run(run_ref, config=make_config(store, artifacts))
    links = [*run.inputs, *run.outputs]
    if json_out:
        print_json([{"direction": a.direction, "name": a.name, "digest": a.digest, "kind": a.kind, "size": a.size, "is_dir": a.is_dir} for a in links])
        return
    table = Table(header_style="bold")
    for column in ("direction", "name", "kind", "digest", "size"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for a in links:
        table.add_row(a.direction, a.name, a.kind, a.digest, f"{a.size:,}")
    console.print(table)


@artifacts_app.command(
    "get",
    epilog=(
        "Example:  groundwork artifacts get 3f9a2c:model.pt ./model.pt   (or a digest)\n\n"
        "Example:  groundwork artifacts get baseline:out ./out --force   (replace ./out)"
    ),
)
def get_command(
    ref: Annotated[str, typer.Argument(metavar="REF", help="An artifact digest (or unique prefix), or RUN:NAME.")],
    dest: Annotated[Path, typer.Argument(help="Where to write the file or directory.")],
    force: Annotated[bool, typer.Option("--force", "-f", help="Replace DEST if it exists (a file by a file, a folder by a folder).")] = False,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Restore an artifact to DEST, verifying every byte against its digest.

    DEST appears whole or not at all: a folder is restored beside it first and renamed
    into place, so a corrupted artifact leaves nothing behind. An existing DEST is
    refused unless --force, which replaces it once the new copy is complete.
    """
    from groundwork.core.runs import get_run
    from groundwork.errors import AmbiguousReference, ArtifactNotFound, InvalidInput
    from groundwork.storage.stores import open_stores

    config = make_config(store, artifacts)
    if (dest.exists() or dest.is_symlink()) and not force:
        raise InvalidInput(f"{dest} already exists", hint="choose a new path, or replace it with --force")
    if ":" in ref:
        run_ref, _, name = ref.partition(":")
        run = get_run(run_ref, config=config)
        matches = [a for a in (*run.outputs, *run.inputs) if a.name == name]
        if not matches:
            names = ", ".join(a.name for a in (*run.outputs, *run.inputs)) or "none"
            raise ArtifactNotFound(f"run {run.id[:12]} has no artifact named {name!r} (it has: {names})")
        digest = matches[0].digest
    else:
        found = open_stores(config).metadata.find_artifacts(ref.lower())
        if len(found) > 1:
            raise AmbiguousReference(f"artifact prefix {ref!r} matches several artifacts", hint="type more of the digest")
        digest = found[0] if found else ref.lower()
    artifact_store = open_stores(config).artifacts
    if force and dest.exists():
        is_dir = artifact_store.info(digest).is_dir
        if is_dir != dest.is_dir():
            what, there = ("folder", "file") if is_dir else ("file", "folder")
            raise InvalidInput(f"{dest} is a {there}: --force replaces it only with a {there}, and this artifact is a {what}",
                               hint="choose another path")
    path = artifact_store.restore(digest, dest, replace=True)
    console.print(f"restored {digest[:16]} to {path}")
