"""Repairing statements an older lms-bridge queued: voids that carry ``context.platform``.

Before issue 24 the void builders put ``context.platform = "lms-bridge"`` on voiding
statements, whose object is a StatementRef. xAPI forbids ``platform`` (and ``revision``)
in the context of a statement whose object is not an Activity (1.0.3 Data 2.4.6); Ralph
stored such voids, ADL's LRS answers 400 and the row would become a dead letter. The
outbox flush passes every row through :func:`repair_body` before posting it, so rows
queued by an older version (or by an older worker during a rolling upgrade) go out in
the form the builders write now: the same id, the forbidden keys removed, an emptied
``context`` dropped, the same canonical JSON (sorted keys, no spaces).
"""

from __future__ import annotations

import json
from typing import Any

#: Context properties xAPI allows only when the statement's object is an Activity.
ACTIVITY_ONLY_CONTEXT = ("platform", "revision")


def repair_body(body: str) -> str | None:
    """The body with ``context.platform``/``revision`` removed when its object is not an Activity.

    Returns None when nothing needs repair (the common case: the body is posted as is,
    byte for byte). The repaired text is canonical JSON, like every body the builders write.
    """
    if '"platform"' not in body and '"revision"' not in body:
        return None  # cheap: most bodies are activities, which keep their platform
    try:
        data: Any = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    obj = data.get("object")
    context = data.get("context")
    if not isinstance(obj, dict) or obj.get("objectType", "Activity") == "Activity" or not isinstance(context, dict):
        return None
    if not any(key in context for key in ACTIVITY_ONLY_CONTEXT):
        return None
    for key in ACTIVITY_ONLY_CONTEXT:
        context.pop(key, None)
    if not context:
        del data["context"]
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
