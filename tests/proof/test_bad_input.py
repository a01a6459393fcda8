"""Bad input: hypothesis bytes and mutated real fixtures into every parser.

Every parser must answer a broken input with the project's own error (an ``LmsBridgeError``
subclass) naming the file, never with another exception, and a refused file stores nothing.
Parsers: Moodle REST JSON/XML (the client) and the Moodle streams reading the parsed records,
WhatsApp, Telegram, Zoom/Meet/Teams attendance, the HR roster, the JP rule and program-JP TOML
files, activity files (JSON Lines), LMS completion reports and their column mappings, the live connectors' API
answers (Telegram Bot API updates, Zoom meeting and participant reports, Google Classroom courses,
submissions and announcements), the LRS source's statement mapper, and the configuration's secrets file.

Examples are derandomised so CI is repeatable; ``PROOF_FUZZ_RANDOM=1 PROOF_FUZZ_EXAMPLES=2000`` explores more.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import stat
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors import (
    attendance,
    google_classroom,
    jsonl,
    lms_csv,
    lrs_source,
    telegram,
    telegram_bot,
    whatsapp,
    zoom_api,
)
from connectors.live import LivePage
from connectors.moodle import streams as moodle_streams
from connectors.moodle.client import MoodleClient
from fakes.classroom import FakeClassroom, shared_service_account
from fakes.telegram_bot import group, user
from fakes.zoom import FakeZoom
from lms_bridge import store
from lms_bridge.activity import Activity
from lms_bridge.config.settings import load_settings
from lms_bridge.errors import ConfigError, LmsBridgeError, StatementValidationError
from lms_bridge.identity.pseudonym import make_pseudonymizer
from lms_bridge.identity.roster import import_roster
from lms_bridge.jp.rules import load_program_jp, load_rules
from tests.fixtures.data import COMMUNITY_EXPORTS, COMMUNITY_VARIANTS, MOODLE_RESPONSES
from tests.fixtures.deployment import ROOT
from tests.proof.support import SITE, make_deployment, workdir
from xapi.statements import StatementSettings, build_statement
from xapi.vocabulary import load_vocabulary

pytestmark = pytest.mark.proof

FUZZ = settings(
    max_examples=int(os.environ.get("PROOF_FUZZ_EXAMPLES", "60")),
    derandomize=not os.environ.get("PROOF_FUZZ_RANDOM"),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
JAKARTA = ZoneInfo("Asia/Jakarta")
PSEUDONYMIZE = make_pseudonymizer(SecretStr("fuzz-pseudonym-key-0123456789"))
LOCAL_DATA = COMMUNITY_VARIANTS


@functools.cache
def scratch() -> Path:
    """The folder fuzzed files are written to (made on first use, not at collection)."""
    return workdir("fuzz")


#: Byte strings that make parsers think: separators, quotes, headers, huge or negative numbers, bad UTF-8.
TOKENS = [
    b"\x00",
    b"\xff\xfe",
    b"\xc3",
    b'"',
    b",",
    b";",
    b"\t",
    b"\n",
    b"\r\n",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"<",
    b">",
    b"&amp;",
    b"null",
    b"-1",
    b"0",
    b"99999999999999999999",
    b"1e400",
    b"NaN",
    b"31/02/26 25.61 - ",
    b"[13/13/24, 99:99:99] ",
    b"\xe2\x80\x8e",
    b"\xef\xbb\xbf",
    b"=",
    b"'''",
    b"\\u0000",
]
#: Values a structured mutation puts in a JSON document.
WEIRD = [
    None,
    "",
    "abc",
    "1e5",
    -1,
    0,
    2**63,
    10**13,
    -(10**13),
    1.5,
    float("inf"),
    True,
    [],
    {},
    ["x"],
    {"a": 1},
    "\u202e\ud83d",
    "x" * 3000,
]


def files(*patterns: str, folders: tuple[Path, ...] = (COMMUNITY_EXPORTS, LOCAL_DATA)) -> list[Path]:
    found = sorted(p for folder in folders for pattern in patterns for p in folder.glob(pattern))
    assert found, f"no fixture matches {patterns}"
    return found


@st.composite
def mutated_bytes(draw: st.DrawFn, originals: list[bytes]) -> bytes:
    """A real input with a few byte-level edits: flips, cuts, insertions of tokens, duplications."""
    data = bytearray(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, max(0, len(data) - 1)))
        operation = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "duplicate"]))
        if operation == "flip" and data:
            data[position] = draw(st.integers(0, 255))
        elif operation == "delete":
            del data[position : position + draw(st.integers(1, 80))]
        elif operation == "insert":
            data[position:position] = draw(st.sampled_from(TOKENS))
        elif operation == "truncate":
            del data[position:]
        else:
            data[position:position] = data[position : position + draw(st.integers(1, 300))]
    return bytes(data)


def _paths(document: Any, prefix: tuple = (), depth: int = 0) -> Iterator[tuple]:
    yield prefix
    if depth > 8:
        return
    if isinstance(document, dict):
        for key, value in document.items():
            yield from _paths(value, (*prefix, key), depth + 1)
    elif isinstance(document, list):
        for index, value in enumerate(document[:3]):
            yield from _paths(value, (*prefix, index), depth + 1)


@st.composite
def mutated_json(draw: st.DrawFn, originals: list[Any], weird: list[Any] = WEIRD, most: int = 3) -> Any:
    """A real JSON document with one to ``most`` values replaced by ``weird`` ones, or keys removed."""
    document = copy.deepcopy(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(1, most))):
        path = draw(st.sampled_from(list(_paths(document))))
        if not path:
            return copy.deepcopy(draw(st.sampled_from(weird)))
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(weird)))
    return document


def _only_project_errors(call, name: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """Run ``call``: it may succeed or raise a project error naming ``name``; anything else fails."""
    try:
        call()
    except LmsBridgeError as exc:
        if name is not None:
            assert name in str(exc), f"the error does not name the file {name}: {exc}"


def _write(name: str, data: bytes) -> Path:
    path = scratch() / name
    path.write_bytes(data)
    return path


# --- Moodle: the REST client ---------------------------------------------------------------------

MOODLE_BODIES = {fmt: [p.read_bytes() for p in sorted(MOODLE_RESPONSES.glob(f"*.{fmt}"))] for fmt in ("json", "xml")}


def _response(status: int, body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    return response


@pytest.mark.parametrize("fmt", ["json", "xml"])
@FUZZ
@given(data=st.data())
def test_moodle_client_turns_any_body_into_data_or_a_project_error(fmt, data):
    body = data.draw(st.one_of(st.binary(max_size=3000), mutated_bytes(MOODLE_BODIES[fmt])))
    status = data.draw(st.sampled_from([200, 200, 200, 200, 201, 301, 403, 404, 429, 500, 502]))
    client = MoodleClient(SITE, "http://127.0.0.1:9", SecretStr("tok-fuzz-1234"), fmt=fmt)
    _only_project_errors(lambda: client.check_response("core_course_get_courses", _response(status, body)))


def test_a_deeply_nested_json_body_is_a_project_error():
    client = MoodleClient(SITE, "http://127.0.0.1:9", SecretStr("tok-fuzz-1234"), fmt="json")
    with pytest.raises(LmsBridgeError):
        client.check_response("core_course_get_courses", _response(200, b"[" * 100_000))


# --- Moodle: the streams reading records ----------------------------------------------------------


def _fixture(name: str) -> Any:
    return json.loads((MOODLE_RESPONSES / name).read_text(encoding="utf-8"))


def _moodle_responses() -> dict[str, Any]:
    courses = [c for c in _fixture("core_course_get_courses.json") if c["id"] in (1, 66, 77)]
    discussions = _fixture("mod_forum_get_forum_discussions.json")
    discussions["discussions"] = discussions["discussions"][:3]
    return {
        "core_course_get_courses": courses,
        "mod_bigbluebuttonbn_get_bigbluebuttonbns_by_courses": _fixture(
            "mod_bigbluebuttonbn_get_bigbluebuttonbns_by_courses.json"
        ),
        "core_enrol_get_enrolled_users": _fixture("core_enrol_get_enrolled_users__latsar_userfields_page.json")[:3],
        "core_completion_get_course_completion_status": _fixture("core_completion_get_course_completion_status.json"),
        "core_completion_get_activities_completion_status": _fixture(
            "core_completion_get_activities_completion_status.json"
        ),
        "mod_forum_get_forums_by_courses": _fixture("mod_forum_get_forums_by_courses.json")[:2],
        "mod_forum_get_forum_discussions": discussions,
        "mod_forum_get_discussion_posts": _fixture("mod_forum_get_discussion_posts.json"),
        "core_course_get_contents": _fixture("core_course_get_contents__excludecontents.json"),
        "core_user_get_users_by_field": _fixture("core_user_get_users_by_field__id.json"),
        # Not captured: written from Moodle 4.5's mod/assign/externallib.php and
        # mod/bigbluebuttonbn/classes/external/meeting_info.php return structures.
        "mod_assign_get_assignments": {
            "courses": [
                {
                    "id": 66,
                    "fullname": "PKP",
                    "shortname": "PKP",
                    "timemodified": 0,
                    "assignments": [{"id": 7, "cmid": 2661, "course": 66, "name": "Tugas Akhir", "timemodified": 0}],
                }
            ],
            "warnings": [],
        },
        "mod_assign_get_grades": {
            "assignments": [
                {
                    "assignmentid": 7,
                    "grades": [
                        {
                            "id": 1,
                            "userid": 6620,
                            "attemptnumber": 0,
                            "timecreated": 1785445096,
                            "timemodified": 1785445096,
                            "grader": 2,
                            "grade": "80.00000",
                        }
                    ],
                }
            ],
            "warnings": [],
        },
        "mod_bigbluebuttonbn_meeting_info": {
            "cmid": 2664,
            "userlimit": 0,
            "bigbluebuttonbnid": "1",
            "groupid": 0,
            "meetingid": "3ffa32",
            "openingtime": 1785445000,
            "closingtime": 1785450400,
            "canjoin": False,
            "ismoderator": True,
            "presentations": [],
            "joinurl": "http://127.0.0.1:8080/mod/bigbluebuttonbn/bbb_view.php",
            "features": [],
        },
    }


MOODLE_RESPONSES = _moodle_responses()


class _Client:
    """Answers each function with a (possibly mutated) captured response; later pages are empty."""

    def __init__(self, responses: dict[str, Any]) -> None:
        self.responses = responses
        self.calls: dict[str, int] = {}

    def call(self, function: str, **params: Any) -> Any:
        if function == "core_enrol_get_enrolled_users" and params["options"][1]["value"] > 0:
            return []
        if function == "mod_forum_get_forum_discussions" and params.get("page", 0) > 0:
            return {"discussions": []}
        return copy.deepcopy(self.responses[function])


def _read_all_streams(responses: dict[str, Any]) -> None:
    ctx = moodle_streams.SiteContext(site=SITE, client=_Client(responses), wwwroot="http://127.0.0.1:8080")
    for stream in (
        moodle_streams.CoursesStream(),
        moodle_streams.WebinarsStream(),
        moodle_streams.EnrolledUsersStream(50),
        moodle_streams.CourseCompletionsStream(50, 1),
        moodle_streams.ActivityCompletionsStream(50, 1),
        moodle_streams.ForumPostsStream(10),
    ):
        for _ in stream.read(ctx, None):
            pass


def test_the_captured_responses_read_cleanly():
    _read_all_streams(MOODLE_RESPONSES)


@settings(FUZZ)
@given(data=st.data())
def test_moodle_streams_raise_only_project_errors_on_mutated_records(data):
    function = data.draw(st.sampled_from(sorted(MOODLE_RESPONSES)))
    responses = dict(MOODLE_RESPONSES)
    responses[function] = data.draw(mutated_json([MOODLE_RESPONSES[function]]))
    _only_project_errors(lambda: _read_all_streams(responses))


def _with(function: str, edit) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    responses = copy.deepcopy(MOODLE_RESPONSES)
    responses[function] = edit(responses[function])
    return responses


def _set_post_field(field: str, value: Any):  # type: ignore[no-untyped-def]
    def edit(data: dict) -> dict:
        data["posts"][0][field] = value
        return data

    return edit


@pytest.mark.parametrize(
    "responses",
    [
        _with("mod_forum_get_discussion_posts", _set_post_field("timecreated", "abc")),
        _with("mod_forum_get_discussion_posts", _set_post_field("timecreated", 10**13)),
        _with("mod_forum_get_discussion_posts", lambda data: data["posts"]),
        _with("core_course_get_courses", lambda data: [{**data[1], "id": "1e5"}]),
    ],
    ids=["post-time-not-a-number", "post-time-out-of-range", "posts-as-a-list", "course-id-1e5"],
)
def test_moodle_record_examples_raise_only_project_errors(responses):
    _only_project_errors(lambda: _read_all_streams(responses))


# --- chat exports ---------------------------------------------------------------------------------

WHATSAPP = [p.read_bytes() for p in files("whatsapp_*.txt", "whatsapp_*.zip")]


@FUZZ
@given(data=st.one_of(st.binary(max_size=3000), mutated_bytes(WHATSAPP)))
def test_whatsapp_reader_raises_only_input_errors(data):
    path = _write("chat.zip" if data.startswith(b"PK") else "chat.txt", data)
    _only_project_errors(
        lambda: list(whatsapp.read_whatsapp(path, site=SITE, pseudonymize=PSEUDONYMIZE, tz=JAKARTA)), path.name
    )


TELEGRAM_FILES = files("telegram_*.json")
TELEGRAM_DOCS = []
for _path in TELEGRAM_FILES:
    try:
        TELEGRAM_DOCS.append(json.loads(_path.read_text(encoding="utf-8")))
    except ValueError:
        pass  # the truncated fixture: its bytes still feed mutated_bytes


def _read_telegram(path: Path) -> None:
    list(telegram.read_telegram(path, site=SITE, pseudonymize=PSEUDONYMIZE))


@FUZZ
@given(data=st.one_of(st.binary(max_size=3000), mutated_bytes([p.read_bytes() for p in TELEGRAM_FILES])))
def test_telegram_reader_raises_only_input_errors_on_bytes(data):
    path = _write("result.json", data)
    _only_project_errors(lambda: _read_telegram(path), path.name)


@FUZZ
@given(document=mutated_json(TELEGRAM_DOCS))
def test_telegram_reader_raises_only_input_errors_on_mutated_exports(document):
    path = _write("result.json", json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    _only_project_errors(lambda: _read_telegram(path), path.name)


# --- attendance reports ---------------------------------------------------------------------------

ATTENDANCE = [p.read_bytes() for p in files("zoom_*.csv", "meet_*.csv", "teams_*.csv")]
CELLS = [
    "",
    "-",
    "0",
    "-1",
    "99999",
    "31/02/2026 25:61",
    "13/13/2026 10:00 AM",
    "2026-02-30 10:00:00",
    "1h 99m 99s",
    "Yes",
    "\u200e",
    '"',
    "=1+1",
    "x" * 500,
]


@st.composite
def mutated_cells(draw: st.DrawFn, originals: list[bytes]) -> bytes:
    """A real CSV/TSV with a few cells replaced (it stays decodable, so the row parsers are reached)."""
    raw = draw(st.sampled_from(originals))
    encoding = "utf-16" if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    text = raw.decode(encoding)
    lines = text.split("\n")
    for _ in range(draw(st.integers(1, 3))):
        number = draw(st.integers(0, len(lines) - 1))
        delimiter = "\t" if "\t" in lines[number] else ("," if "," in lines[number] else ";")
        cells = lines[number].split(delimiter)
        cells[draw(st.integers(0, len(cells) - 1))] = draw(st.sampled_from(CELLS))
        lines[number] = delimiter.join(cells)
    return "\n".join(lines).encode(encoding)


def _read_attendance(path: Path) -> None:
    list(attendance.read_attendance(path, site="zoom", pseudonymize=PSEUDONYMIZE, tz=JAKARTA))


@FUZZ
@given(data=st.one_of(st.binary(max_size=3000), mutated_bytes(ATTENDANCE), mutated_cells(ATTENDANCE)))
def test_attendance_reader_raises_only_input_errors(data):
    path = _write("attendance.csv", data)
    _only_project_errors(lambda: _read_attendance(path), path.name)


# --- the HR roster --------------------------------------------------------------------------------

ROSTER = [(COMMUNITY_EXPORTS / "roster.csv").read_bytes()]


@functools.cache
def roster_engine():  # type: ignore[no-untyped-def]
    return store.open_engine(f"sqlite:///{scratch() / 'roster.db'}")


@FUZZ
@given(data=st.one_of(st.binary(max_size=2000), mutated_bytes(ROSTER), mutated_cells(ROSTER)))
def test_roster_import_raises_only_input_errors(data):
    path = _write("roster.csv", data)
    _only_project_errors(lambda: import_roster(roster_engine(), path, PSEUDONYMIZE, dry_run=True), path.name)


# --- TOML: JP rules, program JP, LMS report mappings ----------------------------------------------

TOML_VALUES = [
    '""',
    '"x"',
    "-1",
    "0",
    "1e400",
    "nan",
    "inf",
    "true",
    "[]",
    "{}",
    '["x", 1]',
    '{ jp = "x" }',
    '"1.5"',
    '"-1"',
    "1979-05-27",
    '"(?P<jp>"',
    "9999999999999999999999",
    '"C99"',
]


@st.composite
def mutated_toml(draw: st.DrawFn, original: str) -> str:
    """A real TOML file with lines edited: a value replaced, a line dropped or repeated, junk added."""
    lines = original.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        number = draw(st.integers(0, len(lines) - 1))
        operation = draw(st.sampled_from(["value", "value", "drop", "repeat", "junk"]))
        if operation == "value" and "=" in lines[number]:
            key = lines[number].split("=", 1)[0]
            lines[number] = f"{key}= {draw(st.sampled_from(TOML_VALUES))}"
        elif operation == "drop":
            del lines[number]
        elif operation == "repeat":
            lines.insert(number, lines[number])
        else:
            lines.insert(
                number,
                draw(
                    st.sampled_from(
                        [
                            "[rules]",
                            "[[rules]]",
                            "extra = 1",
                            "[settings.x]",
                            "=",
                            "format = 2",
                            '[sites."x y"]',
                            "\x00",
                        ]
                    )
                ),
            )
        if not lines:
            break
    return "\n".join(lines) + "\n"


RULES_TEXT = (ROOT / "mappings" / "jp_rules.toml").read_text(encoding="utf-8")
PROGRAM_TEXT = (ROOT / "mappings" / "program_jp.toml").read_text(encoding="utf-8")
MAPPING_TEXT = (ROOT / "mappings" / "lms_csv_example.toml").read_text(encoding="utf-8")


@FUZZ
@given(text=st.one_of(mutated_toml(RULES_TEXT), st.text(max_size=500)))
def test_jp_rules_loader_raises_only_rule_errors(text):
    path = _write("jp_rules.toml", text.encode("utf-8", "surrogatepass"))
    _only_project_errors(lambda: load_rules(path), path.name)


@FUZZ
@given(text=st.one_of(mutated_toml(PROGRAM_TEXT), st.text(max_size=500)))
def test_program_jp_loader_raises_only_rule_errors(text):
    path = _write("program_jp.toml", text.encode("utf-8", "surrogatepass"))
    _only_project_errors(lambda: load_program_jp(path), path.name)


@FUZZ
@given(text=st.one_of(mutated_toml(MAPPING_TEXT), st.text(max_size=500)))
def test_lms_report_mapping_loader_raises_only_rule_errors(text):
    path = _write("mapping.toml", text.encode("utf-8", "surrogatepass"))
    _only_project_errors(lambda: lms_csv.load_mapping(path), path.name)


# --- LMS completion reports and activity files ----------------------------------------------------

LMS_REPORT = (
    b"ID Kursus,Nama Kursus,Kode Kursus,ID Number,NIP,Email,Tanggal Selesai,JP\r\n"
    b"101,Pelatihan Evaluasi,PT-EVAL,EVAL-JP12,19800512 200501 1 002,budi.s@example.org,"
    b"12/03/2024 09:05,12\r\n"
    b'101,Pelatihan Evaluasi,PT-EVAL,EVAL-JP12,,Siti.R@Example.org,13/03/2024 10:00,"1,5"\r\n'
    b"102,Latsar,,,199202142022211007,,,40\r\n"
)
EXAMPLE_MAPPING = lms_csv.load_mapping(ROOT / "mappings" / "lms_csv_example.toml")


@FUZZ
@given(data=st.one_of(st.binary(max_size=2000), mutated_bytes([LMS_REPORT]), mutated_cells([LMS_REPORT])))
def test_lms_report_reader_raises_only_input_errors(data):
    path = _write("report.csv", data)
    _only_project_errors(
        lambda: list(lms_csv.read_lms_csv(path, EXAMPLE_MAPPING, pseudonymize=PSEUDONYMIZE, tz=JAKARTA)), path.name
    )


ACTIVITY_LINES = [
    json.loads(line)
    for line in (ROOT / "lms_bridge" / "demo" / "data" / "activities.jsonl").read_text(encoding="utf-8").splitlines()
    if line.strip() and not line.startswith("#")
]


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=2000),
        mutated_bytes([(ROOT / "lms_bridge" / "demo" / "data" / "activities.jsonl").read_bytes()]),
        st.lists(mutated_json(ACTIVITY_LINES[:20]), min_size=1, max_size=3).map(
            lambda docs: "\n".join(json.dumps(d, ensure_ascii=False) for d in docs).encode("utf-8", "surrogatepass")
        ),
    )
)
def test_activity_file_reader_raises_only_input_errors(data):
    path = _write("activities.jsonl", data)
    _only_project_errors(lambda: list(jsonl.read_activities(path)), path.name)


# --- configuration ---------------------------------------------------------------------------------


def test_a_world_readable_secrets_file_is_refused(tmp_path):
    secrets = tmp_path / "secrets.env"
    secrets.write_text("LMS_BRIDGE_LRS_PASSWORD=world-can-read-this-9f2\n")
    secrets.chmod(0o644)
    config = tmp_path / "lms-bridge.toml"
    config.write_text(f'[secrets]\nfile = "{secrets}"\n')
    with pytest.raises(ConfigError, match="readable by others"):
        load_settings(config, environ={})
    deployment = make_deployment("secrets-file", lrs_url="http://127.0.0.1:9/xAPI/")
    deployment.config.write_text(deployment.config.read_text() + f'\n[secrets]\nfile = "{secrets}"\n')
    result = deployment.run("outbox", "status", check=False)
    assert result.returncode == 2
    assert "readable by others" in result.stderr and "world-can-read-this-9f2" not in result.stdout + result.stderr
    secrets.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert deployment.run("outbox", "status").returncode == 0


# --- a refused file stores nothing ------------------------------------------------------------------


def _broken_whatsapp(folder: Path) -> Path:
    good = (COMMUNITY_EXPORTS / "whatsapp_android_id_24h.txt").read_bytes()
    path = folder / "chat.txt"
    path.write_bytes(good + b"13/03/24 17.00 - Budi Santoso: rusak \xff\xfe\n")
    return path


def _broken_telegram(folder: Path) -> Path:
    good = (COMMUNITY_EXPORTS / "telegram_single_chat.json").read_bytes()
    path = folder / "result.json"
    path.write_bytes(good[: len(good) * 2 // 3])
    return path


def _broken_jsonl(folder: Path) -> Path:
    good = (ROOT / "lms_bridge" / "demo" / "data" / "activities.jsonl").read_bytes()
    path = folder / "activities.jsonl"
    path.write_bytes(good + b'{"kind": "course_completed", "native_id": 1\n')
    return path


@pytest.mark.parametrize(
    ("make", "options"),
    [
        (_broken_whatsapp, ["--community", "cop-proof"]),
        (_broken_telegram, ["--community", "cop-proof", "--source", "telegram"]),
        (_broken_jsonl, []),
    ],
    ids=["whatsapp", "telegram", "jsonl"],
)
def test_a_refused_import_writes_nothing(make, options):
    deployment = make_deployment("refused-import", lrs_url="http://127.0.0.1:9/xAPI/")
    path = make(deployment.dir)
    result = deployment.run("import", str(path), *options, check=False)
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and path.name in last and "Traceback" not in result.stderr
    assert re.search(r"line \d+|offset \d+|\bat\b", last), last  # a position
    assert deployment.query("select count(*) from outbox") in ([], [(0,)])
    assert deployment.query("select count(*) from cursors") in ([], [(0,)])
    assert deployment.query("select count(*) from evidence") in ([], [(0,)])


# --- live connectors: Telegram Bot API, Zoom Reports API, Google Classroom ---------------------------
#
# The readers' mapping is reached through their real HTTP-answer handling: a canned session hands each
# request the bytes a fake server would send (a real-shape answer, mutated), so the JSON decoding, the
# answer checks, the paging and the record mapping all run. The fakes' own HTTP is exercised by the
# live fault and crash proofs (test_live_faults.py, test_live_crash.py); here only speed matters.

LIVE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://lms-bridge.id/xapi")
LIVE_BUILDER = StatementSettings(
    namespace=LIVE_NAMESPACE, base_iri="https://lms-bridge.id/xapi", vocabulary=load_vocabulary()
)
LIVE_ACTOR = {"objectType": "Agent", "account": {"homePage": "https://lms-bridge.id", "name": "fuzz-pseudonym"}}
#: Odd values of the shapes live APIs send: epoch seconds out of range, bad ISO dates, ids of every type.
LIVE_WEIRD = [
    *WEIRD,
    10**18,
    -(10**18),
    2**64,
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-12:00",
    "2024-02-30T10:00:00Z",
    "2024-03-12",
    "2024-03-12T25:61:00Z",
    "P99999999999999999999W",
    "PT-1S",
    "-100",
    "١٢٣",
    "12/03/2024 09:05",
]


def mutated_live(originals: list[Any]) -> st.SearchStrategy[Any]:
    """A real-shape API answer with one to four values replaced by odd ones (dates, sizes), or keys removed."""
    return mutated_json(originals, weird=LIVE_WEIRD, most=4)


def _body(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")


class _CannedSession:
    """Stands in for the readers' ``requests.Session``: ``answer(method, url)`` gives (status, body).

    The readers take their session as an argument, so nothing in ``requests`` is patched; the
    Response objects are built the way the Moodle client test above builds them.
    """

    def __init__(self, answer) -> None:  # type: ignore[no-untyped-def]
        self.answer = answer

    def _respond(self, method: str, url: str) -> requests.Response:
        status, body = self.answer(method, url)
        return _response(status, body)

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self._respond("GET", url)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self._respond("POST", url)

    def close(self) -> None:
        pass


def _check_pages(pages: list[LivePage]) -> None:
    """Each record read is an activity or a counted skip, and each activity builds (or is refused) cleanly."""
    for page in pages:
        for activity in page.activities:
            try:
                built = build_statement(LIVE_BUILDER, activity, LIVE_ACTOR)
            except StatementValidationError:
                continue  # the pipeline counts it as invalid and goes on
            built.body.encode("utf-8")  # what the database must hold
            activity.to_json().encode("utf-8")  # the evidence row


# Telegram: getUpdates answers ------------------------------------------------------------------------

TG_TOKEN = "7001234567:AAH-tg-fuzz-token-3b9d"  # noqa: S105 - never sent anywhere
TG_SUPERGROUP, TG_BASIC = group(-1001000000001, "CoP Widyaiswara"), group(-1000000002, "CoP Dasar", "group")
TG_SETTINGS = telegram_bot.TelegramBotSettings(
    id="tg-fuzz",
    token_env="TG_FUZZ_TOKEN",
    api_url="http://127.0.0.1:9",
    max_retries=0,
    backoff_base=0,
    chats={-1001000000001: "cop-a", -1000000002: "cop-b"},
)


def _tg_message(message_id: int, chat: dict, **fields: Any) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "date": 1710209700 + message_id,
        "chat": chat,
        "from": user(100000000 + message_id % 4),
        **fields,
    }


TG_UPDATES = [
    {"update_id": 100000001, "message": _tg_message(2, TG_SUPERGROUP, text="Topik hari ini")},
    {
        "update_id": 100000002,
        "message": _tg_message(
            3, TG_SUPERGROUP, text="Setuju", reply_to_message=_tg_message(2, TG_SUPERGROUP, text="x")
        ),
    },
    {"update_id": 100000003, "message": _tg_message(4, TG_SUPERGROUP, video_chat_ended={"duration": 3600})},
    {"update_id": 100000004, "message": _tg_message(5, TG_BASIC, new_chat_members=[user(100000009)])},
    {
        "update_id": 100000005,
        "edited_message": {
            **_tg_message(6, TG_BASIC, caption="foto"),
            "edit_date": 1710299999,
            "photo": [{"file_id": "AgAD", "width": 90, "height": 90}],
        },
    },
    {"update_id": 100000006, "message": {**_tg_message(7, TG_SUPERGROUP, text="admin"), "sender_chat": TG_SUPERGROUP}},
    {"update_id": 100000007, "message": _tg_message(8, group(-1009999999999, "Other"), text="elsewhere")},
    {"update_id": 100000008, "message": _tg_message(9, {"id": 100000001, "type": "private"}, text="dm")},
    {"update_id": 100000009, "my_chat_member": {"chat": TG_SUPERGROUP}},
]
TG_ANSWERS = [{"ok": True, "result": TG_UPDATES[:5]}, {"ok": True, "result": TG_UPDATES[5:]}]
TG_STATUSES = [200, 200, 200, 200, 400, 401, 404, 409, 429, 500, 502]


def _read_telegram_answers(answers: list[tuple[int, bytes]]) -> list[LivePage]:
    """Read the updates stream over ``answers`` (then an empty poll); check every page's counts."""
    queue = list(answers)
    session = _CannedSession(lambda method, url: queue.pop(0) if queue else (200, b'{"ok":true,"result":[]}'))
    reader = telegram_bot.TelegramBotReader(
        TG_SETTINGS,
        SecretStr(TG_TOKEN),
        PSEUDONYMIZE,
        session,  # type: ignore[arg-type]
        sleep=lambda seconds: None,
    )
    pages = list(reader.read(telegram_bot.STREAM, None))
    for page in pages:
        assert len(page.activities) + sum(page.skipped.values()) == page.read, page.skipped  # a counted skip
        assert isinstance(page.position, dict) and isinstance(page.position["offset"], int)
    _check_pages(pages)
    return pages


