"""``groundwork server``: the team server, and the operator's commands for its users, projects and tokens.

``groundwork server --store URL --artifacts URL`` serves the REST API and the web UI to a
team (uvicorn, ``--workers`` processes). ``groundwork server users|projects|tokens`` work
directly on the store (``--store``, or ``$GROUNDWORK_STORE``): they are for the operator
of the server, on a machine that holds the database's credentials, and need no running
server. Each change they make is written to the audit log as ``operator:<os user>``.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated

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
from groundwork.cli.runs import fmt_time, print_json
from groundwork.errors import ConfigError, InvalidInput

if TYPE_CHECKING:
    from groundwork.storage.stores import TeamStore

server_app = typer.Typer(
    help="The team server: REST API and web UI with users, tokens, roles per project and an audit log.\n\n"
    "Example:  groundwork server --store postgresql://gw@db/groundwork --artifacts s3://bucket/gw --workers 4\n\n"
    "Example:  groundwork server users add ann --admin --store postgresql://gw@db/groundwork",
    invoke_without_command=True,
)
app.add_typer(server_app, name="server")
users_app = typer.Typer(help="Users of the team server (on the store directly: for the server's operator).\n\n"
                        "Example:  groundwork server users add ann --admin", no_args_is_help=True)
projects_app = typer.Typer(help="Projects and their members (on the store directly: for the server's operator).\n\n"
                           "Example:  groundwork server projects grant vision bob --role editor", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens (on the store directly: for the server's operator).\n\n"
                         "Example:  groundwork server tokens create --user ci --project vision --role editor --name ci",
                         no_args_is_help=True)
server_app.add_typer(users_app, name="users")
server_app.add_typer(projects_app, name="projects")
server_app.add_typer(tokens_app, name="tokens")

HostOption = Annotated[str, typer.Option("--host", help="Address to listen on; any but loopback needs a user first.")]
PortOption = Annotated[int, typer.Option("--port", "-p", help="Port to listen on.", min=1, max=65535)]


@server_app.callback(
    epilog=(
        "Example:  groundwork server --store postgresql://gw@db/groundwork --artifacts s3://bucket/gw --host 0.0.0.0 "
        "--port 8080 --workers 4 --forwarded-allow-ips 10.0.0.5\n\n"
        "See docs/server.md for a set-up from zero (PostgreSQL, S3, TLS, first admin, CI tokens, backups)."
    ),
)
def server_command(
    ctx: typer.Context,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8080,
    workers: Annotated[int, typer.Option("--workers", "-w", help="Worker processes.", min=1, max=256)] = 2,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option("--forwarded-allow-ips",
                     help="Addresses of the reverse proxies whose X-Forwarded-For/-Proto are trusted (comma-separated; "
                     "default: 127.0.0.1)."),
    ] = None,
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log", help="Log every request.")] = True,
) -> None:
    """Serve the team's REST API (OpenAPI at /api/openapi.json) and web UI.

    Every request needs a token (Authorization: Bearer) or a web UI login. The server
    refuses to listen on a non-loopback address while the store has no user: add the
    first admin with `groundwork server users add NAME --admin` first.
    """
    if ctx.invoked_subcommand is not None:
        return
    from groundwork.cli.ui import _bind, _is_loopback
    from groundwork.storage.stores import open_team_store

    config = make_config(store, artifacts)
    team = open_team_store(config.store_url)  # opened (and migrated) here: a bad URL fails now, in one line
    if not _is_loopback(host) and team.count_users() == 0:
        raise ConfigError(
            f"refusing to listen on {host}: the store has no user yet, so nobody could log in",
            hint="add the first admin: groundwork server users add NAME --admin --store URL (or keep --host 127.0.0.1)",
        )
    sock = _bind(host, port)
    os.environ.update(config.child_environ())  # the workers build their app from the environment
    shown = f"[{host}]" if ":" in host else host
    console.print(f"groundwork server at [bold]http://{shown}:{port}[/]  (store: {team.display_url}; "
                  f"{workers} worker{'s' if workers != 1 else ''}; Ctrl-C stops)", highlight=False)
    if team.count_users() == 0:
        err_console.print("[yellow]No users yet:[/] every request will be refused. Add one with: "
                          "groundwork server users add NAME --admin", highlight=False)
    _run_uvicorn(sock, workers, forwarded_allow_ips, access_log)
    raise typer.Exit(0)


def _run_uvicorn(sock: object, workers: int, forwarded_allow_ips: str | None, access_log: bool) -> None:
    import socket

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    assert isinstance(sock, socket.socket)
    settings = uvicorn.Config("groundwork.server.team:app_from_env", factory=True, workers=workers, lifespan="off",
                              proxy_headers=True, forwarded_allow_ips=forwarded_allow_ips, access_log=access_log,
                              log_level="info", server_header=False)
    server = uvicorn.Server(settings)
    try:
        if workers > 1:
            Multiprocess(settings, sockets=[sock]).run()
        else:
            server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()


# -- shared helpers ------------------------------------------------------------------------------------------
def _team(store: str | None) -> TeamStore:
    from groundwork.storage.stores import open_team_store

    return open_team_store(make_config(store, None).store_url)


def _password(from_stdin: bool, none: bool, what: str) -> str | None:
    """The password: a line of stdin (``--password-stdin``), none (``--no-password``), or typed twice at a terminal."""
    if none:
        return None
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise InvalidInput("--password-stdin read an empty line")
        return line
    if not sys.stdin.isatty():
        raise InvalidInput(f"no password for {what}",
                           hint="pipe it with --password-stdin, or use --no-password for a user of tokens only")
    value: str = typer.prompt(f"Password for {what}", hide_input=True, confirmation_prompt=True)
    return value


PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin.")]


def _table(*columns: str) -> Table:
    table = Table(show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column)
    return table


# -- users -----------------------------------------------------------------------------------------------
@users_app.command("add", epilog="Example:  echo 'long secret phrase' | groundwork server users add ann --admin --password-stdin")
def users_add(
    name: Annotated[str, typer.Argument(help="User name: lower case letters, digits, . _ - @ (64 at most).")],
    admin: Annotated[bool, typer.Option("--admin", help="A server admin: manages users and projects, every role everywhere.")] = False,
    password_stdin: PasswordStdin = False,
    no_password: Annotated[bool, typer.Option("--no-password", help="No web UI login (a user of API tokens only, e.g. CI).")] = False,
    json_out: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Add a user (asks for the password twice unless --password-stdin or --no-password)."""
    from groundwork.server import team as ops

    team = _team(store)
    ops.check_user_name(name)
    user = ops.add_user(team, ops.operator(), name, _password(password_stdin, no_password, name), server_admin=admin)
    if json_out:
        print_json(user.to_dict())
        return
    console.print(f"Added user {name}{' (server admin)' if admin else ''}.", highlight=False)
    if not admin:
        console.print(f"Give them a role: groundwork server projects grant PROJECT {name} --role editor", highlight=False)


