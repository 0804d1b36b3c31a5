"""Assertions shared by the API tests."""

from __future__ import annotations


def assert_error(response: object, status: int, *words: str) -> dict[str, object]:
    """A canonical error answer: status, shape, and a message naming ``words``."""
    body = response.json()  # type: ignore[attr-defined]
    assert response.status_code == status, body  # type: ignore[attr-defined]
    assert body["ok"] is False and body["status"] == status
    assert {"ok", "status", "error", "message", "hint"} <= set(body)
    assert isinstance(body["message"], str) and body["message"]
    for word in words:
        assert word.lower() in body["message"].lower(), body["message"]
    return body  # type: ignore[no-any-return]
