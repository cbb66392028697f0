"""Strip the daemon's own secrets from any text before it is logged, stored, served or posted.

The daemon knows its secrets (the API key, the Slack token, the webhook URL, the signing
secret): they are registered once at start, and every text that may carry one (an error from
an API that echoes the request back, a log line) goes through :meth:`Redactor.redact`. It
replaces each secret's exact value and its obvious encodings, in any letter case: URL-encoded
(``+`` or ``%20`` for spaces), base64 (standard and URL-safe, padded or not, and at any
of the three byte alignments, so the key inside ``Basic base64(user:key)`` is found too) and
JSON-escaped. ``Bearer x`` and ``key=x`` are covered by the exact value.

:func:`mask_shapes` is the second line of defence for secrets nobody registered: anything
shaped like a bearer token, a ``key=``/``token=`` parameter, a Slack token or webhook, or a
phone number.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from pydantic import BaseModel, SecretStr

MASK = "[redacted]"
# shorter values are ignored: masking every "abc" in every text would destroy it, and no real
# API key, token or URL is that short
MIN_SECRET_LEN = 6
# a base64 fragment shorter than this could occur by chance in ordinary text
_MIN_B64_FRAGMENT = 8

_PHONE = re.compile(r"\+\d[\d\s().-]{6,18}\d")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+")
_BASIC = re.compile(r"(?i)\b(basic\s+)[A-Za-z0-9+/=]{8,}")
_PARAM = re.compile(
    r"(?i)\b((?:api[_-]?key|apikey|key|access[_-]?token|token|secret|password|signature)=)"
    r"[^\s&;,\"'<>]+"
)
_SLACK = re.compile(r"\bx(?:ox[abposr]|app)-[A-Za-z0-9-]+")
_WEBHOOK = re.compile(r"(?i)(hooks\.slack\.com/)[^\s\"'<>]+")


def mask_shapes(text: str) -> str:
    """Mask what looks like a credential or a phone number, known or not."""
    text = _BEARER.sub(r"\1" + MASK, text)
    text = _BASIC.sub(r"\1" + MASK, text)
    text = _PARAM.sub(r"\1" + MASK, text)
    text = _SLACK.sub(MASK, text)
    text = _WEBHOOK.sub(r"\1" + MASK, text)
    return _PHONE.sub("[phone]", text)


def _b64_forms(raw: bytes) -> set[str]:
    """The base64 text of ``raw`` wherever it sits in a longer value: for each of the three
    byte alignments, the characters that depend on ``raw`` alone."""
    out: set[str] = set()
    for shift in range(3):
        enc = base64.b64encode(b"\0" * shift + raw).decode()
        # leading characters mix in the prefix, trailing ones the (unknown) following bytes
        start = (shift * 8 + 5) // 6 if shift else 0
        end = ((shift + len(raw)) * 8) // 6
        frag = enc[start:end]
        if len(frag) >= _MIN_B64_FRAGMENT:
            out.add(frag)
            out.add(frag.replace("+", "-").replace("/", "_"))
    whole = base64.b64encode(raw).decode()
    out.update({whole, whole.rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("=")})
    return out


def _url_forms(value: str) -> set[str]:
    return {quote(value, safe=""), quote(value), quote_plus(value)}


def forms(value: str) -> set[str]:
    """Every spelling of ``value`` that is masked."""
    out = {value} | _url_forms(value) | _b64_forms(value.encode())
    out.add(json.dumps(value)[1:-1])
    out.add(json.dumps(value, ensure_ascii=False)[1:-1])
    return {f for f in out if len(f) >= min(MIN_SECRET_LEN, len(value))}


class Redactor:
    """Knows secret values and removes them (and their encodings) from text. Thread-safe;
    registering is rare (at start), redacting is one compiled regex search."""

    def __init__(self, secrets: Iterable[str | SecretStr | None] = ()) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        self.register(*secrets)

    def register(self, *secrets: str | SecretStr | None) -> None:
        """Add secret values; ``None``, empty and too-short values are ignored."""
        with self._lock:
            added = False
            for s in secrets:
                value = s.get_secret_value() if isinstance(s, SecretStr) else s
                if value is None:
                    continue
                value = value.strip()
                if len(value) >= MIN_SECRET_LEN and value not in self._values:
                    self._values.add(value)
                    added = True
            if added:
                spellings = set().union(*(forms(v) for v in self._values))
                # longest first, so a longer spelling is not left half-masked by a shorter one
                ordered = sorted(spellings, key=lambda f: (-len(f), f))
                # case-insensitive: lower-case %2f, a server that folds case; a long secret
                # (or base64 fragment) matches ordinary text by chance in no case
                self._pattern = re.compile("|".join(re.escape(f) for f in ordered), re.IGNORECASE)

    @property
    def empty(self) -> bool:
        return self._pattern is None

    def redact(self, text: str) -> str:
        """``text`` with every registered secret replaced by ``[redacted]``."""
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    def clean(self, text: str) -> str:
        """Registered secrets, then the shapes of unknown ones (see :func:`mask_shapes`)."""
        return mask_shapes(self.redact(text))

    __call__ = redact


# The process-wide redactor: the daemon registers its secrets here once at start; the log
# formatters and ApiError use it.
REDACTOR = Redactor()


def register_secrets(*secrets: str | SecretStr | None) -> None:
    """Register secrets with the process-wide redactor (call once at start)."""
    REDACTOR.register(*secrets)


def secrets_in(value: object, _depth: int = 0) -> list[SecretStr]:
    """Every ``SecretStr`` in a settings tree (models, lists, dicts), so a secret added to the
    settings later is masked without anyone remembering to register it:
    ``register_secrets(*secrets_in(settings))``."""
    if _depth > 20:
        return []
    if isinstance(value, SecretStr):
        return [value]
    if isinstance(value, BaseModel):
        children: Iterable[object] = (getattr(value, k) for k in type(value).model_fields)
    elif isinstance(value, dict):
        children = value.values()
    elif isinstance(value, list | tuple | set | frozenset):
        children = value
    else:
        return []
    return [s for child in children for s in secrets_in(child, _depth + 1)]


def redact(text: str) -> str:
    """``text`` with every secret registered process-wide masked, then unknown shapes."""
    return REDACTOR.clean(text)
