"""In-process clients of the app, addressed as a browser on this machine addresses it."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from groundwork.server.security import TOKEN_HEADER

LOCAL_URL = "http://127.0.0.1:5000"


def local_client(app: Any, *, token: bool = True, **kwargs: Any) -> TestClient:
    """A TestClient whose requests name ``127.0.0.1`` in ``Host`` and, with ``token``, carry the write token."""
    headers = {TOKEN_HEADER: app.state.guard.token} if token else {}
    return TestClient(app, base_url=LOCAL_URL, headers=headers, raise_server_exceptions=False, **kwargs)
