"""Run the lms-bridge CLI, SIGKILLing itself at a chosen database moment (for the crash proofs).

``PROOF_KILL`` picks the moment, counted from the start of this process:

- ``commit:N:before``: the N-th COMMIT is about to run (its rows are written, not committed);
- ``commit:N:after``: the N-th COMMIT just returned (durable; the code after it has not run);
- ``write:N``: the N-th INSERT or UPDATE of the outbox is about to run (mid-transaction).

``PROOF_COUNT=FILE`` writes ``{"commits": .., "writes": ..}`` at exit (how many moments a run has).
The kill is a real SIGKILL of this process: no cleanup, no ``finally``, no flush of anything.
"""

from __future__ import annotations

import atexit
import json
import os
import signal

from sqlalchemy.engine import default

_counts = {"commits": 0, "writes": 0}
_spec = os.environ.get("PROOF_KILL", "")
_kind, _number, _moment = (_spec.split(":") + ["", "", ""])[:3] if _spec else ("", "0", "")
_target = int(_number or 0)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


_commit = default.DefaultDialect.do_commit


def _do_commit(self, dbapi_connection):  # type: ignore[no-untyped-def]
    _counts["commits"] += 1
    hit = _kind == "commit" and _counts["commits"] == _target
    if hit and _moment == "before":
        _die()
    _commit(self, dbapi_connection)
    if hit and _moment == "after":
        _die()


def _writes_outbox(statement: str) -> bool:
    head = statement.lstrip()[:80].upper()
    return head.startswith(("INSERT INTO OUTBOX", "UPDATE OUTBOX"))


def _wrap(original):  # type: ignore[no-untyped-def]
    def execute(self, cursor, statement, *args, **kwargs):  # type: ignore[no-untyped-def]
        if _writes_outbox(statement):
            _counts["writes"] += 1
            if _kind == "write" and _counts["writes"] == _target:
                _die()
        return original(self, cursor, statement, *args, **kwargs)

    return execute


default.DefaultDialect.do_commit = _do_commit
default.DefaultDialect.do_execute = _wrap(default.DefaultDialect.do_execute)
default.DefaultDialect.do_executemany = _wrap(default.DefaultDialect.do_executemany)
default.DefaultDialect.do_execute_no_params = _wrap(default.DefaultDialect.do_execute_no_params)

if os.environ.get("PROOF_COUNT"):
    atexit.register(lambda: open(os.environ["PROOF_COUNT"], "w").write(json.dumps(_counts)))

if __name__ == "__main__":
    from lms_bridge.cli import main

    main()
