"""The errors groundwork raises, each carrying its user-facing shape.

Every error a user can cause is a :class:`GroundworkError`. It has a short
``headline`` (what kind of problem), a message (what exactly is wrong), an
optional ``hint`` (how to fix it) and the ``http_status`` the REST server
answers with. The CLI prints ``Error: <message>`` (plus the hint) and exits 1;
the server renders :func:`error_body`. Anything that is *not* a
GroundworkError is a bug in groundwork and is reported as an internal error.
"""

from __future__ import annotations

from typing import Any


class GroundworkError(Exception):
    """Base of every error a user can cause or fix."""

    headline: str = "Invalid request"
    http_status: int = 400
    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def one_line(self) -> str:
        """The message and hint on one line, as the CLI prints it."""
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


def error_body(error: GroundworkError) -> dict[str, Any]:
    """The canonical JSON body of an error answer (pinned by a shape test)."""
    return {
        "ok": False,
        "status": error.http_status,
        "error": error.headline,
        "message": error.message,
        "hint": error.hint,
    }


# --- not found (404) -------------------------------------------------------
class NotFound(GroundworkError):
    headline = "Not found"
    http_status = 404


class RunNotFound(NotFound):
    headline = "Run not found"


class ArtifactNotFound(NotFound):
    headline = "Artifact not found"


class ModelNotFound(NotFound):
    headline = "Model not found"


# --- bad input (400 / 409 / 413 / 422) ---------------------------------------
class InvalidInput(GroundworkError):
    headline = "Invalid input"
    http_status = 400


class AmbiguousReference(InvalidInput):
    headline = "Ambiguous reference"


class InvalidFilter(InvalidInput):
    """A filter expression that does not parse; ``column`` is 1-based."""

    headline = "Invalid filter"

    def __init__(
        self, message: str, *, expression: str = "", column: int | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.expression = expression
        self.column = column

    def pointer(self) -> str:
        """The expression with a caret under the offending column."""
        if self.column is None or not self.expression:
            return ""
        return f"  {self.expression}\n  {' ' * (self.column - 1)}^"


class Conflict(GroundworkError):
    headline = "Conflict"
    http_status = 409


class PayloadTooLarge(InvalidInput):
    headline = "Payload too large"
    http_status = 413


class UnprocessableInput(InvalidInput):
    headline = "Unprocessable input"
    http_status = 422


# --- configuration and storage ------------------------------------------------
class ConfigError(GroundworkError):
    headline = "Configuration error"
    http_status = 400


class UnsupportedURL(ConfigError):
    headline = "Unsupported URL"


class StoreError(GroundworkError):
    """The store cannot be opened or written (permissions, server down)."""

    headline = "Store unavailable"
    http_status = 503


class SchemaTooNew(StoreError):
    headline = "Store written by a newer groundwork"


class CorruptArtifact(GroundworkError):
    """Stored bytes whose digest no longer matches their address.

    A server-side fault, not the caller's: answered with 500 on purpose,
    and never with the corrupted bytes.
    """

    headline = "Corrupted artifact"
    http_status = 500


class ExecutionError(GroundworkError):
    """A user's code (a step, a command) failed; the message says where."""

    headline = "Execution failed"
    http_status = 422


class ModelNotExportable(ExecutionError):
    """A model could not be turned into ONNX; ``operator`` is the one to blame, when the exporter names it."""

    headline = "Model export failed"

    def __init__(self, message: str, operator: str | None = None, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.operator = operator

    def reason(self) -> str:
        if self.operator:
            return f"ONNX export failed: operator {self.operator} is not supported by the exporter"
        return f"ONNX export failed: {self.message}"


class NotPrunable(ExecutionError):
    """``groundwork optimize`` found no structure in a model that it knows how to prune; the message says why."""

    headline = "Model not prunable"


class BrowserCheckFailed(ExecutionError):
    """An exported web bundle did not load or run in the browser (the message: what the page said)."""

    headline = "Browser check failed"


class AuthError(GroundworkError):
    """No valid credentials: no token, or a wrong, expired or revoked one (the message never repeats it)."""

    headline = "Not authorized"
    http_status = 401
    headers: dict[str, str] | None = {"WWW-Authenticate": 'Bearer realm="groundwork"'}


class TooManyRequests(GroundworkError):
    """Too many attempts (logins): the answer's ``Retry-After`` says when to try again."""

    headline = "Too many requests"
    http_status = 429

    def __init__(self, message: str, *, retry_after: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = max(1, int(retry_after))
        self.headers = {"Retry-After": str(self.retry_after)}


class Forbidden(GroundworkError):
    """A request this server refuses to answer: a foreign ``Host``, a write without the token or from another site."""

    headline = "Forbidden"
    http_status = 403
