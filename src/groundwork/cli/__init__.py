"""The ``groundwork`` (alias ``gw``) command line.

Errors are translated here, at the edge: a :class:`~groundwork.errors.GroundworkError`
prints one ``Error:`` line (and its hint) and exits 1; anything else is an
internal error and prints its traceback.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence

import click
import typer
from typer.exceptions import TyperException

from groundwork.cli._app import app, err_console
from groundwork.errors import GroundworkError, InvalidFilter

# Command modules register themselves on `app` when imported.
from groundwork.cli import runs as _runs  # noqa: E402,F401  isort: skip
from groundwork.cli import run as _run  # noqa: E402,F401  isort: skip
from groundwork.cli import demo as _demo  # noqa: E402,F401  isort: skip
from groundwork.cli import artifacts as _artifacts  # noqa: E402,F401  isort: skip
from groundwork.cli import models as _models  # noqa: E402,F401  isort: skip
from groundwork.cli import serve as _serve  # noqa: E402,F401  isort: skip
from groundwork.cli import predict as _predict  # noqa: E402,F401  isort: skip
from groundwork.cli import ui as _ui  # noqa: E402,F401  isort: skip
from groundwork.cli import optimize as _optimize  # noqa: E402,F401  isort: skip
from groundwork.cli import pipeline as _pipeline  # noqa: E402,F401  isort: skip
from groundwork.cli import lineage as _lineage  # noqa: E402,F401  isort: skip
from groundwork.cli import reproduce as _reproduce  # noqa: E402,F401  isort: skip
from groundwork.cli import export as _export  # noqa: E402,F401  isort: skip
from groundwork.cli import infer as _infer  # noqa: E402,F401  isort: skip
from groundwork.cli import sweep as _sweep  # noqa: E402,F401  isort: skip
from groundwork.cli import server as _server  # noqa: E402,F401  isort: skip
from groundwork.cli import login as _login  # noqa: E402,F401  isort: skip
from groundwork.cli import audit as _audit  # noqa: E402,F401  isort: skip
from groundwork.cli import monitor as _monitor  # noqa: E402,F401  isort: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = command.main(args=args, prog_name="groundwork", standalone_mode=False)
    except GroundworkError as exc:
        _print_error(exc)
        code = exc.exit_code
    # typer ships its own copy of click: its exceptions are typer.Exit, typer.Abort and
    # subclasses of TyperException (usage errors: usage line + message, exit 2). The
    # click package's own are caught too, for commands built on plain click.
    except (typer.Exit, click.exceptions.Exit) as exc:
        code = exc.exit_code
    except (typer.Abort, click.exceptions.Abort):
        err_console.print("Aborted.", highlight=False)
        code = 130
    except (TyperException, click.ClickException) as exc:
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            err_console.print(f"Error: {exc}", highlight=False)
        code = exc.exit_code
    except KeyboardInterrupt:
        err_console.print("Interrupted.", highlight=False)
        code = 130
    except BrokenPipeError:
        code = 0
    except Exception:  # a bug in groundwork, not the user's fault
        err_console.print("Internal error (please report it with this traceback):", highlight=False)
        traceback.print_exc()
        code = 2
    else:
        code = result if isinstance(result, int) else 0
    if argv is None:
        sys.exit(code)
    return code


def _print_error(exc: GroundworkError) -> None:
    err_console.print(f"[bold red]Error:[/] {exc.one_line()}", highlight=False, soft_wrap=True)
    if isinstance(exc, InvalidFilter) and exc.pointer():
        err_console.print(exc.pointer(), highlight=False, markup=False)


__all__ = ["app", "main"]
