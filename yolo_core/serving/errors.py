"""The one error type a request handler turns into a 4xx JSON answer."""

from __future__ import annotations

from yolo_core.errors import UserInputError


class RequestError(UserInputError):
    """A bad request: `status` is the HTTP status, the message names the part at fault."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
