"""The source-LRS connector without a server: mapping each verb and alias, actors, times, paging rules."""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from connectors.lrs_source import (
    KINDS,
    LRSSourceReader,
    LRSSourceSettings,
    Skip,
    StatementMapper,
    parse_duration,
    parse_time,
)
from lms_bridge.activity import Activity, Kind
from lms_bridge.config.settings import Settings
from lms_bridge.errors import ConfigError, FatalSourceError, LRSAuthError, LRSError, RetryableError
from lms_bridge.identity.resolver import actor_for
from lms_bridge.ingest.runner import source_settings, sync_sources
from xapi.statements import StatementSettings, build_statement
from xapi.vocabulary import load_vocabulary

BASE = "https://lms-bridge.id/xapi"
AUTHORITY = "https://siasn.bkn.go.id"
NIP = "198805172014032004"
VOCABULARY = load_vocabulary()

COMPLETED = "http://adlnet.gov/expapi/verbs/completed"
COMPLETED_HTTPS = "https://adlnet.gov/expapi/verbs/completed"
CREATE = "http://activitystrea.ms/create"
CREATE_AS1 = "http://activitystrea.ms/schema/1.0/create"
CREATED_DOD = "https://w3id.org/xapi/dod-isd/verbs/created"
POSTED = "https://w3id.org/xapi/acrossx/verbs/posted"
REPLIED = "http://id.tincanapi.com/verb/replied"
ATTENDED = "http://adlnet.gov/expapi/verbs/attended"
VOIDED = "http://adlnet.gov/expapi/verbs/voided"

COURSE = "https://w3id.org/xapi/cmi5/activitytype/course"
ADL_COURSE = "http://adlnet.gov/expapi/activities/course"
MODULE = "http://adlnet.gov/expapi/activities/module"
MEETING = "http://adlnet.gov/expapi/activities/meeting"
DISCUSSION = "http://id.tincanapi.com/activitytype/discussion"
REPLY = "http://id.tincanapi.com/activitytype/forum-reply"
MESSAGE = "http://id.tincanapi.com/activitytype/chat-message"
COACHING = "http://id.tincanapi.com/activitytype/tutor-session"
COMMUNITY = "http://id.tincanapi.com/activitytype/community-site"


def mapper(**kwargs: Any) -> StatementMapper:
    return StatementMapper("src", VOCABULARY, BASE, **kwargs)


def statement(
    verb: str = COMPLETED,
    object_type: str | None = COURSE,
    *,
    sid: str | None = None,
    actor: dict | None = None,
    name: dict | None = None,
    **extra: Any,
) -> dict[str, Any]:
    definition: dict[str, Any] = {}
    if object_type:
        definition["type"] = object_type
    if name:
        definition["name"] = name
    data: dict[str, Any] = {
        "id": sid or str(uuid.uuid4()),
        "actor": actor or {"objectType": "Agent", "account": {"homePage": AUTHORITY, "name": NIP}},
        "verb": {"id": verb, "display": {"en-US": "x"}},
        "object": {"objectType": "Activity", "id": "https://lms.other.go.id/things/42", "definition": definition},
        "timestamp": "2026-03-02T04:00:00Z",
        "stored": "2026-03-02T05:00:00.123456+00:00",
    }
    data.update(extra)
    return data


VERB_CASES = [
    (COMPLETED, COURSE, Kind.COURSE_COMPLETED),
    (COMPLETED_HTTPS, COURSE, Kind.COURSE_COMPLETED),
    (COMPLETED_HTTPS, ADL_COURSE, Kind.COURSE_COMPLETED),
    (COMPLETED, MODULE, Kind.MODULE_COMPLETED),
    (COMPLETED_HTTPS, MODULE, Kind.MODULE_COMPLETED),
    (ATTENDED, MEETING, Kind.MEETING_ATTENDED),
    (ATTENDED, COACHING, Kind.COACHING_ATTENDED),
    (CREATE, DISCUSSION, Kind.DISCUSSION_CREATED),
    (CREATE_AS1, DISCUSSION, Kind.DISCUSSION_CREATED),
    (CREATED_DOD, DISCUSSION, Kind.DISCUSSION_CREATED),
    (CREATE_AS1, REPLY, Kind.POST_CREATED),
    (POSTED, REPLY, Kind.POST_CREATED),
    (REPLIED, REPLY, Kind.REPLY_CREATED),
    (REPLIED, DISCUSSION, Kind.REPLY_CREATED),
    (POSTED, MESSAGE, Kind.MESSAGE_POSTED),
    (CREATE_AS1, MESSAGE, Kind.MESSAGE_POSTED),
    (REPLIED, MESSAGE, Kind.MESSAGE_REPLIED),
]


