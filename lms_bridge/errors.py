"""The project's exceptions: one root, categories named by what the caller does.

This module is a leaf: it imports nothing from the project, so connectors and
``xapi`` can raise these without depending on the service core.
"""

from __future__ import annotations


class LmsBridgeError(Exception):
    """Root of every error lms-bridge raises on purpose.

    The message is one sentence for an operator. It never holds a secret: callers
    build it from names (site, stream, file, line), never from tokens or bodies.
    """


class ConfigError(LmsBridgeError):
    """Raised when the configuration or a secret is missing or unsafe: refuse to start."""


class RuleError(ConfigError):
    """Raised when a file in ``mappings/`` is invalid (names the file, table and key)."""


class EmptyAnswerError(LmsBridgeError):
    """Raised when a question can only be answered with nothing: exit 2, nothing created.

    An unknown unit or NIP, a year without data, no configuration: the message says why and
    where it looked.
    """


class InputError(LmsBridgeError):
    """Raised when an input file (export, roster, activity file) cannot be read; nothing is imported."""


class DateOrderError(InputError):
    """Raised when a chat export's dates read both as day/month and as month/day and nothing tells which.

    The message ends with the remedy of ``lms-bridge import`` (``--day-first`` or ``--month-first``);
    ``what`` is the sentence before it, so a caller that cannot take flags (an inbox) names its own remedy.
    """

    def __init__(self, what: str) -> None:
        super().__init__(f"{what}; pass --day-first or --month-first")
        self.what = what


class RetryableError(LmsBridgeError):
    """Raised for a transient failure (timeout, 5xx, reset): back off, keep the cursor."""


class LRSServerError(RetryableError):
    """Raised when the LRS answered 5xx: retried like any transient failure, but the LRS is up.

    The outbox bisects a batch that keeps getting one (a statement the LRS cannot store), so it
    keeps the LRS's answer: ``status`` and ``detail`` (its message, shortened).
    """

    def __init__(self, message: str, *, status: int, detail: str) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class FatalSourceError(LmsBridgeError):
    """Raised when a source refuses us (bad token, missing function): stop this site, record the run."""


class SkippableRecordError(LmsBridgeError):
    """Raised for one bad record in an otherwise good source: count it, log it, go on."""


class StatementValidationError(LmsBridgeError):
    """Raised when a built statement is not valid xAPI; it never enters the outbox."""


class LRSError(LmsBridgeError):
    """Raised when the LRS answers something we cannot retry and that is no single statement's fault."""


class LRSAuthError(LRSError, ConfigError):
    """Raised on 401/403 from the LRS: the configured credentials are wrong."""


class LRSConflictError(LRSError):
    """Raised on 409: a different statement with the same id is already stored (dead-letter it)."""


class LRSRejectedError(LRSError):
    """Raised on 400/422 for a batch: some statement in it was refused (bisect, dead-letter it)."""