@users_app.command("list", epilog="Example:  groundwork server users list --json")
def users_list(json_out: JsonOption = False, store: StoreOption = None) -> None:
    """Every user, with their projects and roles."""
    team = _team(store)
    users = team.list_users()
    roles: dict[str, list[str]] = {}
    for m in team.memberships():
        roles.setdefault(m.user, []).append(f"{m.project}:{m.role}")
    if json_out:
        print_json([{**u.to_dict(), "projects": roles.get(u.name, [])} for u in users])
        return
    if not users:
        console.print("No users yet. Add the first admin: groundwork server users add NAME --admin")
        return
    table = _table("name", "server admin", "disabled", "projects", "created")
    for u in users:
        table.add_row(u.name, "yes" if u.server_admin else "", "yes" if u.disabled else "",
                      ", ".join(roles.get(u.name, [])) or "-", fmt_time(u.created_at))
    console.print(table)


@users_app.command("disable", epilog="Example:  groundwork server users disable bob")
def users_disable(name: Annotated[str, typer.Argument(help="The user.")], json_out: JsonOption = False,
                  store: StoreOption = None) -> None:
    """Disable a user: their logins, sessions and tokens stop working at once."""
    from groundwork.server import team as ops

    user = ops.set_disabled(_team(store), ops.operator(), name, True)
    print_json(user.to_dict()) if json_out else console.print(f"Disabled user {name}.", highlight=False)


@users_app.command("enable", epilog="Example:  groundwork server users enable bob")
def users_enable(name: Annotated[str, typer.Argument(help="The user.")], json_out: JsonOption = False,
                 store: StoreOption = None) -> None:
    """Enable a disabled user again."""
    from groundwork.server import team as ops

    user = ops.set_disabled(_team(store), ops.operator(), name, False)
    print_json(user.to_dict()) if json_out else console.print(f"Enabled user {name}.", highlight=False)


@users_app.command("passwd", epilog="Example:  echo 'new long phrase' | groundwork server users passwd ann --password-stdin")
def users_passwd(name: Annotated[str, typer.Argument(help="The user.")], password_stdin: PasswordStdin = False,
                 store: StoreOption = None) -> None:
    """Set a user's web UI password."""
    from groundwork.server import team as ops

    team = _team(store)
    if team.get_user(name) is None:
        raise InvalidInput(f"no user named {name!r}", hint="list users with: groundwork server users list")
    password = _password(password_stdin, False, name)
    assert password is not None
    ops.set_password(team, ops.operator(), name, password)
    console.print(f"Changed the password of {name}.", highlight=False)


