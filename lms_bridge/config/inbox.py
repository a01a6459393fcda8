"""The ``[[inboxes]]`` entries of the configuration: folders of community exports (run by ``ingest.inbox``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: The formats an inbox may force (the values of ``import --source`` without ``csv``, which needs a mapping).
#: The configuration may not import the registry (connectors.formats.FORMATS), so it keeps the names;
#: tests/connectors/test_formats_contract.py checks they match it.
INBOX_FORMATS = ("whatsapp", "telegram", "zoom", "meet", "teams", "jsonl")
#: The formats whose files belong to one Community of Practice (``community`` is required).
CHAT_FORMATS = ("whatsapp", "telegram")
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class InboxSettings(BaseModel):
    """One ``[[inboxes]]`` entry: a folder of community exports.

    Attributes:
        path: the folder (relative to the config file).
        community: the CoP id its chat exports belong to (required for WhatsApp and Telegram files).
        source: force one format (default: told from each file).
        site: the source id imports are recorded under (default as for ``lms-bridge import``).
        keep_raw: keep imported files in ``done/`` instead of deleting them.
        retention_days: days files stay in ``done/`` and ``failed/``.
        settle_seconds: a file is imported once it was last modified this long ago and two passes in a
            row saw the same size, modification time and inode; ``0`` imports a file
            at first sight (only for a folder filled by renames, never by a slow upload).
        whatsapp_date_order: how to read a WhatsApp export whose dates read both as day/month and
            as month/day when the order of its messages does not tell which: ``refuse`` (the file
            goes to ``failed/`` saying so), ``day-first`` or ``month-first`` (``import --day-first``
            / ``--month-first``). A file whose dates show their order is read in that order.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Path
    community: str | None = None
    source: str | None = None
    site: str | None = None
    keep_raw: bool = False
    retention_days: float = Field(default=30, ge=0)
    settle_seconds: float = Field(default=10, ge=0, le=86400)
    whatsapp_date_order: Literal["refuse", "day-first", "month-first"] = "refuse"

    @field_validator("source")
    @classmethod
    def _format(cls, value: str | None) -> str | None:
        if value is not None and value not in INBOX_FORMATS:
            raise ValueError(f"must be one of {', '.join(INBOX_FORMATS)}")
        return value

    @field_validator("community", "site")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        if value is not None and not _ID.fullmatch(value):
            raise ValueError("is not an id (lowercase letters, digits, '-', '_' and '.')")
        return value

    @model_validator(mode="after")
    def _chat_needs_community(self) -> InboxSettings:
        if self.source in CHAT_FORMATS and self.community is None:
            raise ValueError(f'a {self.source} inbox needs community = "<CoP id>"')
        return self
