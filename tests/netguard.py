"""A network guard: any non-loopback connection or DNS lookup is refused and recorded.

Libraries often swallow connection errors (Ultralytics' online checks do), so a refusal alone
would not fail a test: the guard also records each attempt, and the test fixture fails the test
if anything was recorded. Subprocesses get the same guard through `sitecustomize` (see
`guarded_env`), and report their attempts to a file.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

REPORT_ENV = "NETGUARD_REPORT"
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", ""}
_attempts: list[str] = []
_installed = False
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo
_real_gethostbyname = socket.gethostbyname


class NetworkBlocked(OSError):
    """Raised in place of a non-loopback connection or lookup."""


def _is_loopback_host(host: object) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode()
    host = str(host).strip("[]")
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _record(what: str) -> None:
    _attempts.append(what)
    report = os.environ.get(REPORT_ENV)
    if report:
        with open(report, "a") as fh:
            fh.write(f"pid {os.getpid()}: {what}\n")


def _check_address(sock: socket.socket, address: object) -> None:
    if sock.family == socket.AF_UNIX:
        return
    host = address[0] if isinstance(address, tuple) else address
    if not _is_loopback_host(host):
        _record(f"connect to {address!r}")
        raise NetworkBlocked(f"network guard: connection to {address!r} refused")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _check_address(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _check_address(self, address)
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):  # noqa: ANN001 - socket's own signature
    if not _is_loopback_host(host):
        _record(f"DNS lookup of {host!r}")
        raise socket.gaierror(socket.EAI_NONAME, f"network guard: lookup of {host!r} refused")
    return _real_getaddrinfo(host, *args, **kwargs)


def _guarded_gethostbyname(host):  # noqa: ANN001
    if not _is_loopback_host(host):
        _record(f"DNS lookup of {host!r}")
        raise socket.gaierror(socket.EAI_NONAME, f"network guard: lookup of {host!r} refused")
    return _real_gethostbyname(host)


def install() -> None:
    global _installed
    if _installed:
        return
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex
    socket.getaddrinfo = _guarded_getaddrinfo
    socket.gethostbyname = _guarded_gethostbyname
    _installed = True


def attempts() -> list[str]:
    return list(_attempts)


def clear() -> None:
    _attempts.clear()


def guarded_env(report_file: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a subprocess that installs the guard at start-up via sitecustomize."""
    env = dict(os.environ if env is None else env)
    site_dir = str(Path(__file__).parent / "netguard_site")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (site_dir, env.get("PYTHONPATH", "")) if p)
    env[REPORT_ENV] = str(report_file)
    return env