def test_the_telegram_answers_read_cleanly():
    pages = _read_telegram_answers([(200, _body(answer)) for answer in TG_ANSWERS])
    kinds = sorted(activity.kind.value for page in pages for activity in page.activities)
    assert kinds == ["meeting_attended", "message_posted", "message_posted", "message_replied"]
    assert pages[-1].position == {"offset": 100000010}


@FUZZ
@given(data=st.data())
def test_telegram_bot_reader_raises_only_project_errors_on_mutated_answers(data):
    index = data.draw(st.sampled_from([0, 1]))
    body = data.draw(
        st.one_of(
            mutated_live([TG_ANSWERS[index]]).map(_body),
            st.lists(mutated_live(TG_UPDATES), min_size=1, max_size=4).map(lambda u: _body({"ok": True, "result": u})),
            mutated_bytes([_body(TG_ANSWERS[index])]),
            st.binary(max_size=500),
        )
    )
    answers = [(200, _body(TG_ANSWERS[0]))] if index else []
    answers.append((data.draw(st.sampled_from(TG_STATUSES)), body))
    _only_project_errors(lambda: _read_telegram_answers(answers), "tg-fuzz")


# Zoom: meeting lists and participant records ---------------------------------------------------------

ZOOM_TODAY = date(2024, 3, 20)
ZOOM_SETTINGS = zoom_api.ZoomSettings(
    id="zoom-fuzz",
    type="zoom_api",
    account_id="acc",
    client_id="cid",
    client_secret_env="ZOOM_FUZZ_SECRET",
    users=[{"user": "host@example.org", "community": "cop-x"}],
    api_url="http://127.0.0.1:9/v2",
    oauth_url="http://127.0.0.1:9",
    initial_days=10,
    max_attempts=1,
    backoff_base=0,
)


