"""Telegram Desktop JSON export reader: sample exports and own variants."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors import telegram
from connectors.base import ReadStats
from connectors.file_format import ReadRequest, StreamedItems
from connectors.telegram import FORMAT, read_telegram
from lms_bridge.activity import Activity, Kind, ObjectRef
from lms_bridge.errors import InputError
from tests.fixtures.community import DATA, EXPORTS, Pseudonyms, leaked, mutate, read_all

SITE = "cop-wi-7"
CHAT = "1000000001"

RAW_VALUES = [
    "budi santoso",
    "siti rahmawati",
    "dewi lestari",
    "agus pratama",
    "811 0000 0101",
    "812 0000 0202",
    "topik hari ini",
    "setuju",
    "pesan dari akun",
    "pesan pribadi",
    "pengumuman admin",
    "penting",
    "pamit",
    "lms.example.org",
]


#: ``read(path)`` -> (activities, pseudonyms).
read = partial(read_all, read_telegram, site=SITE)


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_single_chat_export() -> None:
    activities, who = read(EXPORTS / "telegram_single_chat.json")
    # 7 messages: create_group and join_group_by_link are not participation.
    assert [(a.kind, a.native_id, who.of(a)) for a in activities] == [
        (Kind.MESSAGE_POSTED, f"{CHAT}:2", "telegram:user100000001"),
        (Kind.MESSAGE_REPLIED, f"{CHAT}:3", "telegram:user100000002"),
        (Kind.MEETING_ATTENDED, f"{CHAT}:4", "telegram:user100000001"),
        (Kind.MESSAGE_POSTED, f"{CHAT}:5", "telegram:user100000009"),
        (Kind.MESSAGE_POSTED, f"{CHAT}:6", "telegram:user100000003"),
    ]
    posted, reply, call, deleted_account, photo = activities
    # Times come from date_unixtime (UTC), not from "date" (the exporting PC's local time).
    assert posted.occurred_at == datetime(2024, 3, 12, 2, 15, tzinfo=UTC)
    assert posted.extras == {
        "identifier_kind": "telegram",
        "text_length": 32,
        "media": False,
        "edited": False,
    }
    # text as an array of a string and a link entity
    assert reply.extras["text_length"] == len("Setuju, lihat https://lms.example.org/mod/forum")
    assert reply.parent == ObjectRef(type="message", native_id=f"{CHAT}:2", title="CoP Widyaiswara Angkatan 7")
    # The export's own reply link, as the object key the CoP report joins on (evidence.reply_to).
    assert reply.extras["reply_to"] == f"message:{CHAT}:2" and "reply_to" not in posted.extras
    assert call.object == ObjectRef(type="meeting", native_id=f"{CHAT}:4", title="CoP Widyaiswara Angkatan 7")
    assert call.duration is None  # how long the starter stayed is unknown
    assert call.extras == {"identifier_kind": "telegram", "role": "initiator", "call_duration_seconds": 3600}
    assert deleted_account.extras["deleted_account"] is True
    assert deleted_account.extras["edited"] is True
    assert photo.extras["media"] is True
    for activity in activities:
        assert activity.source == "telegram" and activity.site == SITE
        assert activity.grouping == ObjectRef(type="community", native_id=CHAT, title="CoP Widyaiswara Angkatan 7")


def test_account_export_gives_the_same_keys_as_the_single_chat() -> None:
    single, _ = read(EXPORTS / "telegram_single_chat.json")
    account, _ = read(EXPORTS / "telegram_account_export.json")
    assert account == single


def test_account_export_reads_each_group_and_skips_private_chats() -> None:
    activities, who = read(DATA / "telegram_account_mixed.json")
    assert [(a.kind, a.native_id, who.of(a)) for a in activities] == [
        # personal_chat 100000002: not a community, skipped.
        # 1000000002:10 was posted as the group itself (anonymous admin): no person.
        # :11 is a call still running (no duration), :12 an invite to a call: skipped.
        (Kind.MESSAGE_REPLIED, "1000000002:13", "telegram:user100000002"),
        (Kind.MESSAGE_POSTED, "1000000002:14", "telegram:user100000003"),
        # :15 is "unsupported"
        (Kind.MEETING_ATTENDED, "1000000002:16", "telegram:user100000003"),
        # :17 is a join: not participation. left_chats are still read:
        (Kind.MESSAGE_POSTED, "555000:1", "telegram:user100000004"),
    ]
    reply, voice, call, left = activities
    assert reply.parent is not None and reply.parent.native_id == "1000000002:10"
    assert reply.extras["text_length"] == len("Penting hari ini")
    assert voice.extras["media"] is True
    assert call.extras["call_duration_seconds"] == 1800
    assert left.grouping == ObjectRef(type="community", native_id="555000", title="CoP Lama")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("telegram_not_export.json", "telegram_not_export.json: not a Telegram export"),
        (
            "telegram_truncated.json",
            r"telegram_truncated.json: not valid JSON by line \d+ \(parse error: premature EOF; truncated\?\)",
        ),
        ("telegram_personal_chat.json", "a personal_chat is not a community chat"),
        ("telegram_bad_date.json", r"messages\[1\].date_unixtime is missing"),
    ],
)
def test_malformed_exports_raise_input_error(name: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        read(DATA / name)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "the top level is not a JSON object"),
        ({"chats": {"list": {}}}, "chats.list is missing or not a list"),
        ({"chats": {"list": [1]}}, r"chats.list\[0\] is not a chat object"),
        ({"id": "x", "messages": []}, "id is missing or not an integer"),
        ({"id": 1, "messages": {}}, "messages is missing or not a list"),
        ({"id": 1, "messages": [{"id": 1, "type": "message", "date_unixtime": "-5"}]}, "not epoch seconds"),
        ({"id": 1, "messages": [{"id": 1, "type": "message", "date_unixtime": "99"}]}, "out of range"),
        ({"id": 1, "messages": [{"id": True, "type": "message"}]}, r"messages\[0\].id is missing"),
        (
            {
                "id": 1,
                "messages": [{"id": 1, "type": "message", "date_unixtime": "1710209700", "from_id": [5]}],
            },
            r"messages\[0\].from_id is not a user id \(a string or an integer\)",
        ),
        (
            {
                "id": 1,
                "messages": [
                    {
                        "id": 1,
                        "type": "service",
                        "date_unixtime": "1710209700",
                        "action": "group_call",
                        "actor_id": "user1",
                        "duration": "1h",
                    }
                ],
            },
            r"messages\[0\].duration is not a number of seconds",
        ),
        (
            {"id": 1, "messages": [{"id": 1, "type": "message", "date_unixtime": "1710209700"}] * 2},
            "repeats message id 1",
        ),
    ],
)
def test_structural_errors_name_the_json_path(tmp_path: Path, data: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        read(write_json(tmp_path / "result.json", data))


JAKARTA = ZoneInfo("Asia/Jakarta")


def test_2019_account_export_with_integer_ids_and_local_dates() -> None:
    """tdesktop 1.x-2.4 (2018-2020): integer from_id/actor_id, no date_unixtime, "edited" on every message."""
    activities, who = read(DATA / "telegram_2019_account.json", tz=JAKARTA)
    chat = "1000000019"
    assert [(a.kind, a.native_id, who.of(a)) for a in activities] == [
        # personal_chat and saved_messages skipped; :1 and :4 are service messages, :6 "unsupported".
        (Kind.MESSAGE_POSTED, f"{chat}:2", "telegram:user100000001"),
        (Kind.MESSAGE_REPLIED, f"{chat}:3", "telegram:user100000002"),
        (Kind.MESSAGE_POSTED, f"{chat}:5", "telegram:user100000003"),
        (Kind.MESSAGE_POSTED, f"{chat}:7", "telegram:user100000009"),
        # the public_channel's post has no from/from_id (the channel posted it): no person.
    ]
    posted, reply, photo, deleted = activities
    # "date" is the exporting PC's local time: read in the deployment's zone (UTC+7).
    assert posted.occurred_at == datetime(2019, 5, 2, 2, 15, tzinfo=UTC)
    assert posted.extras == {"identifier_kind": "telegram", "text_length": 55, "media": False, "edited": False}
    assert reply.extras["edited"] is True  # a real edit date, not the 1970 epoch written for every message
    assert reply.extras["text_length"] == len("Setuju, lihat https://lms.example.org/mod/forum")
    assert reply.parent == ObjectRef(type="message", native_id=f"{chat}:2", title="CoP Widyaiswara 2019")
    assert photo.extras["media"] is True
    assert deleted.extras["deleted_account"] is True
    # The integer id gives the same pseudonym as the newer "user<digits>" form.
    newer, newer_who = read(EXPORTS / "telegram_single_chat.json")
    assert posted.actor == newer[0].actor and newer_who.of(newer[0]) == "telegram:user100000001"
    for activity in activities:
        assert not leaked(activity, RAW_VALUES)


def test_2021_single_chat_with_string_ids_and_no_unixtime() -> None:
    """tdesktop 2.5-3.1 (2021): "user<digits>" ids and group calls, still no date_unixtime nor text_entities."""
    activities, who = read(DATA / "telegram_2021_single_chat.json", tz=JAKARTA)
    chat = "1000000021"
    assert [(a.kind, a.native_id, who.of(a), a.occurred_at) for a in activities] == [
        (Kind.MESSAGE_POSTED, f"{chat}:10", "telegram:user100000001", datetime(2021, 3, 15, 2, 0, tzinfo=UTC)),
        (Kind.MEETING_ATTENDED, f"{chat}:11", "telegram:user100000001", datetime(2021, 3, 15, 3, 0, tzinfo=UTC)),
        (Kind.MESSAGE_REPLIED, f"{chat}:12", "telegram:user100000002", datetime(2021, 3, 15, 3, 50, tzinfo=UTC)),
        # :13 was posted as the group itself (channel id): no person.
    ]
    assert activities[1].extras["call_duration_seconds"] == 2700
    assert activities[2].extras == {
        "identifier_kind": "telegram",
        "text_length": len("Terima kasih atas sesinya"),
        "media": False,
        "edited": True,
        "reply_to": f"message:{chat}:10",
    }


def test_a_sender_known_only_by_name_is_a_name_identity(tmp_path: Path) -> None:
    # tdesktop writes from and from_id together; other tools' exports may give only the name.
    chat = {
        "name": "CoP Lama",
        "type": "private_group",
        "id": 555000,
        "messages": [
            {"id": 1, "type": "message", "date": "2018-09-15T12:00:00", "from": "Pak Agus Pratama", "text": "x"},
            {"id": 2, "type": "message", "date": "2018-09-15T12:01:00", "from": None, "text": "y"},
        ],
    }
    activities, who = read(write_json(tmp_path / "result.json", chat), tz=JAKARTA)
    assert [(who.of(a), a.extras["identifier_kind"]) for a in activities] == [("name:pak agus pratama", "name")]


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        (
            [{"id": 1, "type": "message", "date": "2019-05-02T09:15:00", "from_id": 1, "text": "a"}],
            r"messages\[0\] has no date_unixtime \(an older export\): its local date needs the time zone",
        ),
        (
            [
                {"id": 1, "type": "message", "date": "2019-05-02T09:15:00", "from_id": 1},
                {"id": 2, "type": "message", "date": "2019-05-02T09:15:00", "date_unixtime": "1556763300"},
            ],
            r"messages\[1\].date_unixtime is set but the first message has none \(a damaged export\)",
        ),
        ([{"id": 1, "type": "message", "date": "2019-05-02", "from_id": 1}], r"messages\[0\].date is missing or not"),
        ([{"id": 1, "type": "message", "date": "2019-02-30T09:15:00"}], r"2019-02-30T09:15:00 is not a calendar date"),
        ([{"id": 1, "type": "message", "date": "1970-01-01T07:00:00"}], r"1970-01-01T07:00:00 is out of range"),
        ([{"id": 1, "type": "message", "date": "2019-05-02T09:15:00", "from_id": -4}], r"-4 is not a user id"),
    ],
)
def test_older_layout_refusals_name_the_message(tmp_path: Path, messages: list[Any], message: str) -> None:
    path = write_json(tmp_path / "result.json", {"name": "G", "type": "private_group", "id": 7, "messages": messages})
    tz = None if "needs the time zone" in message else JAKARTA
    with pytest.raises(InputError, match=message):
        read(path, tz=tz)


def test_an_account_export_without_a_group_chat_says_so(tmp_path: Path) -> None:
    with pytest.raises(InputError) as refused:
        read(DATA / "telegram_only_personal.json")
    assert str(refused.value) == (
        "telegram export telegram_only_personal.json holds no group chat, only 2 personal, bot or saved-messages "
        "chats, which are not communities: export the group itself (its chat menu, Export chat history, JSON)"
    )
    empty = write_json(tmp_path / "result.json", {"chats": {"about": "", "list": []}})
    with pytest.raises(InputError, match="result.json holds no chat at all: export the group itself"):
        read(empty)


def test_errors_for_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="missing.json: cannot be read"):
        read(tmp_path / "missing.json")
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"name": "Caf\xe9"}')
    with pytest.raises(InputError, match="latin.json: not UTF-8"):
        read(latin)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match="deep.json"):
        read(deep)


def test_a_bad_message_at_the_end_yields_nothing(tmp_path: Path) -> None:
    chat = json.loads((EXPORTS / "telegram_single_chat.json").read_text(encoding="utf-8"))
    chat["messages"].append({"id": 99, "type": "message", "from_id": "user1", "text": "x"})
    activities = read_telegram(write_json(tmp_path / "result.json", chat), site=SITE, pseudonymize=Pseudonyms())
    with pytest.raises(InputError, match=r"messages\[7\].date_unixtime"):
        next(activities)


def test_no_name_phone_or_text_in_any_activity() -> None:
    allowed = {
        "identifier_kind",
        "text_length",
        "media",
        "edited",
        "deleted_account",
        "role",
        "call_duration_seconds",
        "reply_to",  # the replied message's key (chat and message ids): metadata, no text
    }
    count = 0
    for path in [
        EXPORTS / "telegram_single_chat.json",
        EXPORTS / "telegram_account_export.json",
        DATA / "telegram_account_mixed.json",
    ]:
        for activity in read(path)[0]:
            count += 1
            assert not leaked(activity, RAW_VALUES), path.name
            assert set(activity.extras) <= allowed
    assert count == 14


def generated_chat(count: int) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    for i in range(1, count + 1):
        message: dict[str, Any] = {
            "id": i,
            "type": "message",
            "date": "2024-03-12T09:00:00",
            "date_unixtime": str(1710209700 + i * 17),
            "from": f"Anggota {i % 300}",
            "from_id": f"user{100000000 + i % 300}",
            "text": "Topik hari ini" if i % 4 else ["Setuju, lihat ", {"type": "link", "text": "https://x.example"}],
            "text_entities": [],
        }
        if i % 5 == 0:
            message["reply_to_message_id"] = i - 1
        messages.append(message)
    return {"name": "CoP Besar", "type": "private_supergroup", "id": 1000000777, "messages": messages}


def test_a_40000_message_export_is_read_whole(tmp_path: Path) -> None:
    activities, who = read(write_json(tmp_path / "result.json", generated_chat(40_000)))
    assert len(activities) == 40_000
    assert sum(1 for a in activities if a.kind is Kind.MESSAGE_REPLIED) == 8_000
    assert len({a.native_id for a in activities}) == 40_000
    assert len(who.seen) == 300


def mixed_chat(count: int, chat_id: int = 1000000888) -> dict[str, Any]:
    """A chat of ``count`` messages: members' messages and replies, channel posts, calls and joins."""
    messages: list[dict[str, Any]] = []
    for i in range(1, count + 1):
        message: dict[str, Any] = {"id": i, "type": "message", "date_unixtime": str(1710209700 + i * 13)}
        if i % 50 == 0:
            message.update(type="service", action="group_call", actor_id=f"user{100 + i % 40}", duration=i % 3)
        elif i % 45 == 0:
            message.update(type="service", action="join_group_by_link", actor_id=f"user{100 + i % 40}")
        elif i % 31 == 0:
            message.update(from_id=f"channel{chat_id}", text="pengumuman")
        else:
            message.update(from_id=f"user{100 + i % 40}", text=["Topik ", {"type": "bold", "text": "hari ini"}])
            if i % 7 == 0:
                message["reply_to_message_id"] = i - 1
        messages.append(message)
    return {"name": "CoP Campur", "type": "private_supergroup", "id": chat_id, "messages": messages}


