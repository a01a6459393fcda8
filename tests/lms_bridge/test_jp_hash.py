"""A credit's evidence hash is ``sha256(json.dumps([jp, rule version, code, [evidence ids]]))``, byte for byte.

``Credit.evidence_hash`` writes that JSON text out (json's own string encoder, no ``json.dumps`` call);
every JP record already stored holds the hash of the ``json.dumps`` text, so a different byte would
void and re-post every record of a deployment on its next ``jp compute``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from lms_bridge.jp.engine import Credit, EvidenceItem
from lms_bridge.jp.rules import load_rules

RULES = load_rules()


def _item(statement_id: str, facts: dict[str, object]) -> EvidenceItem:
    moment = datetime(2026, 3, 4, 5, tzinfo=UTC)
    return EvidenceItem(
        statement_id, "196501012000011000", "moodle", "lms", "kind", moment, date(2026, 3, 4), None, "k", facts
    )


@given(
    ids=st.lists(st.text(max_size=40), min_size=1, max_size=8),
    jp=st.decimals(min_value=0, max_value=1000, places=2, allow_nan=False),
    version=st.integers(min_value=0, max_value=10**6),
    form=st.one_of(st.just(""), st.text(max_size=12)),
    index=st.integers(min_value=0, max_value=len(RULES.rules) - 1),
)
def test_the_written_out_text_hashes_as_json_dumps(
    ids: list[str], jp: Decimal, version: int, form: str, index: int
) -> None:
    rule = RULES.rules[index]
    rule = replace(rule, version=version, forms=frozenset({form}) if form else rule.forms)
    items = tuple(_item(sid, {"jp_form": form} if form else {}) for sid in ids)
    credit = Credit("196501012000011000", rule, "2026-03-04", "day", jp, jp, items)
    text = json.dumps([str(credit.jp), rule.version, credit.code, list(credit.evidence_ids)])
    assert credit.evidence_hash() == hashlib.sha256(text.encode()).hexdigest()


def test_a_known_hash_stays_the_same() -> None:
    rule = replace(RULES.rules[0], version=3)
    items = (_item("b-2", {}), _item("a-1", {}))
    credit = Credit("196501012000011000", rule, "2026-03-04", "day", Decimal("1.50"), Decimal("1.50"), items)
    text = f'["1.50", 3, {json.dumps(rule.code)}, ["a-1", "b-2"]]'
    assert credit.evidence_hash() == hashlib.sha256(text.encode()).hexdigest()
