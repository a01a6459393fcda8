"""Importing activity files (``lms-bridge import``): resumable, idempotent, all-or-nothing per file."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from lms_bridge import store
from lms_bridge.config import Settings
from lms_bridge.errors import InputError
from lms_bridge.pipeline import IngestReport, ingest

#: Source id of imports that name no configured source.
DEFAULT_IMPORT_SOURCE = "import"

log = logging.getLogger(__name__)


def import_activity_file(
    engine: Engine,
    settings: Settings,
    path: Path,
    *,
    source_id: str = DEFAULT_IMPORT_SOURCE,
    dry_run: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Import a JSON Lines activity file into the outbox.

    The cursor is keyed by the file's SHA-256, so re-importing the same file adds
    nothing, and an import killed half-way resumes after the last committed line.

    Raises:
        InputError: when the file is malformed (nothing is imported from it).
    """
    from connectors import jsonl

    if not path.is_file():
        raise InputError(f"activity file {path} does not exist")
    stream = f"file:{jsonl.file_digest(path)}"
    after = store.get_cursor(engine, source_id, stream) or 0
    run_id = None if dry_run else store.start_run(engine, "import", source_id)
    try:
        report = ingest(
            engine, settings, site_id=source_id, stream=stream,
            items=jsonl.read_activities(path, after_line=int(after)),
            batch_size=settings.lrs.batch_size, dry_run=dry_run, on_progress=on_progress,
        )
    except Exception as exc:
        if run_id is not None:
            store.finish_run(engine, run_id, status="failed", counts={}, error=str(exc))
        raise
    if run_id is not None:
        store.finish_run(engine, run_id, status="ok", counts={stream: report.as_dict()})
    log.info("import %s: %s", path.name, report.as_dict(), extra={"source": source_id, "file": path.name,
                                                                  "counts": report.as_dict()})
    return report