def _zoom_answers() -> tuple[dict[str, Any], dict[str, Any]]:
    """A meeting list (a meeting and a webinar) and a participants answer, in the fake's shapes."""
    fake = FakeZoom(account_id="acc", client_id="cid", client_secret="unused")  # noqa: S106 - never started
    people = [
        {
            "user_email": "budi.s@example.org",
            "name": "Budi",
            "join_time": "2024-03-12T01:58:01Z",
            "leave_time": "2024-03-12T03:01:30Z",
            "duration": 3809,
        },
        {
            "user_email": "budi.s@example.org",
            "name": "Budi",
            "join_time": "2024-03-12T03:05:12Z",
            "leave_time": "2024-03-12T04:02:40Z",
            "duration": 3448,
        },
        {
            "user_email": "",
            "name": "Siti R",
            "join_time": "2024-03-12T02:10:00Z",
            "leave_time": "2024-03-12T03:40:00Z",
            "duration": 5400,
        },
        {
            "user_email": "",
            "name": "Tamu",
            "join_time": "2024-03-12T02:10:00Z",
            "leave_time": "2024-03-12T02:12:00Z",
            "duration": 120,
            "status": "in_waiting_room",
        },
    ]
    fake.add_meeting(
        "host@example.org",
        meeting_id=81200000001,
        uuid="4a/Zk+9QyW2m//bA1x==",
        topic="Webinar",
        start="2024-03-12T01:55:10Z",
        end="2024-03-12T04:02:40Z",
        participants=people,
    )
    fake.add_meeting(
        "host@example.org",
        meeting_id=81200000002,
        uuid="bB2c",
        topic="Diskusi",
        start="2024-03-13T01:55:10Z",
        end="2024-03-13T04:02:40Z",
        participants=people[:2],
        meeting_type=5,
    )
    meetings = {
        "from": "2024-03-10",
        "to": "2024-03-20",
        "page_count": 1,
        "page_size": 300,
        "total_records": 2,
        "next_page_token": "",
        "meetings": fake.meetings["host@example.org"],
    }
    participants = {
        "page_count": 1,
        "page_size": 300,
        "total_records": 4,
        "next_page_token": "",
        "participants": fake.participants["4a/Zk+9QyW2m//bA1x=="],
    }
    return meetings, participants