# -- projects --------------------------------------------------------------------------------------------
@projects_app.command("add", epilog="Example:  groundwork server projects add vision --description \"camera models\"")
def projects_add(
    name: Annotated[str, typer.Argument(help="Project name: lower case letters, digits, . _ - (64 at most).")],
    description: Annotated[str | None, typer.Option("--description", help="What the project is for.")] = None,
    json_out: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Add a project (runs, pipelines and models of one project are invisible to the others)."""
    from groundwork.server import team as ops

    project = ops.add_project(_team(store), ops.operator(), name, description)
    if json_out:
        print_json(project.to_dict())
        return
    console.print(f"Added project {name}. Add members: groundwork server projects grant {name} USER --role editor",
                  highlight=False)


@projects_app.command("list", epilog="Example:  groundwork server projects list --json")
def projects_list(json_out: JsonOption = False, store: StoreOption = None) -> None:
    """Every project with its members and their roles."""
    team = _team(store)
    members: dict[str, list[str]] = {}
    for m in team.memberships():
        members.setdefault(m.project, []).append(f"{m.user}:{m.role}")
    projects = team.list_projects()
    if json_out:
        print_json([{**p.to_dict(), "members": [m.to_dict() for m in team.memberships(project=p.name)]}
                    for p in projects])
        return
    table = _table("name", "members", "description", "created")
    for p in projects:
        table.add_row(p.name, ", ".join(members.get(p.name, [])) or "-", p.description or "", fmt_time(p.created_at))
    console.print(table)


RoleOption = Annotated[str, typer.Option("--role", "-r", help="viewer, editor, maintainer or admin.")]


@projects_app.command("grant", epilog="Example:  groundwork server projects grant vision bob --role maintainer")
def projects_grant(
    project: Annotated[str, typer.Argument(help="The project.")],
    user: Annotated[str, typer.Argument(help="The user.")],
    role: RoleOption = "viewer",
    json_out: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Give a user a role in a project (replacing the role they had there)."""
    from groundwork.server import team as ops

    member = ops.grant(_team(store), ops.operator(), user, project, role)
    if json_out:
        print_json(member.to_dict())
        return
    console.print(f"{user} is {member.role} in {project}.", highlight=False)


@projects_app.command("revoke", epilog="Example:  groundwork server projects revoke vision bob")
def projects_revoke(
    project: Annotated[str, typer.Argument(help="The project.")],
    user: Annotated[str, typer.Argument(help="The user.")],
    store: StoreOption = None,
) -> None:
    """Remove a user from a project (their tokens for it stop working at once)."""
    from groundwork.server import team as ops

    ops.revoke(_team(store), ops.operator(), user, project)
    console.print(f"{user} is no longer a member of {project}.", highlight=False)


# -- tokens ----------------------------------------------------------------------------------------------
@tokens_app.command(
    "create",
    epilog="Example:  groundwork server tokens create --user ci --project vision --role editor --name github-ci "
    "--expires 90d\n\nThe token is printed once; only a hash of it is kept.",
)
def tokens_create(
    user: Annotated[str, typer.Option("--user", "-u", help="Whose token.")],
    name: Annotated[str, typer.Option("--name", "-n", help="What it is for (listed; e.g. the CI job).")],
    project: Annotated[str, typer.Option("--project", help="The one project it works in.")] = "default",
    role: RoleOption = "editor",
    expires: Annotated[str, typer.Option("--expires", help="Lifetime: 30d, 90d, 12h, 1w, or never.")] = "90d",
    json_out: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Create an API token for a user, scoped to one project and a role no higher than theirs there."""
    from groundwork.server import team as ops

    row, made = ops.create_token(_team(store), ops.operator(), user=user, project=project, role=role, name=name,
                                 expires=expires)
    if json_out:
        print_json({"token": made.text, **row.to_dict()})
        return
    err_console.print(f"Token {row.id} for {user} in {project} ({row.role}; expires "
                      f"{fmt_time(row.expires_at) if row.expires_at else 'never'}). It is shown only now:",
                      highlight=False)
    print(made.text)


@tokens_app.command("list", epilog="Example:  groundwork server tokens list --project vision --json")
def tokens_list(
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user's.")] = None,
    project: Annotated[str | None, typer.Option("--project", help="Only this project's.")] = None,
    revoked: Annotated[bool, typer.Option("--revoked", help="Include revoked tokens.")] = False,
    json_out: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """API tokens (never their secret): id, user, project, role, expiry, last use."""
    rows = _team(store).list_tokens(user=user, project=project, include_revoked=revoked)
    if json_out:
        print_json([t.to_dict() for t in rows])
        return
    if not rows:
        console.print("No tokens. Create one: groundwork server tokens create --user NAME --name WHAT")
        return
    table = _table("id", "user", "project", "role", "name", "created", "expires", "last used", "revoked")
    for t in rows:
        table.add_row(t.id, t.user, t.project, t.role, t.name, fmt_time(t.created_at),
                      fmt_time(t.expires_at) if t.expires_at else "never", fmt_time(t.last_used_at),
                      fmt_time(t.revoked_at) if t.revoked_at else "")
    console.print(table)


@tokens_app.command("revoke", epilog="Example:  groundwork server tokens revoke 3f2a9c0d1e2b4a5c")
def tokens_revoke(token_id: Annotated[str, typer.Argument(help="The token's id (tokens list shows it).")],
                  store: StoreOption = None) -> None:
    """Revoke a token: it stops working at once."""
    from groundwork.server import team as ops

    token = ops.revoke_token(_team(store), ops.operator(), token_id)
    console.print(f"Revoked token {token.id} of {token.user}.", highlight=False)
