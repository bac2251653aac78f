"""The one place that says how transient failures are retried.

Transient errors (a dropped connection, a throttled or unavailable service) are retried with
exponential backoff and jitter, within a bound on attempts, on the time spent sleeping and on the
wall-clock time; anything else (a missing key, a denied request, bad input) fails at once, since
retrying it only delays the error. AWS clients retry by themselves through botocore's retry modes
(`aws_client_config`); everything else goes through tenacity (`call_with_retry`, `retry_transient`).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity

from yolo_core.errors import UserInputError
from yolo_core.redact import redact_text

LOG = logging.getLogger(__name__)
T = TypeVar("T")

_TRANSIENT_ERRNOS = {errno.EAGAIN, errno.ETIMEDOUT, errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE}
_TRANSIENT_AWS_CODES = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
}
_TRANSIENT_MLFLOW_CODES = {"INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"}


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts, backoff, and two bounds on the total time."""

    max_attempts: int = 5
    first_wait_s: float = 0.5
    max_wait_s: float = 8.0
    jitter_s: float = 0.5
    max_sleep_s: float = 30.0  # the sum of all backoff sleeps never exceeds this
    max_total_s: float = 120.0  # no attempt starts after this much wall-clock time


TRANSFER = RetryPolicy()  # S3 uploads and downloads: worth a few minutes of patience
TRACKING = RetryPolicy(max_attempts=4, max_sleep_s=10.0, max_total_s=60.0)  # never stall training long
AWS_MAX_ATTEMPTS = 8  # botocore "standard" mode: backoff with jitter, throttling and 5xx only

# MLflow's HTTP client retries on its own for up to minutes; let our policy be the only one.
MLFLOW_HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def _status_code(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        return response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return getattr(response, "status_code", None)  # requests


def _is_transient_status(status: int | None) -> bool:
    return status is not None and (status == 429 or status >= 500)


def _aws_verdict(exc: BaseException) -> bool | None:
    botocore_exceptions = sys.modules.get("botocore.exceptions")
    if botocore_exceptions is None:
        return None
    if isinstance(exc, botocore_exceptions.ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        return code in _TRANSIENT_AWS_CODES or _is_transient_status(_status_code(exc))
    if isinstance(exc, botocore_exceptions.HTTPClientError | botocore_exceptions.ConnectionError):
        return True
    return None


def _mlflow_verdict(exc: BaseException) -> bool | None:
    mlflow_exceptions = sys.modules.get("mlflow.exceptions")
    if mlflow_exceptions is None or not isinstance(exc, mlflow_exceptions.MlflowException):
        return None
    if exc.error_code in _TRANSIENT_MLFLOW_CODES:
        return True
    return _is_transient_status(exc.get_http_status_code()) and exc.error_code != "INVALID_PARAMETER_VALUE"


def _requests_verdict(exc: BaseException) -> bool | None:
    requests_exceptions = sys.modules.get("requests.exceptions")
    if requests_exceptions is None:
        return None
    if isinstance(exc, requests_exceptions.ConnectionError | requests_exceptions.Timeout):
        return True
    if isinstance(exc, requests_exceptions.HTTPError):
        return _is_transient_status(_status_code(exc))
    return None


def is_transient_error(exc: BaseException) -> bool:
    """True for failures that another try may not repeat: network, throttling, 5xx."""
    if isinstance(exc, UserInputError):
        return False
    for verdict in (_aws_verdict, _mlflow_verdict, _requests_verdict):
        answer = verdict(exc)
        if answer is not None:
            return answer
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    return isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS


class _stop_when_sleep_exceeds(tenacity.stop.stop_base):
    """Stop before a sleep that would take the total backoff past the bound.

    Counting the planned sleeps (not the clock) keeps the bound exact and testable with a fake sleep.
    """

    def __init__(self, max_sleep_s: float) -> None:
        self.max_sleep_s = max_sleep_s

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return retry_state.idle_for + retry_state.upcoming_sleep > self.max_sleep_s


def _log_retry(what: str) -> Callable[[tenacity.RetryCallState], None]:
    def log(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        LOG.warning(
            "%s failed (attempt %d: %s: %s); retrying in %.1f s",
            what,
            state.attempt_number,
            type(exc).__name__,
            redact_text(str(exc)),
            state.upcoming_sleep,
        )

    return log


def retrying(
    policy: RetryPolicy = TRANSFER,
    *,
    what: str = "operation",
    is_transient: Callable[[BaseException], bool] = is_transient_error,
    sleep: Callable[[float], None] = time.sleep,
) -> tenacity.Retrying:
    """A tenacity `Retrying` for the policy; `sleep` is injectable so tests need not wait."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        wait=tenacity.wait_exponential_jitter(
            multiplier=policy.first_wait_s, max=policy.max_wait_s, jitter=policy.jitter_s
        ),
        stop=(
            tenacity.stop_after_attempt(policy.max_attempts)
            | _stop_when_sleep_exceeds(policy.max_sleep_s)
            | tenacity.stop_before_delay(policy.max_total_s)
        ),
        sleep=sleep,
        before_sleep=_log_retry(what),
        reraise=True,  # callers see the real error, not tenacity's RetryError
    )


def call_with_retry(
    fn: Callable[..., T],
    *args: Any,
    policy: RetryPolicy = TRANSFER,
    what: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> T:
    """Call `fn(*args, **kwargs)`, retrying transient failures under `policy`."""
    label = what or getattr(fn, "__qualname__", "operation")
    return retrying(policy, what=label, sleep=sleep)(fn, *args, **kwargs)


def retry_transient(policy: RetryPolicy = TRANSFER, what: str | None = None) -> Callable:
    """Decorator form of `call_with_retry`."""

    def decorate(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            return call_with_retry(fn, *args, policy=policy, what=what or fn.__qualname__, **kwargs)

        return wrapper

    return decorate


def aws_client_config(**overrides: Any) -> Any:
    """A botocore `Config` for every boto3 client: botocore's own "standard" retry mode.

    `overrides` go straight to `botocore.config.Config` (region_name, connect_timeout, ...).
    """
    from botocore.config import Config

    settings: dict[str, Any] = {
        "retries": {"mode": "standard", "max_attempts": AWS_MAX_ATTEMPTS},
        "connect_timeout": 10,
        "read_timeout": 60,
    }
    settings.update(overrides)
    return Config(**settings)


def aws_session(**kwargs: Any) -> Any:
    """A boto3 `Session` whose every client uses `aws_client_config`, the clients a library makes
    from it (the SageMaker SDK's) included; a client's own `config` is merged over it.

    `kwargs` go to `boto3.Session` (region_name, profile_name, ...).
    """
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    core.set_default_client_config(aws_client_config())
    return boto3.Session(botocore_session=core, **kwargs)


def apply_mlflow_http_policy() -> None:
    """Make MLflow's HTTP client fail fast so that `TRACKING` bounds the time; user settings win."""
    for key, value in MLFLOW_HTTP_ENV.items():
        os.environ.setdefault(key, value)