ZOOM_MEETINGS, ZOOM_PARTICIPANTS = _zoom_answers()
ZOOM_TOKEN_ANSWER = {"access_token": "zoom-fuzz-access-token-1", "token_type": "bearer", "expires_in": 3599}
HTTP_STATUSES = [200, 200, 200, 200, 400, 401, 403, 404, 429, 500, 502]


def _read_zoom(
    meetings: tuple[int, bytes],
    participants: tuple[int, bytes],
    token: tuple[int, bytes] = (200, _body(ZOOM_TOKEN_ANSWER)),
) -> list[LivePage]:
    def answer(method: str, url: str) -> tuple[int, bytes]:
        if url.endswith("/oauth/token"):
            return token
        return participants if "/participants" in url else meetings

    client = zoom_api.ZoomClient(
        ZOOM_SETTINGS, SecretStr("zoom-fuzz-secret"), sleep=lambda seconds: None, session=_CannedSession(answer)
    )  # type: ignore[arg-type]
    reader = zoom_api.ZoomReader(ZOOM_SETTINGS, client, PSEUDONYMIZE, JAKARTA, today=lambda: ZOOM_TODAY)
    pages = list(reader.read(zoom_api.STREAM, None))
    assert pages[-1].position == {"through": ZOOM_TODAY.isoformat()}
    _check_pages(pages)
    return pages


