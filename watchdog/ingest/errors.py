"""Why a DialNexa request failed: the closed set of error kinds, ``ApiError``, and the
helpers that turn transport failures and API messages into short, redacted reasons."""

from __future__ import annotations

import unicodedata
from typing import Final

import httpx

from ..redact import redact

# Why a request or a listing failed: a closed set, safe to show and to use as a label.
ERROR_KINDS: Final = (
    "auth",  # 401 / 403: the key is wrong or may not read calls (permanent)
    "client_error",  # another 4xx: the request was rejected (permanent)
    "server_error",  # 5xx (or an unexpected status): retried, then given up
    "rate_limited",  # 429 after every retry
    "deferred",  # held until hold_until: a wait longer than max_sleep was not slept
    "timeout",  # no complete answer within the deadline
    "dns",  # the host name does not resolve
    "refused",  # nothing listens on the host and port
    "tls",  # the TLS handshake failed
    "network",  # any other connection failure (reset, protocol error)
    "too_large",  # the body is over max_response_bytes
    "invalid",  # a 200 whose body is not a List Calls page
    "page_cap",  # the listing stopped at max_pages
)


class ApiError(Exception):
    """A request or listing that failed for good.

    ``kind`` is one of :data:`ERROR_KINDS`; ``code`` the HTTP status (or None); ``reason`` is
    short, human, names the host, and is redacted (secrets and their shapes masked) even if it
    quotes the API; ``retry_at`` is when a ``deferred`` error lifts.
    """

    def __init__(
        self,
        reason: str,
        code: int | None = None,
        permanent: bool = False,
        *,
        kind: str | None = None,
        retry_at: float | None = None,
    ) -> None:
        reason = redact(reason)  # the process-wide secrets, whoever built the error
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.permanent = permanent
        self.kind = kind or _kind_of_status(code)
        self.retry_at = retry_at

    def __repr__(self) -> str:
        return f"ApiError(kind={self.kind!r}, code={self.code!r}, reason={self.reason!r})"


def _kind_of_status(code: int | None) -> str:
    if code in (401, 403):
        return "auth"
    if code == 429:
        return "rate_limited"
    if code is not None and 400 <= code < 500:
        return "client_error"
    return "server_error" if code is not None else "network"


class Stopped(Exception):
    """The daemon is shutting down; abandon the listing."""


class _Failed(Exception):
    """One request failed below HTTP (or its body broke a limit): the metric label and the
    error to retry or give up with."""

    def __init__(self, label: str, error: ApiError, retry: bool = True) -> None:
        super().__init__(error.reason)
        self.label = label
        self.error = error
        self.retry = retry


def _host_of(url: httpx.URL) -> str:
    """``host[:port]`` of the API, never its user info, path or query."""
    host = url.host or "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{url.port}" if url.port is not None else host


def _root_causes(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(out) < 10:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def _printable(text: str) -> str:
    """Control and format characters (newlines, bidi overrides, lone surrogates) become
    spaces; runs of whitespace become one."""
    cleaned = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") else ch for ch in text
    )
    return " ".join(cleaned.split())


def _auth_reason(code: int) -> str:
    if code == 403:
        return "403 Forbidden: this API key cannot read calls on this workspace"
    return "401 Unauthorized: DialNexa rejected the API key (check DIALNEXA_API_KEY)"