@pytest.mark.parametrize(("verb", "object_type", "kind"), VERB_CASES)
def test_each_verb_and_alias_maps_to_its_kind_and_builds_the_canonical_statement(verb, object_type, kind):
    foreign = statement(verb, object_type, sid="5f0c9a52-9a38-4c61-9d0e-0c7a5f0b6d11")
    activity = mapper().map(foreign)
    assert isinstance(activity, Activity) and activity.kind is kind
    assert activity.source == "lrs" and activity.site == "src"
    assert activity.natural_key == f"lrs|src|{kind.value}|5f0c9a52-9a38-4c61-9d0e-0c7a5f0b6d11"
    assert activity.object.url == "https://lms.other.go.id/things/42"
    settings = StatementSettings(namespace=uuid.uuid5(uuid.NAMESPACE_URL, BASE), base_iri=BASE, vocabulary=VOCABULARY)
    built = build_statement(
        settings, activity, actor_for(activity, authority=AUTHORITY, base_iri=BASE, site_url="http://lrs.src/xAPI")
    )
    canonical = VOCABULARY.kinds[kind.value]
    assert f'"id":"{canonical.verb.id}"' in built.body and canonical.object_type in built.body
    assert f'"name":"{NIP}"' in built.body


@pytest.mark.parametrize(
    ("verb", "object_type"),
    [
        ("http://adlnet.gov/expapi/verbs/experienced", COURSE),  # a verb lms-bridge does not count
        ("http://activitystrea.ms/schema/1.0/join", MEETING),  # an alias of a verb the vocabulary lacks
        (COMPLETED, MEETING),  # a known verb on the wrong object type
        (ATTENDED, COURSE),
        (COMPLETED, None),  # no activity type at all
        (COMPLETED, "http://example.org/activitytype/unknown"),
    ],
)
def test_unsupported_verb_or_object_type_is_skipped(verb, object_type):
    assert mapper().map(statement(verb, object_type)) is Skip.UNSUPPORTED


def test_object_that_is_not_an_activity_is_skipped():
    foreign = statement(COMPLETED, COURSE)
    foreign["object"] = {"objectType": "Agent", "mbox": "mailto:x@example.org"}
    assert mapper().map(foreign) is Skip.UNSUPPORTED


def test_own_statements_and_voiding_statements_are_skipped():
    own = statement(
        context={"extensions": {f"{BASE}/extensions/source": {"source": "moodle", "site": "x", "native_id": "1"}}}
    )
    assert mapper().map(own) is Skip.OWN
    other_base = statement(context={"extensions": {"https://other.id/xapi/extensions/source": {}}})
    assert isinstance(mapper().map(other_base), Activity)
    void = statement(VOIDED, None, object={"objectType": "StatementRef", "id": "aaaa"})
    void["object"] = {"objectType": "StatementRef", "id": "0b3d4c2e-1111-4a4a-8b8b-000000000001"}
    assert mapper().map(void) is Skip.VOIDING
    assert mapper().voided_target(void) == "0b3d4c2e-1111-4a4a-8b8b-000000000001"
    assert mapper().voided_target(statement()) is None


def test_nip_actor_of_an_identity_authority():
    spaced = {"objectType": "Agent", "account": {"homePage": AUTHORITY + "/", "name": "19880517 201403 2 004"}}
    activity = mapper().map(statement(actor=spaced))
    assert activity.extras["nip"] == NIP and activity.actor == f"{AUTHORITY}|{NIP}"