def test_the_zoom_answers_read_cleanly():
    pages = _read_zoom((200, _body(ZOOM_MEETINGS)), (200, _body(ZOOM_PARTICIPANTS)))
    assert sum(len(page.activities) for page in pages) == 4  # 2 people in each of the 2 sessions


@FUZZ
@given(data=st.data())
def test_zoom_reader_raises_only_project_errors_on_mutated_answers(data):
    meetings, participants, token = _body(ZOOM_MEETINGS), _body(ZOOM_PARTICIPANTS), _body(ZOOM_TOKEN_ANSWER)
    target = data.draw(st.sampled_from(["meetings", "participants", "participants", "token"]))
    original = {"meetings": ZOOM_MEETINGS, "participants": ZOOM_PARTICIPANTS, "token": ZOOM_TOKEN_ANSWER}[target]
    body = data.draw(
        st.one_of(mutated_live([original]).map(_body), mutated_bytes([_body(original)]), st.binary(max_size=300))
    )
    status = data.draw(st.sampled_from(HTTP_STATUSES))
    answers = {"meetings": (200, meetings), "participants": (200, participants), "token": (200, token)}
    answers[target] = (status, body)
    _only_project_errors(
        lambda: _read_zoom(answers["meetings"], answers["participants"], answers["token"]), "zoom-fuzz"
    )


