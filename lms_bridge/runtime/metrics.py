"""Prometheus metrics of the state store, in the text exposition format (version 0.0.4).

Read on each scrape from the store (runs and outbox), so they say the same thing
whichever process did the work: ``serve``, a cron ``sync`` or an operator's
``outbox flush``. ``serve`` adds its own job gauges and counters.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.store.models import OutboxRow, utcnow
from lms_bridge.store.runs import last_successes

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Metric:
    """One metric family: a name, its type and help, and samples (labels, value).

    Attributes:
        name: the metric name (counters end in ``_total``).
        kind: ``gauge`` or ``counter``.
        help: one line saying what it measures.
        samples: (labels, value) pairs.
    """

    name: str
    kind: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> Metric:
        """Add a sample; return self (to chain)."""
        self.samples.append((labels, value))
        return self


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if value != int(value) else str(int(value))


def render(metrics: Iterable[Metric]) -> str:
    """The text exposition of ``metrics`` (``# HELP``, ``# TYPE``, then one line per sample)."""
    lines: list[str] = []
    for metric in metrics:
        lines.append(f"# HELP {metric.name} {metric.help.replace(chr(92), chr(92) * 2).replace(chr(10), ' ')}")
        lines.append(f"# TYPE {metric.name} {metric.kind}")
        for labels, value in metric.samples:
            text = ",".join(f'{key}="{_escape(str(val))}"' for key, val in sorted(labels.items()))
            lines.append(f"{metric.name}{{{text}}} {_number(value)}" if text else f"{metric.name} {_number(value)}")
    return "\n".join(lines) + "\n"


def store_metrics(engine: Engine) -> list[Metric]:
    """Metrics read from the state store: last successes, outbox depth, dead letters, statements sent."""
    success = Metric(
        "lms_bridge_last_success_timestamp_seconds",
        "gauge",
        "Unix time a run of this command last finished ok, per site and stream.",
    )
    for (command, site, stream), when in sorted(last_successes(engine).items()):
        success.add(when.timestamp(), command=command, site=site, stream=stream)
    counts = store.outbox_counts(engine)
    with Session(engine) as session:
        by_status = dict(session.execute(select(OutboxRow.status, func.count()).group_by(OutboxRow.status)).all())
    depth = Metric("lms_bridge_outbox_statements", "gauge", "Outbox rows by status (pending is the queue depth).")
    for status in sorted({"pending", "sent", "dead", *by_status}):
        depth.add(by_status.get(status, 0), status=status)
    age = (utcnow() - counts.oldest_pending_at).total_seconds() if counts.oldest_pending_at else 0.0
    return [
        Metric("lms_bridge_up", "gauge", "1 while lms-bridge can read its state store.").add(1),
        success,
        depth,
        Metric(
            "lms_bridge_outbox_dead_letters",
            "gauge",
            "Statements the LRS refused (see lms-bridge outbox list --status dead).",
        ).add(counts.dead),
        Metric(
            "lms_bridge_outbox_oldest_pending_age_seconds",
            "gauge",
            "Age of the oldest pending statement (0 when none is pending).",
        ).add(max(0.0, age)),
        Metric(
            "lms_bridge_statements_sent_total", "counter", "Statements the LRS accepted (outbox rows marked sent)."
        ).add(counts.sent),
    ]


def render_store(engine: Engine, extra: Sequence[Metric] = ()) -> str:
    """The store's metrics and ``extra`` ones, rendered."""
    return render([*store_metrics(engine), *extra])
