"""The retry policy: transient faults are retried within bounds, permanent ones fail at once."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import boto3
import botocore.exceptions
import pytest
import requests

from yolo_core.errors import UserInputError
from yolo_core.retry import (
    RetryPolicy,
    aws_client_config,
    call_with_retry,
    is_transient_error,
    retry_transient,
)

POLICY = RetryPolicy(max_attempts=5, first_wait_s=0.5, max_wait_s=4.0, jitter_s=0.5, max_sleep_s=30.0)


class Flaky:
    """Fails with the given errors in order, then returns "ok"; counts the calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


@pytest.fixture
def sleeps() -> list[float]:
    return []


def run(fn: Flaky, sleeps: list[float], policy: RetryPolicy = POLICY) -> str:
    return call_with_retry(fn, policy=policy, what="test op", sleep=sleeps.append)


def test_transient_faults_are_retried_with_growing_jittered_backoff(sleeps: list[float]) -> None:
    fn = Flaky(ConnectionResetError("reset"), TimeoutError("slow"), ConnectionRefusedError("down"))
    assert run(fn, sleeps) == "ok"
    assert fn.calls == 4
    assert len(sleeps) == 3
    # exponential: 0.5, 1, 2 plus up to 0.5 s of jitter each
    for n, slept in enumerate(sleeps):
        base = 0.5 * 2**n
        assert base <= slept <= base + 0.5


def test_permanent_faults_are_not_retried(sleeps: list[float]) -> None:
    for error in (PermissionError("denied"), FileNotFoundError("gone"), UserInputError("bad"), KeyError("x")):
        fn = Flaky(error)
        with pytest.raises(type(error)):
            run(fn, sleeps)
        assert fn.calls == 1
    assert sleeps == []


def test_attempts_are_bounded_and_the_real_error_is_raised(sleeps: list[float]) -> None:
    fn = Flaky(*[ConnectionResetError(f"reset {i}") for i in range(20)])
    with pytest.raises(ConnectionResetError, match="reset 4"):
        run(fn, sleeps)
    assert fn.calls == POLICY.max_attempts
    assert sum(sleeps) <= POLICY.max_sleep_s


def test_total_sleep_is_bounded_before_attempts_run_out(sleeps: list[float]) -> None:
    policy = RetryPolicy(max_attempts=100, first_wait_s=1.0, max_wait_s=8.0, jitter_s=0.0, max_sleep_s=20.0)
    fn = Flaky(*[TimeoutError("slow")] * 100)
    with pytest.raises(TimeoutError):
        run(fn, sleeps, policy)
    # 1 + 2 + 4 + 8 = 15; the next 8 s sleep would pass 20 s, so it stops there
    assert sleeps == [1.0, 2.0, 4.0, 8.0]
    assert fn.calls == 5


def test_decorator_uses_the_same_policy() -> None:
    calls = []

    @retry_transient(RetryPolicy(max_attempts=3, first_wait_s=0.001, max_wait_s=0.001, jitter_s=0.0))
    def flaky() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("reset")
        return len(calls)

    assert flaky() == 3


def _client_error(code: str, status: int) -> botocore.exceptions.ClientError:
    response = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return botocore.exceptions.ClientError(response, "GetObject")


def test_classification_of_aws_and_http_errors() -> None:
    assert is_transient_error(_client_error("SlowDown", 503))
    assert is_transient_error(_client_error("InternalError", 500))
    assert is_transient_error(_client_error("Whatever", 502))
    assert is_transient_error(botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"))
    assert not is_transient_error(_client_error("NoSuchKey", 404))
    assert not is_transient_error(_client_error("AccessDenied", 403))
    assert is_transient_error(requests.exceptions.ConnectionError("refused"))
    assert not is_transient_error(ValueError("bad"))


class _FlakyHandler(http.server.BaseHTTPRequestHandler):
    """Answers 503 to the first `failures` requests, then a valid (empty) S3 ListBuckets."""

    failures = 2
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        type(self).seen.append(self.path)
        if len(self.seen) <= self.failures:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b'<?xml version="1.0"?><ListAllMyBucketsResult><Buckets></Buckets></ListAllMyBucketsResult>'
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky_server() -> Iterator[str]:
    _FlakyHandler.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FlakyHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_requests_against_a_real_server_that_answers_503_twice(
    flaky_server: str, sleeps: list[float]
) -> None:
    def get() -> str:
        response = requests.get(flaky_server + "/thing", timeout=5)
        response.raise_for_status()
        return response.text

    assert "ListAllMyBucketsResult" in call_with_retry(get, policy=POLICY, sleep=sleeps.append)
    assert len(_FlakyHandler.seen) == 3
    assert len(sleeps) == 2


def test_aws_clients_retry_through_botocore_standard_mode(flaky_server: str) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=flaky_server,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=aws_client_config(),
    )
    assert s3.list_buckets()["Buckets"] == []
    assert len(_FlakyHandler.seen) == 3
