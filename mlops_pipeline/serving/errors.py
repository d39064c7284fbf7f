"""The server's one error type, and its JSON details: every 4xx names the request field at fault."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError


class HTTPError(Exception):
    """A request the server refuses: HTTP ``status``, a message, ``details`` naming the fields."""

    def __init__(self, status: int, message: str, details: Sequence[Any] = (), reason: str = "bad_request"):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = list(details)
        self.reason = reason


def field_error(status: int, field: str, message: str, reason: str = "bad_request") -> HTTPError:
    """An error about one field; its message starts with the field's name."""
    return HTTPError(status, f"{field}: {message}", [{"field": field, "error": message}], reason)


def pydantic_details(exc: ValidationError, prefix: str = "") -> list[dict[str, Any]]:
    """One ``{"field", "error"}`` per pydantic error, the field as a dotted path (``body`` for the root)."""
    details = []
    for error in exc.errors(include_url=False, include_input=False):
        path = ".".join(str(part) for part in (prefix, *error["loc"]) if part != "")
        details.append({"field": path or "body", "error": error["msg"]})
    return details


def invalid_request(exc: ValidationError, message: str = "invalid request", prefix: str = "") -> HTTPError:
    """A 422 for a body that does not fit its model, naming every field at fault in the message too."""
    details = pydantic_details(exc, prefix)
    fields = ", ".join(dict.fromkeys(detail["field"] for detail in details))
    return HTTPError(422, f"{message} ({fields})", details, reason="invalid")