def expected_counts(chat: dict[str, Any]) -> tuple[int, int]:
    """(messages, activities) of a chat as the whole-file reading counts them, from ``json.loads``' result."""
    messages = chat["messages"]
    posts = sum(1 for m in messages if m["type"] == "message" and str(m.get("from_id", "")).startswith("user"))
    calls = sum(1 for m in messages if m.get("action") == "group_call" and m.get("duration"))
    return len(messages), posts + calls


def read_format(path: Path, **options: Any) -> tuple[list[Activity], ReadStats]:
    request = ReadRequest(tz=JAKARTA, pseudonymizer=lambda: Pseudonyms(), community="cop-x", **options)
    contents = FORMAT.read(path, request)
    return [activity for activity, _ in contents.items], contents.stats


def test_a_streamed_export_gives_the_counts_json_loads_gives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chat = mixed_chat(15_000)
    single = tmp_path / "result.json"
    single.write_text(json.dumps(chat, indent=1), encoding="utf-8")
    assert single.stat().st_size > 2_000_000  # a few MB: many reads of the parser's 64 KB buffer
    records, activities = expected_counts(json.loads(single.read_text(encoding="utf-8")))
    kept, stats = read_format(single)
    assert (stats.records, len(kept), stats.skipped) == (records, activities, records - activities)
    # More activities than are kept in memory: the file is read again, one message at a time.
    monkeypatch.setattr(telegram, "KEEP_ACTIVITIES", 1_000)
    request = ReadRequest(tz=JAKARTA, pseudonymizer=lambda: Pseudonyms(), community="cop-x")
    contents = FORMAT.read(single, request)
    assert isinstance(contents.items, StreamedItems)
    assert [activity for activity, _ in contents.items] == kept
    # Keys in another order (messages before the chat's id) and an account export: the same activities.
    shuffled = tmp_path / "shuffled.json"
    shuffled.write_text(json.dumps({"messages": chat["messages"], "id": chat["id"], "name": chat["name"]}))
    assert read_format(shuffled)[0] == kept
    account = tmp_path / "account.json"
    personal = {"name": "Budi", "type": "personal_chat", "id": 5, "messages": []}
    account.write_text(json.dumps({"about": "", "chats": {"about": "", "list": [personal, chat]}}))
    assert read_format(account) == (kept, stats)


