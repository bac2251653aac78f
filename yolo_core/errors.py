"""Errors that mean "the input is wrong", as opposed to a bug.

Entry points turn these into a one-line reason and a non-zero exit (or a 4xx in the server);
anything else is a defect and keeps its traceback in the logs.
"""

from yolo_core.redact import redact_text


class UserInputError(ValueError):
    """Bad input from a user: the message names the file, field or request at fault."""


def one_line(text: str) -> str:
    """A message on one line: a library's multi-line explanation joined, not cut at its first break,
    with credentials in any URI it quotes masked (failure files and logs outlive the job)."""
    return " ".join(redact_text(str(text)).split())


def exception_line(exc: BaseException) -> str:
    """An exception's message by the same rule, or its type's name where it has none."""
    return one_line(str(exc)) or type(exc).__name__
