"""Redaction in one place: secrets and secret URL parameters never reach a log.

A leaf module (imports nothing from the project), so connectors and ``xapi`` may
use it. Every secret the configuration reads is registered here; the log filter
installed by :func:`lms_bridge.runtime.logs.setup_logging` masks them in every record,
and :func:`sanitize_url` masks token-like query parameters before a URL is shown.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
#: Query parameters that carry credentials (Moodle puts ``wstoken`` in the URL).
SECRET_PARAMS = frozenset({"wstoken", "token", "access_token", "key", "password", "apikey", "api_key"})

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register_secret(value: str) -> None:
    """Mask ``value`` wherever it appears in logs from now on.

    Very short values are ignored: masking "1" everywhere would wreck every log line.
    """
    global _pattern
    if len(value) < 4:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    """Return ``text`` with every registered secret replaced by ``***``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def sanitize_url(url: str) -> str:
    """Return ``url`` with secret query parameters masked (and registered secrets redacted)."""
    parts = urlsplit(url)
    if parts.query:
        query = [(k, MASK if k.lower() in SECRET_PARAMS else v) for k, v in parse_qsl(parts.query, True)]
        parts = parts._replace(query=urlencode(query, safe="*"))
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", f":{MASK}@")
        parts = parts._replace(netloc=netloc)
    return redact(urlunsplit(parts))


class RedactingFilter(logging.Filter):
    """A logging filter that masks registered secrets in the formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102
        if _pattern is None:
            return True
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
