"""Facts about processes on this host, for the layers that watch them (runs' heartbeats, sweep workers)."""

from __future__ import annotations

import getpass
import os


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` is alive on this host; a zombie (exited, not yet reaped) counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def current_user() -> str | None:
    """The operating-system user running this process (None when the system cannot say)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):  # no login name, no passwd entry, no pwd module
        return None
