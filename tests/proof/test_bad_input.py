"""Bad input: hypothesis bytes and mutated real fixtures into every parser.

Every parser must answer a broken input with the project's own error (an ``LmsBridgeError``
subclass) naming the file, never with another exception, and a refused file stores nothing.
Parsers: Moodle REST JSON/XML (the client) and the Moodle streams reading the parsed records,
WhatsApp, Telegram, Zoom/Meet/Teams attendance, the HR roster, the JP rule and program-JP TOML
files, activity files (JSON Lines), LMS completion reports and their column mappings, and the
configuration's secrets file.

Examples are derandomised so CI is repeatable; ``PROOF_FUZZ_RANDOM=1 PROOF_FUZZ_EXAMPLES=2000`` explores more.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors import attendance, jsonl, lms_csv, telegram, whatsapp
from connectors.moodle import streams as moodle_streams
from connectors.moodle.client import MoodleClient
from lms_bridge import store
from lms_bridge.config import load_settings
from lms_bridge.errors import ConfigError, LmsBridgeError
from lms_bridge.pseudonym import make_pseudonymizer
from lms_bridge.roster import import_roster
from lms_bridge.rules import load_program_jp, load_rules
from tests.fixtures.shared import COMMUNITY_FIXTURES, MOODLE_FIXTURES
from tests.proof.support import ROOT, SITE, make_deployment, workdir

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
LOCAL_DATA = ROOT / "tests" / "data" / "community"


@functools.cache
def scratch() -> Path:
    """The folder fuzzed files are written to (made on first use, not at collection)."""
    return workdir("fuzz")

#: Byte strings that make parsers think: separators, quotes, headers, huge or negative numbers, bad UTF-8.
TOKENS = [b"\x00", b"\xff\xfe", b"\xc3", b'"', b",", b";", b"\t", b"\n", b"\r\n", b"{", b"}", b"[", b"]", b":",
          b"<", b">", b"&amp;", b"null", b"-1", b"0", b"99999999999999999999", b"1e400", b"NaN",
          b"31/02/26 25.61 - ", b"[13/13/24, 99:99:99] ", b"\xe2\x80\x8e", b"\xef\xbb\xbf", b"=", b"'''", b"\\u0000"]
#: Values a structured mutation puts in a JSON document.
WEIRD = [None, "", "abc", "1e5", -1, 0, 2**63, 10**13, -(10**13), 1.5, float("inf"), True, [], {}, ["x"],
         {"a": 1}, "\u202e\ud83d", "x" * 3000]


def files(*patterns: str, folders: tuple[Path, ...] = (COMMUNITY_FIXTURES, LOCAL_DATA)) -> list[Path]:
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
            del data[position:position + draw(st.integers(1, 80))]
        elif operation == "insert":
            data[position:position] = draw(st.sampled_from(TOKENS))
        elif operation == "truncate":
            del data[position:]
        else:
            data[position:position] = data[position:position + draw(st.integers(1, 300))]
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
def mutated_json(draw: st.DrawFn, originals: list[Any]) -> Any:
    """A real JSON document with one to three values replaced by odd ones, or keys removed."""
    document = copy.deepcopy(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(document))))
        if not path:
            return copy.deepcopy(draw(st.sampled_from(WEIRD)))
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(WEIRD)))
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

MOODLE_BODIES = {fmt: [p.read_bytes() for p in sorted(MOODLE_FIXTURES.glob(f"*.{fmt}"))] for fmt in ("json", "xml")}


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
    return json.loads((MOODLE_FIXTURES / name).read_text(encoding="utf-8"))


def _moodle_responses() -> dict[str, Any]:
    courses = [c for c in _fixture("core_course_get_courses.json") if c["id"] in (1, 66, 77)]
    discussions = _fixture("mod_forum_get_forum_discussions.json")
    discussions["discussions"] = discussions["discussions"][:3]
    return {
        "core_course_get_courses": courses,
        "mod_bigbluebuttonbn_get_bigbluebuttonbns_by_courses":
            _fixture("mod_bigbluebuttonbn_get_bigbluebuttonbns_by_courses.json"),
        "core_enrol_get_enrolled_users": _fixture("core_enrol_get_enrolled_users__latsar_userfields_page.json")[:3],
        "core_completion_get_course_completion_status": _fixture("core_completion_get_course_completion_status.json"),
        "core_completion_get_activities_completion_status":
            _fixture("core_completion_get_activities_completion_status.json"),
        "mod_forum_get_forums_by_courses": _fixture("mod_forum_get_forums_by_courses.json")[:2],
        "mod_forum_get_forum_discussions": discussions,
        "mod_forum_get_discussion_posts": _fixture("mod_forum_get_discussion_posts.json"),
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
    for stream in (moodle_streams.CoursesStream(), moodle_streams.WebinarsStream(),
                   moodle_streams.EnrolledUsersStream(50), moodle_streams.CourseCompletionsStream(50, 1),
                   moodle_streams.ActivityCompletionsStream(50, 1), moodle_streams.ForumPostsStream(10)):
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


@pytest.mark.parametrize("responses", [
    _with("mod_forum_get_discussion_posts", _set_post_field("timecreated", "abc")),
    _with("mod_forum_get_discussion_posts", _set_post_field("timecreated", 10**13)),
    _with("mod_forum_get_discussion_posts", lambda data: data["posts"]),
    _with("core_course_get_courses", lambda data: [{**data[1], "id": "1e5"}]),
], ids=["post-time-not-a-number", "post-time-out-of-range", "posts-as-a-list", "course-id-1e5"])
def test_moodle_record_examples_raise_only_project_errors(responses):
    _only_project_errors(lambda: _read_all_streams(responses))


# --- chat exports ---------------------------------------------------------------------------------

WHATSAPP = [p.read_bytes() for p in files("whatsapp_*.txt", "whatsapp_*.zip")]


@FUZZ
@given(data=st.one_of(st.binary(max_size=3000), mutated_bytes(WHATSAPP)))
def test_whatsapp_reader_raises_only_input_errors(data):
    path = _write("chat.zip" if data.startswith(b"PK") else "chat.txt", data)
    _only_project_errors(lambda: list(whatsapp.read_whatsapp(path, site=SITE, pseudonymize=PSEUDONYMIZE, tz=JAKARTA)),
                         path.name)


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
CELLS = ["", "-", "0", "-1", "99999", "31/02/2026 25:61", "13/13/2026 10:00 AM", "2026-02-30 10:00:00",
         "1h 99m 99s", "Yes", "\u200e", '"', "=1+1", "x" * 500]


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

ROSTER = [(COMMUNITY_FIXTURES / "roster.csv").read_bytes()]


@functools.cache
def roster_engine():  # type: ignore[no-untyped-def]
    return store.open_engine(f"sqlite:///{scratch() / 'roster.db'}")


@FUZZ
@given(data=st.one_of(st.binary(max_size=2000), mutated_bytes(ROSTER), mutated_cells(ROSTER)))
def test_roster_import_raises_only_input_errors(data):
    path = _write("roster.csv", data)
    _only_project_errors(lambda: import_roster(roster_engine(), path, PSEUDONYMIZE, dry_run=True), path.name)


# --- TOML: JP rules, program JP, LMS report mappings ----------------------------------------------

TOML_VALUES = ['""', '"x"', "-1", "0", "1e400", "nan", "inf", "true", "[]", "{}", '["x", 1]', '{ jp = "x" }',
               '"1.5"', '"-1"', "1979-05-27", '"(?P<jp>"', "9999999999999999999999", '"C99"']


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
            lines.insert(number, draw(st.sampled_from(["[rules]", "[[rules]]", "extra = 1", "[settings.x]", "=",
                                                         "format = 2", '[sites."x y"]', "\x00"])))
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

LMS_REPORT = (b"ID Kursus,Nama Kursus,Kode Kursus,ID Number,NIP,Email,Tanggal Selesai,JP\r\n"
              b"101,Pelatihan Evaluasi,PT-EVAL,EVAL-JP12,19800512 200501 1 002,budi.s@example.org,"
              b"12/03/2024 09:05,12\r\n"
              b'101,Pelatihan Evaluasi,PT-EVAL,EVAL-JP12,,Siti.R@Example.org,13/03/2024 10:00,"1,5"\r\n'
              b"102,Latsar,,,199202142022211007,,,40\r\n")
EXAMPLE_MAPPING = lms_csv.load_mapping(ROOT / "mappings" / "lms_csv_example.toml")


@FUZZ
@given(data=st.one_of(st.binary(max_size=2000), mutated_bytes([LMS_REPORT]), mutated_cells([LMS_REPORT])))
def test_lms_report_reader_raises_only_input_errors(data):
    path = _write("report.csv", data)
    _only_project_errors(lambda: list(lms_csv.read_lms_csv(path, EXAMPLE_MAPPING, pseudonymize=PSEUDONYMIZE,
                                                           tz=JAKARTA)), path.name)


ACTIVITY_LINES = [json.loads(line) for line in (ROOT / "scripts" / "demo_data" / "activities.jsonl")
                  .read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("#")]


@FUZZ
@given(data=st.one_of(
    st.binary(max_size=2000),
    mutated_bytes([(ROOT / "scripts" / "demo_data" / "activities.jsonl").read_bytes()]),
    st.lists(mutated_json(ACTIVITY_LINES[:20]), min_size=1, max_size=3).map(
        lambda docs: "\n".join(json.dumps(d, ensure_ascii=False) for d in docs).encode("utf-8", "surrogatepass")),
))
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
    good = (COMMUNITY_FIXTURES / "whatsapp_android_id_24h.txt").read_bytes()
    path = folder / "chat.txt"
    path.write_bytes(good + b"13/03/24 17.00 - Budi Santoso: rusak \xff\xfe\n")
    return path


def _broken_telegram(folder: Path) -> Path:
    good = (COMMUNITY_FIXTURES / "telegram_single_chat.json").read_bytes()
    path = folder / "result.json"
    path.write_bytes(good[: len(good) * 2 // 3])
    return path


def _broken_jsonl(folder: Path) -> Path:
    good = (ROOT / "scripts" / "demo_data" / "activities.jsonl").read_bytes()
    path = folder / "activities.jsonl"
    path.write_bytes(good + b'{"kind": "course_completed", "native_id": 1\n')
    return path


@pytest.mark.parametrize(("make", "options"), [
    (_broken_whatsapp, ["--community", "cop-proof"]),
    (_broken_telegram, ["--community", "cop-proof", "--source", "telegram"]),
    (_broken_jsonl, []),
], ids=["whatsapp", "telegram", "jsonl"])
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
