"""``groundwork audit``: the team server's audit log (who changed what, when, from where)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from groundwork.cli._app import JsonOption, StoreOption, app, console, make_config
from groundwork.cli.runs import fmt_time, print_json
from groundwork.errors import InvalidInput


def _through_server(server_url: str, token: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    import httpx

    from groundwork.storage.http import check_transport, error_from_answer

    url = check_transport(server_url)
    try:
        response = httpx.get(f"{url}/api/v1/audit", params={k: v for k, v in params.items() if v is not None},
                             headers={"Authorization": f"Bearer {token}"}, timeout=60.0)
    except httpx.HTTPError as exc:
        raise InvalidInput(f"cannot reach the groundwork server at {url}: {type(exc).__name__}") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict):
        raise error_from_answer(response.status_code, body, url)
    entries: list[dict[str, Any]] = body.get("entries", [])
    return entries


@app.command(
    "audit",
    epilog=(
        "Example:  groundwork audit --since 1h   (through $GROUNDWORK_SERVER with an admin's token)\n\n"
        "Example:  groundwork audit --store postgresql://gw@db/groundwork --action registry --since 7d --json"
    ),
)
def audit_command(
    project: Annotated[str | None, typer.Option("--project", help="Only this project (a server admin: any).")] = None,
    since: Annotated[str | None, typer.Option("--since", help="From: 1h, 7d, an ISO date, or UNIX seconds.")] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Only what this user did.")] = None,
    action: Annotated[str | None, typer.Option("--action", help="An action (model.alias) or its prefix (model).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many entries, newest first.", min=1, max=1000)] = 100,
    json_out: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Who changed what on the team server, when, from which address (newest first).

    Through the server ($GROUNDWORK_SERVER, with a token of a project admin or server admin),
    or with --store directly from the database (the server's operator).
    """
    from groundwork.server.audit import parse_since

    config = make_config(store, None)
    if store is None and config.server_url:
        from groundwork.storage.http import token_for

        entries = _through_server(config.server_url, token_for(config),
                                  {"project": project, "since": since, "actor": actor, "action": action, "limit": limit})
    else:
        from groundwork.storage.stores import open_team_store

        team = open_team_store(config.store_url, create=False)
        rows = team.audit_entries(project=project, since=parse_since(since) if since else None, actor=actor,
                                  action=action, limit=limit)
        entries = [e.to_dict() for e in rows]
    if json_out:
        print_json(entries)
        return
    if not entries:
        console.print("No audit entries match.")
        return
    table = Table(show_edge=False, header_style="bold")
    for column in ("time", "actor", "action", "target", "project", "address", "details"):
        table.add_column(column, overflow="fold")
    for e in entries:
        details = json.dumps(e.get("details") or {}, sort_keys=True, default=str)
        table.add_row(fmt_time(e.get("at")), str(e.get("actor")), str(e.get("action")), str(e.get("target") or ""),
                      str(e.get("project") or "-"), str(e.get("address") or ""), "" if details == "{}" else details[:120])
    console.print(table)