def test_the_message_cap_refuses_while_streaming(tmp_path: Path) -> None:
    # Cut after its 40th message: a file read whole would be refused as not valid JSON; the cap stops first.
    text = json.dumps(mixed_chat(60), indent=1)
    single = tmp_path / "result.json"
    single.write_text(text[: text.index('"id": 41,')], encoding="utf-8")
    with pytest.raises(InputError) as refused:
        read_format(single, max_messages=25)
    assert str(refused.value) == (
        "telegram export result.json: more than 25 messages in one chat (messages[25] is message 26); "
        "split the export or raise --max-messages or [limits] max_messages"
    )
    with pytest.raises(InputError, match=r"result\.json: not valid JSON by line \d+ \(parse error: premature EOF"):
        read_format(single, max_messages=100)
    # In an account export, only the chat imported is capped (each chat is imported on its own).
    account = tmp_path / "account.json"
    small, large = mixed_chat(10, chat_id=11), mixed_chat(60, chat_id=22)
    account.write_text(json.dumps({"chats": {"list": [small, large]}}), encoding="utf-8")
    assert read_format(account, max_messages=25, chat="11")[1].records == 10
    with pytest.raises(InputError, match=r"chats\.list\[1\]\.messages\[25\] is message 26"):
        read_format(account, max_messages=25, chat="22")