@pytest.mark.parametrize(
    ("account", "local_id"),
    [
        ({"homePage": AUTHORITY, "name": "123"}, f"{AUTHORITY}|123"),  # not a valid NIP: site-scoped
        ({"homePage": "https://lms.other.go.id", "name": NIP}, f"https://lms.other.go.id|{NIP}"),  # not an authority
        ({"homePage": "https://lms.other.go.id/", "name": "jdoe"}, "https://lms.other.go.id|jdoe"),
    ],
)
def test_other_accounts_are_site_scoped(account, local_id):
    activity = mapper().map(statement(actor={"objectType": "Agent", "account": account}))
    assert activity.actor == local_id and "nip" not in activity.extras


def test_identity_authorities_are_configurable():
    actor = {"account": {"homePage": "https://sso.kemenpan.go.id", "name": NIP}}
    assert mapper().map(statement(actor=actor)).extras == {"course_shortname": "https://lms.other.go.id/things/42"}
    custom = mapper(identity_authorities=("https://sso.kemenpan.go.id/",)).map(statement(actor=actor))
    assert custom.extras["nip"] == NIP


def test_mbox_is_hashed_never_kept():
    email = "Budi.Santoso@example.go.id"
    activity = mapper().map(statement(actor={"objectType": "Agent", "mbox": f"mailto:{email}", "name": "Budi"}))
    digest = hashlib.sha1(f"mailto:{email}".encode()).hexdigest()
    assert activity.actor == f"mbox_sha1sum:{digest}"
    assert email.lower() not in activity.to_json().lower() and "Budi" not in activity.to_json()
    same = mapper().map(statement(actor={"mbox_sha1sum": digest.upper()}))
    assert same.actor == activity.actor


def test_openid_long_accounts_and_missing_identifiers():
    assert mapper().map(statement(actor={"openid": "https://id.example.org/u/7"})).actor == (
        "openid:https://id.example.org/u/7"
    )
    long = mapper().map(statement(actor={"account": {"homePage": "https://lms.example.org/" + "x" * 150, "name": "7"}}))
    assert long.actor.startswith("sha1:") and len(long.actor) <= 128
    assert mapper().map(statement(actor={"objectType": "Group", "member": []})) is Skip.ACTOR
    assert mapper().map(statement(actor={"name": "Nobody"})) is Skip.ACTOR
    assert mapper().map(statement(actor={"account": {"homePage": "https://x.org", "name": ""}})) is Skip.ACTOR


def test_occurred_at_is_the_timestamp_else_stored():
    at = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
    assert mapper().map(statement()).occurred_at == at
    assert mapper().map(statement(timestamp="2026-03-02T11:00:00+07:00")).occurred_at == at
    stored = datetime(2026, 3, 2, 5, 0, 0, 123456, tzinfo=UTC)
    without = statement()
    del without["timestamp"]
    assert mapper().map(without).occurred_at == stored
    assert mapper().map(statement(timestamp="2026-03-02T04:00:00")).occurred_at == stored  # no zone: not trusted
    neither = statement(timestamp="yesterday")
    del neither["stored"]
    assert mapper().map(neither) is Skip.MALFORMED
    assert mapper().map({"verb": {}}) is Skip.MALFORMED


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT1H30M", 5400),
        ("PT90S", 90),
        ("P1DT2H", 93600),
        ("PT1.5H", 5400),
        ("PT0S", 0),
        ("PT45M", 2700),
        ("P1W", 604800),
        ("PT1,5M", 90),
        ("P1M", None),
        ("P1Y", None),
        ("PT", None),
        ("P", None),
        ("", None),
        ("1H", None),
        ("PT1H30", None),
        (None, None),
        (90, None),
    ],
)
def test_durations(text, seconds):
    parsed = parse_duration(text)
    assert (None if parsed is None else parsed.total_seconds()) == seconds


def test_times():
    assert parse_time("2026-03-02T04:00:00.1234567Z") == datetime(2026, 3, 2, 4, 0, 0, 123456, tzinfo=UTC)
    assert parse_time("2026-03-02") is None and parse_time("soon") is None and parse_time(None) is None


