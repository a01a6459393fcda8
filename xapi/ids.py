"""Deterministic statement ids.

Guard: editing :func:`statement_id` or a caller's natural key changes the id of
every statement already in the LRS; a rerun would then post duplicates. The
namespace is fixed per deployment (``uuid5(NAMESPACE_URL, base_iri)`` or a
configured UUID) and must never change once statements are posted.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable


def namespace_for(base_iri: str, configured: uuid.UUID | None = None) -> uuid.UUID:
    """Return the deployment's statement-id namespace."""
    return configured or uuid.uuid5(uuid.NAMESPACE_URL, base_iri.rstrip("/"))


def statement_id(namespace: uuid.UUID, natural_key: str) -> str:
    """Return ``uuid5(namespace, natural_key)`` as a lowercase string.

    Args:
        namespace: the deployment's namespace (:func:`namespace_for`).
        natural_key: ``source|site|kind|native ids...`` (docs/xapi.md).
    """
    # The recipe of ``uuid.uuid5`` (RFC 4122: SHA-1 of namespace and name, version and variant bits
    # set) written out, because building a ``UUID`` object to print it cost more than the hash
    # (BENCHMARKS.md, client CPU per call); tests/xapi/test_ids.py checks it against ``uuid.uuid5``.
    digest = bytearray(hashlib.sha1(namespace.bytes + natural_key.encode("utf-8")).digest()[:16])  # noqa: S324
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def prefixed_statement_ids(namespace: uuid.UUID, prefix: str, names: Iterable[str]) -> list[str]:
    """``statement_id(namespace, prefix + name)`` for each name, in order.

    The same ids, cheaper for many names: the SHA-1 state after namespace and prefix is computed
    once and copied (``jp compute`` derives a void id per evidence id; tests/xapi/test_ids.py
    checks it against :func:`statement_id`).
    """
    start = hashlib.sha1(namespace.bytes + prefix.encode("utf-8"))  # noqa: S324
    found: list[str] = []
    for name in names:
        hashed = start.copy()
        hashed.update(name.encode("utf-8"))
        digest = bytearray(hashed.digest()[:16])
        digest[6] = (digest[6] & 0x0F) | 0x50
        digest[8] = (digest[8] & 0x3F) | 0x80
        text = digest.hex()
        found.append(f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}")
    return found