# --- property tests: nothing but InputError escapes -------------------------------------------


def _only_input_error(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        list(read_telegram(path, site=SITE, pseudonymize=Pseudonyms()))
    except InputError:
        pass


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.sampled_from(["user1", "channel2", "1710209700", "group_call", "message", "service", "personal_chat"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "type",
                    "messages",
                    "chats",
                    "list",
                    "date_unixtime",
                    "from",
                    "from_id",
                    "text",
                    "reply_to_message_id",
                    "action",
                    "actor_id",
                    "duration",
                    "name",
                    "left_chats",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_input_error(scratch: Path, data: bytes) -> None:
    _only_input_error(scratch / "bytes.json", data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=JSON_VALUES)
def test_arbitrary_json_raises_only_input_error(scratch: Path, value: Any) -> None:
    _only_input_error(scratch / "value.json", json.dumps(value).encode())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_fixtures_raise_only_input_error(scratch: Path, data: st.DataObject) -> None:
    source = data.draw(st.sampled_from(sorted(EXPORTS.glob("telegram_*")) + sorted(DATA.glob("telegram_*"))))
    inserts = st.sampled_from([b"null", b"1", b'"x"', b"[]", b"{}", b"-", b"\xff"])
    _only_input_error(scratch / "mutated.json", mutate(source.read_bytes(), data.draw, inserts))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fixture_with_replaced_values_raises_only_input_error(scratch: Path, data: st.DataObject) -> None:
    """Replace one value anywhere in a real export by an arbitrary JSON value."""
    root = json.loads((EXPORTS / "telegram_account_export.json").read_text(encoding="utf-8"))
    node: Any = root
    for _ in range(data.draw(st.integers(0, 6))):
        if isinstance(node, dict) and node:
            key = data.draw(st.sampled_from(sorted(node)))
            if not isinstance(node[key], dict | list) or data.draw(st.booleans()):
                node[key] = data.draw(JSON_VALUES)
                break
            node = node[key]
        elif isinstance(node, list) and node:
            index = data.draw(st.integers(0, len(node) - 1))
            if not isinstance(node[index], dict | list) or data.draw(st.booleans()):
                node[index] = data.draw(JSON_VALUES)
                break
            node = node[index]
        else:
            break
    _only_input_error(scratch / "replaced.json", json.dumps(root).encode())