def test_duration_course_facts_success_and_titles():
    attended = mapper().map(statement(ATTENDED, MEETING, result={"duration": "PT1H30M"}))
    assert attended.duration == timedelta(minutes=90) and "course_shortname" not in attended.extras
    named = mapper().map(
        statement(
            COMPLETED,
            COURSE,
            name={"id-ID": "Pelatihan", "en-US": "PT-EVAL"},
            result={"success": True, "completion": True},
        )
    )
    assert named.extras == {"nip": NIP, "course_shortname": "PT-EVAL", "success": True}
    assert named.object.title == "PT-EVAL"
    indonesian = mapper().map(statement(COMPLETED, COURSE, name={"id-ID": "Pelatihan  Dasar"}))
    assert indonesian.extras["course_shortname"] == "Pelatihan Dasar"
    parent = {"id": "https://lms.other.go.id/course/9", "definition": {"type": COURSE, "name": {"en": "ORIENT"}}}
    community = {"id": "https://cop.example.go.id/wi", "definition": {"type": COMMUNITY}}
    module = mapper().map(
        statement(
            COMPLETED_HTTPS,
            MODULE,
            context={"contextActivities": {"parent": [parent], "grouping": [{"id": "https://x.org/g"}, community]}},
        )
    )
    assert module.extras["course_shortname"] == "ORIENT"
    assert module.parent.type == "course" and module.parent.url == "https://lms.other.go.id/course/9"
    assert module.grouping.type == "community" and module.grouping.native_id == "https://cop.example.go.id/wi"
    message = mapper().map(statement(POSTED, MESSAGE, name={"en-US": "Selamat pagi semua, ini isi pesan"}))
    assert message.object.title is None  # a message name may be its body: never copied


def test_mapping_is_deterministic():
    foreign = statement(ATTENDED, MEETING, result={"duration": "PT50M"})
    assert mapper().map(foreign) == mapper().map(dict(foreign))
    assert mapper().map(foreign).to_json() == mapper().map(foreign).to_json()


# --- settings and the sync plan ------------------------------------------------------------------


def _settings(*sources: dict[str, Any]) -> Settings:
    return Settings.model_validate({"sources": list(sources)})


LRS = {
    "id": "src",
    "type": "lrs",
    "url": "https://lrs.other.go.id/xAPI",
    "username": "reader",
    "password_env": "SRC_LRS_PASSWORD",
}
MOODLE = {"id": "lms", "type": "moodle", "url": "https://lms.example.go.id", "token_env": "MOODLE_TOKEN"}


def test_settings_defaults_and_errors():
    source = source_settings(_settings(LRS).source("src"))
    assert source.url == "https://lrs.other.go.id/xAPI/" and source.site_url == "https://lrs.other.go.id/xAPI"
    assert source.identity_authorities == (AUTHORITY,) and source.page_size == 500
    assert source.overlap_seconds == 300 and source.mode == "auto"
    with pytest.raises(ConfigError, match="source src: pagesize: unknown key"):
        source_settings(_settings({**LRS, "pagesize": 10}).source("src"))
    with pytest.raises(ConfigError, match="source src: mode:"):
        source_settings(_settings({**LRS, "mode": "fast"}).source("src"))
    with pytest.raises(ConfigError, match="source src: username:"):
        source_settings(_settings({k: v for k, v in LRS.items() if k != "username"}).source("src"))
    with pytest.raises(ValidationError):
        LRSSourceSettings.model_validate({**LRS, "identity_authorities": ["not an iri"]})


def test_sync_plan_by_type_site_and_stream():
    settings = _settings(MOODLE, LRS, {"id": "wa", "type": "whatsapp"})
    assert [(s.id, streams) for s, streams in sync_sources(settings)] == [("lms", None), ("src", None)]
    assert [(s.id, streams) for s, streams in sync_sources(settings, streams=["statements"])] == [
        ("src", ("statements",))
    ]
    assert [s.id for s, _ in sync_sources(settings, streams=["forum_posts"])] == ["lms"]
    assert [s.id for s, _ in sync_sources(settings, "src")] == ["src"]
    with pytest.raises(ConfigError, match="unknown stream 'statements'"):
        sync_sources(settings, "lms", ["statements"])
    with pytest.raises(ConfigError, match="source wa is of type whatsapp"):
        sync_sources(settings, "wa")
    with pytest.raises(ConfigError, match="no source to sync"):
        sync_sources(_settings({"id": "wa", "type": "whatsapp"}))


# --- the reader against a scripted client ----------------------------------------------------------


