"""Credentials out of URIs before they are written down (MLflow params, logs, model.json).

A tracking URI may carry a secret (`https://user:token@host/`, `...?token=...`). The real URI is
still what a client connects with; only its records go through `redact_uri`, so a model artifact
or an MLflow run never hands the credential to whoever may read it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# scheme://userinfo@ : greedy up to the last '@' of the authority (an unescaped '@' in a password)
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")
_URI_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_QUERY_PAIR = re.compile(r"([?&;])([^=&;#]*)=([^&;#]*)")
_SECRET_WORDS = ("token", "password", "passwd", "pwd", "secret", "apikey", "api_key", "api-key")
_SECRET_WORDS += ("access_key", "accesskey", "signature", "credential", "auth", "session")
_SECRET_NAMES = {"key", "sig", "pass", "code"}


def _is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return lowered in _SECRET_NAMES or any(word in lowered for word in _SECRET_WORDS)


def redact_uri(text: str) -> str:
    """`text` with the user-info of a URI and secret-looking query values replaced by `***`.

    Anything that is not a URI (no `scheme:`) comes back unchanged.
    """
    if not isinstance(text, str) or not _SCHEME.match(text):
        return text
    text = _USERINFO.sub(rf"\g<1>{MASK}@", text, count=1)

    def mask(match: re.Match[str]) -> str:
        sep, name, value = match.groups()
        return f"{sep}{name}={MASK}" if value and _is_secret_name(name) else match.group(0)

    head, hashmark, fragment = text.partition("#")
    if "?" in head:
        path, _, query = head.partition("?")
        head = f"{path}{_QUERY_PAIR.sub(mask, '?' + query)}"
    return head + hashmark + fragment


def redact_text(text: str) -> str:
    """Free text (a log line, an exception message) with every `scheme://...` in it redacted."""
    return _URI_IN_TEXT.sub(lambda match: redact_uri(match.group(0)), str(text))


def redact_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a parameter mapping with every string value passed through `redact_uri`."""
    return {key: redact_uri(value) if isinstance(value, str) else value for key, value in values.items()}
