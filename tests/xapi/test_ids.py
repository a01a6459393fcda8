"""The statement-id recipe written out in ``xapi.ids`` must stay ``uuid.uuid5`` exactly."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from xapi.ids import namespace_for, prefixed_statement_ids, statement_id


@given(key=st.text(max_size=200), base=st.sampled_from(["https://lms.example.go.id", "https://x/y/"]))
def test_statement_id_is_uuid5_of_the_natural_key(key: str, base: str) -> None:
    namespace = namespace_for(base)
    assert statement_id(namespace, key) == str(uuid.uuid5(namespace, key))


def test_a_configured_namespace_gives_the_uuid5_under_it() -> None:
    namespace = uuid.UUID("8f3a0b7e-2c4d-4e5f-9a1b-0c2d3e4f5a6b")
    assert statement_id(namespace, "moodle|lms|course_completed|7|42") == str(
        uuid.uuid5(namespace, "moodle|lms|course_completed|7|42")
    )


@given(
    prefix=st.sampled_from(["void|", "", "jp|é|"]),
    names=st.lists(st.text(max_size=80), max_size=20),
    base=st.sampled_from(["https://lms.example.go.id", "https://x/y/"]),
)
def test_prefixed_ids_are_the_uuid5_of_prefix_and_name(prefix: str, names: list[str], base: str) -> None:
    namespace = namespace_for(base)
    expected = [str(uuid.uuid5(namespace, prefix + name)) for name in names]
    assert prefixed_statement_ids(namespace, prefix, names) == expected