class ScriptedClient:
    """Answers ``about`` and statement pages from a script; records the requests."""

    def __init__(self, pages: list[dict | Exception], about: dict | None = None) -> None:
        self.pages = list(pages)
        self.about_answer = about
        self.requests: list[tuple[str | None, dict]] = []

    def about(self) -> dict | None:
        return self.about_answer

    def get_statements_page(self, more: str | None = None, params: dict | None = None) -> dict:
        self.requests.append((more, dict(params or {})))
        answer = self.pages.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _stored(minute: int, second: int = 0) -> str:
    return f"2026-11-30T10:{minute:02d}:{second:02d}.000000+00:00"


def _reader(client: ScriptedClient, **options: Any) -> tuple[LRSSourceReader, list[float]]:
    waits: list[float] = []
    settings = LRSSourceSettings.model_validate({**LRS, "page_size": 2, "backoff_base": 0.5, **options})
    return LRSSourceReader(settings, client, mapper(), sleep=waits.append), waits


def test_since_mode_asks_from_the_cursor_minus_overlap_and_moves_the_cursor_per_page():
    pages = [
        {"statements": [statement(stored=_stored(1)), statement(stored=_stored(2))], "more": "/xAPI/statements?p=2"},
        {"statements": [statement(stored=_stored(3))]},
    ]
    client = ScriptedClient(pages, about={"version": ["1.0.3"]})
    reader, _ = _reader(client)
    got = list(reader.read({"stored": "2026-11-30T10:05:00.000000Z"}))
    assert client.requests[0] == (None, {"limit": 2, "ascending": "true", "since": "2026-11-30T10:00:00.000000Z"})
    assert client.requests[1][0] == "/xAPI/statements?p=2"
    assert [p.position for p in got] == [{"stored": "2026-11-30T10:05:00.000000Z"}] * 2  # never moves back
    assert sum(len(p.activities) for p in got) == 3


def test_scan_mode_reads_everything_keeps_the_window_and_moves_the_cursor_at_the_end():
    old, voided_id = statement(stored=_stored(1)), str(uuid.uuid4())
    pages = [
        {
            "statements": [old, statement(stored=_stored(10)), statement(stored=_stored(11), sid=voided_id)],
            "more": "/m/2",
        },
        {
            "statements": [
                statement(VOIDED, None, stored=_stored(12), object={"objectType": "StatementRef", "id": voided_id}),
                statement("http://adlnet.gov/expapi/verbs/experienced", stored=_stored(13)),
            ],
            "more": "/m/3",
        },
        {"statements": []},  # Ralph's extra empty page
    ]
    client = ScriptedClient(pages, about=None)
    reader, _ = _reader(client, overlap_seconds=60)
    got = list(reader.read({"stored": "2026-11-30T10:06:00Z"}))
    assert client.requests[0] == (None, {"limit": 2})  # no since, no ascending: Ralph's are broken
    assert [p.position for p in got] == [None, None, {"stored": "2026-11-30T10:13:00.000000Z"}]
    # The page-1 statement voided on page 2 was already read: only later targets can be skipped.
    assert [len(p.activities) for p in got] == [2, 0, 0]
    assert got[1].skipped == {Skip.VOIDING: 1, Skip.UNSUPPORTED: 1}


def test_a_void_earlier_in_the_pull_skips_its_target_and_each_page_lists_its_voids():
    target, late = str(uuid.uuid4()), str(uuid.uuid4())
    void = statement(VOIDED, None, stored=_stored(2), object={"objectType": "StatementRef", "id": target})
    late_void = statement(VOIDED, None, stored=_stored(3), object={"objectType": "StatementRef", "id": late})
    own_void = statement(
        VOIDED,
        None,
        stored=_stored(5),
        object={"objectType": "StatementRef", "id": late},
        context={"extensions": {f"{BASE}/extensions/source": {"source": "moodle"}}},
    )
    pages = [
        {"statements": [statement(stored=_stored(1), sid=late), void], "more": "/m/2"},
        {"statements": [late_void, statement(stored=_stored(4), sid=target), own_void]},
    ]
    reader, _ = _reader(ScriptedClient(pages), mode="scan")
    got = list(reader.read(None))
    assert got[1].skipped == {Skip.VOIDING: 1, Skip.VOIDED: 1, Skip.OWN: 1} and got[1].activities == []
    # Page 1 mirrored ``late``: page 2 names it for the runner to void. ``target`` came after its void
    # and was skipped, but an earlier sync may have mirrored it: page 1 names it too. Our own voids: never.
    assert [(v.statement_id, v.target) for v in got[0].voids] == [(void["id"], target)]
    assert [(v.statement_id, v.target) for v in got[1].voids] == [(late_void["id"], late)]
    assert [a.native_id for a in got[0].activities] == [late]