# Google Classroom: courses, submissions, students, announcements, profiles ---------------------------

CLASSROOM_SETTINGS = google_classroom.ClassroomSettings(
    id="classroom-fuzz",
    type="google_classroom",
    key_file=Path("unused.json"),
    subject="admin@example.org",
    api_url="http://127.0.0.1:9",
    max_attempts=1,
    backoff_base=0,
    communities={"c2": "cop-wi"},
)


def _classroom_answers() -> dict[str, dict[str, Any]]:
    """One answer per endpoint, in the fake's shapes (keyed by the last path segment)."""
    fake = FakeClassroom(public_pem=b"", client_email="sa@example.org", subject="admin@example.org")
    fake.add_course("c1", "Pelatihan Dasar CPNS")
    fake.add_course("c2", "Komunitas Widyaiswara")
    fake.add_student("c1", "u1", "budi.s@example.org", "Budi Santoso")
    fake.add_student("c1", "u2", None, "Tanpa Email")
    fake.add_profile("t1", "dewi.l@example.org", "Dewi Lestari")
    fake.add_submission("c1", "w1", "u1", "Tugas 1", turned_in="2024-03-12T02:00:00Z")
    fake.add_submission(
        "c1", "w2", "u2", "Tugas 2", turned_in="2024-03-12T03:00:00Z", state="RETURNED", updated="2024-03-13T03:00:00Z"
    )
    fake.add_announcement("c2", "a1", "t1", "Selamat datang", "2024-03-12T01:00:00Z")
    fake.add_announcement("c2", "a2", "t1", "Jadwal diskusi", "2024-03-13T01:00:00Z", "2024-03-14T01:00:00Z")
    return {
        "courses": {"courses": fake.courses},
        "studentSubmissions": {"studentSubmissions": fake.submissions["c1"]},
        "courseWork": {"courseWork": fake.course_work["c1"]},
        "students": {"students": fake.students["c1"]},
        "announcements": {"announcements": fake.announcements["c2"][::-1]},
        "profile": fake.profiles["t1"],
        "token": {"access_token": "ya29.classroom-fuzz-token", "expires_in": 3599, "token_type": "Bearer"},
    }


