"""The one error type a request handler turns into a 4xx JSON answer, and how it quotes a client."""

from __future__ import annotations

from yolo_core.errors import UserInputError

ECHO_LIMIT = 80  # characters of a client's value an error message repeats


class RequestError(UserInputError):
    """A bad request: `status` is the HTTP status, the message names the part at fault."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def shorten(text: str, limit: int = ECHO_LIMIT) -> str:
    """A short prefix: an error body or log line must not grow with what a client sent."""
    return text if len(text) <= limit else text[:limit] + "..."


def echo(value: object) -> str:
    """A client's value quoted (`'abc'`) for an error message, cut to a short prefix."""
    if isinstance(value, str):
        value = value[: ECHO_LIMIT + 1]  # repr of a 100 KB header would be cut anyway
    return shorten(repr(value))