@pytest.mark.parametrize(("verb", "object_type"), [(v, o) for v, o, _ in VERB_CASES])
def test_copy_keys_hold_the_natural_key_of_every_kind_the_mapper_makes(verb, object_type):
    """The guard of :meth:`StatementMapper.copy_keys`: a late void must find the copy whatever its kind."""
    mapped = mapper().map(statement(verb, object_type))
    assert isinstance(mapped, Activity)
    keys = mapper().copy_keys(mapped.native_id)
    assert mapped.natural_key in keys and len(keys) == len(set(keys)) == len(set(KINDS.values()))


def test_same_page_void_and_duplicates():
    target = str(uuid.uuid4())
    again = statement(stored=_stored(5))
    pages = [
        {
            "statements": [
                statement(stored=_stored(1), sid=target),
                again,
                dict(again),
                statement(VOIDED, None, stored=_stored(2), object={"objectType": "StatementRef", "id": target}),
            ]
        }
    ]
    (page,) = _reader(ScriptedClient(pages), mode="scan")[0].read(None)
    assert len(page.activities) == 1 and page.skipped == {Skip.VOIDED: 1, Skip.VOIDING: 1}
    assert page.accounts == {f"{AUTHORITY}|{NIP}": NIP}


def test_out_of_order_pages_stop_moving_the_cursor(caplog):
    pages = [
        {"statements": [statement(stored=_stored(30))], "more": "/m/2"},
        {"statements": [statement(stored=_stored(1))], "more": "/m/3"},
        {"statements": [statement(stored=_stored(2))]},
    ]
    reader, _ = _reader(ScriptedClient(pages), mode="since", overlap_seconds=60)
    with caplog.at_level(logging.WARNING):
        positions = [p.position for p in reader.read(None)]
    assert positions == [{"stored": "2026-11-30T10:30:00.000000Z"}, None, {"stored": "2026-11-30T10:30:00.000000Z"}]
    assert "does not return statements in stored order" in caplog.text


def test_transient_failures_are_retried_then_named():
    pages: list[dict | Exception] = [
        RetryableError("the LRS at https://lrs.other.go.id/xAPI/ answered HTTP 502"),
        {"statements": [statement()]},
    ]
    reader, waits = _reader(ScriptedClient(pages), mode="scan")
    assert len(list(reader.read(None))) == 1 and waits == [0.5] and reader.calls["GET statements"] == 2
    failing = [RetryableError("the LRS at https://lrs.other.go.id/xAPI/ answered HTTP 503")] * 3
    reader, waits = _reader(ScriptedClient(failing), mode="scan", max_retries=2)
    with pytest.raises(RetryableError) as caught:
        list(reader.read(None))
    assert str(caught.value) == (
        "source LRS src (https://lrs.other.go.id/xAPI/) answered HTTP 503; gave up after 3 attempts"
    )
    assert waits == [0.5, 1.0]


def test_refusals_are_one_sentence_naming_the_source():
    auth = LRSAuthError("the LRS at https://lrs.other.go.id/xAPI/ refused the credentials (HTTP 401): check it")
    reader, _ = _reader(ScriptedClient([auth]), mode="scan")
    with pytest.raises(FatalSourceError) as caught:
        list(reader.read(None))
    assert str(caught.value) == (
        "source LRS src (https://lrs.other.go.id/xAPI/) refused the credentials "
        "(HTTP 401): check its username and the secret SRC_LRS_PASSWORD"
    )
    bad = LRSError("the LRS at https://lrs.other.go.id/xAPI/ answered a statements page that is not JSON")
    reader, _ = _reader(ScriptedClient([bad]), mode="scan")
    with pytest.raises(FatalSourceError, match=r"^source LRS src \(https://lrs.other.go.id/xAPI/\) answered a "):
        list(reader.read(None))
