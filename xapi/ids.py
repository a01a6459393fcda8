"""Deterministic statement ids.

Guard: editing :func:`statement_id` or a caller's natural key changes the id of
every statement already in the LRS; a rerun would then post duplicates. The
namespace is fixed per deployment (``uuid5(NAMESPACE_URL, base_iri)`` or a
configured UUID) and must never change once statements are posted.
"""

from __future__ import annotations

import uuid


def namespace_for(base_iri: str, configured: uuid.UUID | None = None) -> uuid.UUID:
    """Return the deployment's statement-id namespace."""
    return configured or uuid.uuid5(uuid.NAMESPACE_URL, base_iri.rstrip("/"))


def statement_id(namespace: uuid.UUID, natural_key: str) -> str:
    """Return ``uuid5(namespace, natural_key)`` as a lowercase string.

    Args:
        namespace: the deployment's namespace (:func:`namespace_for`).
        natural_key: ``source|site|kind|native ids...`` (docs/xapi.md).
    """
    return str(uuid.uuid5(namespace, natural_key))