CLASSROOM_ANSWERS = _classroom_answers()


@functools.cache
def _classroom_key() -> dict[str, Any]:
    return {**shared_service_account()[0], "token_uri": "http://127.0.0.1:9/token"}


def _classroom_endpoint(url: str) -> str:
    if url.endswith("/token"):
        return "token"
    if "/userProfiles/" in url:
        return "profile"
    return url.rstrip("/").rsplit("/", 1)[-1]


def _read_classroom(answers: dict[str, tuple[int, bytes]]) -> list[LivePage]:
    client = google_classroom.ClassroomClient(CLASSROOM_SETTINGS, _classroom_key(), sleep=lambda seconds: None)
    client.session.close()
    client.session = _CannedSession(lambda method, url: answers[_classroom_endpoint(url)])  # type: ignore[assignment]
    reader = google_classroom.ClassroomReader(
        CLASSROOM_SETTINGS, client, PSEUDONYMIZE, now=lambda: datetime(2024, 3, 20, tzinfo=UTC)
    )
    pages = []
    for stream in google_classroom.STREAMS:
        for start in (None, {"courses": {"c1": "2024-03-12T02:30:00.000Z", "c2": "2024-03-12T01:00:00.000Z"}}):
            pages.extend(reader.read(stream, start))
    _check_pages(pages)
    return pages


def test_the_classroom_answers_read_cleanly():
    pages = _read_classroom({name: (200, _body(answer)) for name, answer in CLASSROOM_ANSWERS.items()})
    kinds = {activity.kind.value for page in pages for activity in page.activities}
    assert kinds == {"module_completed", "post_created"}  # every course answers the same canned records


@FUZZ
@given(data=st.data())
def test_classroom_reader_raises_only_project_errors_on_mutated_answers(data):
    target = data.draw(st.sampled_from(sorted(CLASSROOM_ANSWERS)))
    original = CLASSROOM_ANSWERS[target]
    body = data.draw(
        st.one_of(
            mutated_live([original]).map(_body),
            mutated_live([original]).map(_body),
            mutated_bytes([_body(original)]),
            st.binary(max_size=300),
        )
    )
    answers = {name: (200, _body(answer)) for name, answer in CLASSROOM_ANSWERS.items()}
    answers[target] = (data.draw(st.sampled_from(HTTP_STATUSES)), body)
    _only_project_errors(lambda: _read_classroom(answers), "classroom-fuzz")


# The LRS source: foreign statements, voids among them ------------------------------------------------

LRS_MAPPER = lrs_source.StatementMapper("lrs-fuzz", LIVE_BUILDER.vocabulary, LIVE_BUILDER.base_iri)
_FOREIGN = {
    "id": "5f0c9a52-9a38-4c61-9d0e-0c7a5f0b6d11",
    "actor": {"objectType": "Agent", "account": {"homePage": "https://siasn.bkn.go.id", "name": "198805172014032004"}},
    "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}},
    "object": {
        "objectType": "Activity",
        "id": "https://lms.other.go.id/course/42",
        "definition": {"type": "https://w3id.org/xapi/cmi5/activitytype/course", "name": {"en-US": "Latsar CPNS"}},
    },
    "result": {"success": True, "duration": "PT1H30M"},
    "context": {
        "contextActivities": {
            "parent": [
                {
                    "id": "https://lms.other.go.id/course/41",
                    "definition": {"type": "https://w3id.org/xapi/cmi5/activitytype/course"},
                }
            ],
            "grouping": [
                {
                    "id": "https://lms.other.go.id/cop/7",
                    "definition": {"type": "http://id.tincanapi.com/activitytype/community-site"},
                }
            ],
        }
    },
    "timestamp": "2026-03-02T04:00:00Z",
    "stored": "2026-03-02T05:00:00.123456+00:00",
}
FOREIGN_STATEMENTS = [
    _FOREIGN,
    {
        **_FOREIGN,
        "id": "7a1d",
        "actor": {"objectType": "Agent", "mbox": "mailto:budi.s@example.org"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/attended"},
        "object": {
            "id": "https://meet.example.org/m/1",
            "definition": {"type": "http://adlnet.gov/expapi/activities/meeting"},
        },
    },
    {
        **_FOREIGN,
        "id": "9c3e",
        "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
        "object": {"objectType": "StatementRef", "id": "5f0c9a52-9a38-4c61-9d0e-0c7a5f0b6d11"},
    },
]


def _map_foreign(statement: Any) -> None:
    target = LRS_MAPPER.voided_target(statement)
    if target is not None:
        assert len(LRS_MAPPER.copy_keys(target)) >= 1
    mapped = LRS_MAPPER.map(statement)
    if isinstance(mapped, lrs_source.Skip):
        return
    assert mapped.natural_key.startswith("lrs|lrs-fuzz|")
    _check_pages([LivePage(activities=[mapped])])


def test_the_foreign_statements_map_cleanly():
    assert isinstance(LRS_MAPPER.map(FOREIGN_STATEMENTS[0]), Activity)
    assert isinstance(LRS_MAPPER.map(FOREIGN_STATEMENTS[1]), Activity)
    assert LRS_MAPPER.map(FOREIGN_STATEMENTS[2]) is lrs_source.Skip.VOIDING


@FUZZ
@given(statement=mutated_live(FOREIGN_STATEMENTS))
def test_lrs_source_mapper_raises_only_project_errors_on_mutated_statements(statement):
    _only_project_errors(lambda: _map_foreign(statement))


# The inputs that crashed a live reader before it was fixed (each raised KeyError/TypeError/OverflowError/
# UnicodeEncodeError, or looped forever), kept as examples.


def _zoom_with(target: str, edit) -> tuple[dict[str, Any], dict[str, Any]]:  # type: ignore[no-untyped-def]
    meetings, participants = copy.deepcopy(ZOOM_MEETINGS), copy.deepcopy(ZOOM_PARTICIPANTS)
    edit(meetings if target == "meetings" else participants)
    return meetings, participants


@pytest.mark.parametrize(
    "answers",
    [
        _zoom_with("participants", lambda data: data["participants"][0].update(duration=10**18)),
        _zoom_with("meetings", lambda data: data["meetings"][0].update(start_time="9999-12-31T23:59:59Z")),
        _zoom_with("participants", lambda data: data["participants"][0].update(join_time="0001-01-01T00:00:00Z")),
        _zoom_with("meetings", lambda data: data.update(next_page_token="abc")),
    ],
    ids=["zoom-duration-1e18", "zoom-start-9999", "zoom-join-year-1", "zoom-page-token-repeated"],
)
def test_zoom_examples_that_crashed(answers):
    _only_project_errors(lambda: _read_zoom((200, _body(answers[0])), (200, _body(answers[1]))), "zoom-fuzz")


def test_a_classroom_submission_history_that_is_not_a_list_is_read():
    answers = {name: (200, _body(answer)) for name, answer in CLASSROOM_ANSWERS.items()}
    submissions = copy.deepcopy(CLASSROOM_ANSWERS["studentSubmissions"])
    submissions["studentSubmissions"][1]["submissionHistory"] = -1
    answers["studentSubmissions"] = (200, _body(submissions))
    assert any(page.activities for page in _read_classroom(answers))


@pytest.mark.parametrize(
    "edit",
    [
        lambda message: message.update(date=10**13),
        lambda message: message.update(date=-(10**13)),
        lambda message: message["chat"].update(title="CoP \ud83d"),
    ],
    ids=["telegram-date-year-318857", "telegram-date-negative", "telegram-lone-surrogate"],
)
def test_telegram_examples_that_crashed(edit):
    answer = copy.deepcopy(TG_ANSWERS[0])
    edit(answer["result"][0]["message"])
    _only_project_errors(lambda: _read_telegram_answers([(200, _body(answer))]), "tg-fuzz")


@pytest.mark.parametrize(
    ("statement", "malformed"),
    [
        ({**_FOREIGN, "timestamp": "0001-01-01T00:00:00+01:00", "stored": "9999-12-31T23:59:59-01:00"}, True),
        ({**_FOREIGN, "result": {"duration": "P99999999999999999999W"}}, False),  # mapped, without a duration
        ({**_FOREIGN, "actor": {"objectType": "Agent", "mbox": "mailto:\ud83d@example.org"}}, True),
        ({**_FOREIGN, "id": "5f0c9a52-\udc00"}, True),
    ],
    ids=["lrs-time-year-1", "lrs-duration-huge", "lrs-mbox-lone-surrogate", "lrs-id-lone-surrogate"],
)
def test_lrs_source_examples_that_crashed(statement, malformed):
    mapped = LRS_MAPPER.map(statement)
    assert mapped is lrs_source.Skip.MALFORMED if malformed else isinstance(mapped, Activity) and not mapped.duration
    _map_foreign(statement)
