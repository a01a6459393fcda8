"""Issue 20, configuration and files: no credential in a URL, no secret echoed, no raw identifier stored,
nothing world-readable, and one sentence for every bad input of the import, people and config paths.

Each test is a finding of the issue that failed on the code before the fix (noted per test). Commands run
through the console script's own entry point in this process (:mod:`tests.proof.inprocess`), so a few
hundred bad inputs take seconds; their output goes to the final secrets search (``test_zz_secrets``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from lms_bridge.identity.pseudonym import make_pseudonymizer
from lms_bridge.identity.resolver import PSEUDONYMOUS_SOURCES
from tests.fixtures.data import COMMUNITY_EXPORTS
from tests.proof.inprocess import cli

pytestmark = pytest.mark.proof

KEY = "config-proof-key-0123456789abcdef"
PASSWORD = "pw-in-url-5c1e9a"  # noqa: S105 - the value that must never come back


def _config(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lms-bridge.toml"
    path.write_text(f'[state]\nurl = "sqlite:///{folder / "state.db"}"\n{text}', encoding="utf-8")
    return path


# --- credentials inside URLs (item 5) --------------------------------------------------------------

URL_ENTRIES = {
    "moodle site": '[[sources]]\nid = "lms1"\ntype = "moodle"\nurl = "https://admin:{pw}@lms.example.go.id"\n'
    'token_env = "MOODLE_TOKEN"\n',
    "LRS": '[lrs]\nurl = "https://lms-bridge:{pw}@lrs.example.go.id/xAPI/"\n',
    "source LRS": '[[sources]]\nid = "lms-lain"\ntype = "lrs"\nurl = "https://reader:{pw}@lrs.lain.go.id/xAPI/"\n'
    'username = "reader"\npassword_env = "LRS_LAIN"\n',
    "zoom api_url": '[[sources]]\nid = "zoom1"\ntype = "zoom_api"\naccount_id = "a"\nclient_id = "c"\n'
    'client_secret_env = "Z"\nusers = [{{ user = "host@example.go.id", community = "cop-x" }}]\n'
    'api_url = "https://u:{pw}@api.zoom.us/v2"\n',
    "user name only": '[lrs]\nurl = "https://lms-bridge@lrs.example.go.id/xAPI/"\n',
}


@pytest.mark.parametrize("entry", list(URL_ENTRIES), ids=list(URL_ENTRIES))
def test_a_url_with_credentials_is_refused_without_echoing_them(tmp_path, entry):
    # Before: accepted; the password ended in statement ids and actor homePages (so in the LRS),
    # the sites table, `sites list` and a doctor hint.
    config = _config(tmp_path, URL_ENTRIES[entry].format(pw=PASSWORD))
    for command in (("sites", "list"), ("doctor",), ("sync", "--all", "--dry-run")):
        outcome = cli("--config", str(config), *command)
        assert outcome.one_sentence and outcome.code == 2, outcome
        assert "secrets file" in outcome.stderr and "user:password@host" in outcome.stderr
        assert PASSWORD not in outcome.stdout + outcome.stderr
        assert "admin" not in outcome.stderr and "reader:" not in outcome.stderr
    assert not (tmp_path / "state.db").exists()  # refused at load: nothing opened, nothing stored


def test_sites_add_refuses_a_url_with_credentials_and_leaves_the_file_alone(tmp_path):
    config = _config(tmp_path, "")
    before = config.read_bytes()
    outcome = cli(
        "--config", str(config), "sites", "add", "lms1", "--url", f"https://admin:{PASSWORD}@lms.example.go.id",
        "--token-env", "MOODLE_TOKEN",
    )  # fmt: skip
    assert outcome.one_sentence and PASSWORD not in outcome.stderr
    assert config.read_bytes() == before


# --- inline secrets (low) --------------------------------------------------------------------------

SECRET_KEYS = ["key", "passwd", "secret_key", "api_key", "private_key", "db_pass", "client-secret", "auth_token"]


@pytest.mark.parametrize("key", SECRET_KEYS)
@pytest.mark.parametrize(
    "where",
    ['[lrs]\n{key} = "{value}"\n', '[[sources]]\nid = "lms1"\ntype = "moodle"\nurl = "https://lms.example.go.id"\n'
     'token_env = "T"\n{key} = "{value}"\n', '[web]\n{key} = "{value}"\n'],
    ids=["lrs", "source", "web"],
)  # fmt: skip
def test_a_secret_written_into_the_config_is_refused_by_its_key_and_never_echoed(tmp_path, key, where):
    # Before: `key`, `passwd`, `secret_key`, `private_key`... passed the check; `sites list` then printed
    # the value in a validation message.
    value = f"inline-{key}-0a9f"
    config = _config(tmp_path, where.format(key=key, value=value))
    outcome = cli("--config", str(config), "sites", "list")
    assert outcome.one_sentence and outcome.code == 2, outcome
    assert "secrets do not belong in the config file" in outcome.stderr and key in outcome.stderr
    assert value not in outcome.stderr + outcome.stdout


def test_the_settings_that_name_where_a_secret_lives_are_still_accepted(tmp_path):
    config = _config(
        tmp_path,
        '[deployment]\npseudonym_key_env = "K"\n[lrs]\npassword_env = "P"\n[web]\nsecret_key_env = "W"\n'
        '[[sources]]\nid = "cls"\ntype = "google_classroom"\nkey_file = "sa.json"\nsubject = "a@b.go.id"\n',
    )
    outcome = cli("--config", str(config), "sites", "list")
    assert outcome.code == 0, outcome.stderr


WRONG_VALUES = {
    "[lrs] batch_size": '[lrs]\nbatch_size = "{v}"\n',
    "[logging] level": '[logging]\nlevel = "{v}"\n',
    "[deployment] timezone": '[deployment]\ntimezone = "{v}"\n',
    "[deployment] namespace": '[deployment]\nnamespace = "{v}"\n',
    "[[inboxes]] source": '[[inboxes]]\npath = "in"\nsource = "{v}"\n',
    "[[inboxes]] community": '[[inboxes]]\npath = "in"\ncommunity = "{v}"\n',
    "[[sources]] format": '[[sources]]\nid = "lms1"\ntype = "moodle"\nurl = "https://x.go.id"\ntoken_env = "T"\n'
    'format = "{v}"\n',
    "[serve] sync": '[serve]\nsync = "{v}"\n',
    "[report] language": '[report]\nlanguage = "{v}"\n',
}


@pytest.mark.parametrize("entry", list(WRONG_VALUES), ids=list(WRONG_VALUES))
def test_a_config_error_never_echoes_the_value(tmp_path, entry):
    # A value in the wrong place may be a secret pasted into the wrong key: name the key, never the value.
    value = "Pasted-Secret-77e1"
    config = _config(tmp_path, WRONG_VALUES[entry].format(v=value))
    outcome = cli("--config", str(config), "sites", "list")
    assert outcome.one_sentence, outcome
    assert value not in outcome.stderr and value.lower() not in outcome.stderr


# --- activity files: identifiers (item 6) ----------------------------------------------------------


def _activity(source: str, actor: str, number: int, **extra: object) -> str:
    line = {
        "source": source,
        "site": "cop-x",
        "kind": "message_posted",
        "native_id": f"m{number}",
        "actor": actor,
        "object": {"type": "message", "native_id": f"m{number}"},
        "grouping": {"type": "community", "native_id": "cop-x"},
        "occurred_at": "2026-03-02T04:00:00Z",
        **extra,
    }
    return json.dumps(line)


def test_raw_identifiers_in_an_activity_file_are_pseudonymised_like_a_chat_export(tmp_path):
    # Before: a raw phone number as actor was stored, and queued for the LRS, as a "pseudonym".
    config = _config(tmp_path, "")
    pseudonymize = make_pseudonymizer(__import__("pydantic").SecretStr(KEY))
    already = pseudonymize("phone:+6281377770000")
    raw = ["+62 812-0000-1234", "0812 0000 5678", "Budi.S@Example.org", "user100000001", already]
    sources = ["whatsapp", "whatsapp", "zoom", "telegram", "whatsapp"]
    path = tmp_path / "activities.jsonl"
    path.write_text("\n".join(_activity(s, a, n) for n, (s, a) in enumerate(zip(sources, raw, strict=True))) + "\n")

    outcome = cli("--config", str(config), "import", str(path), env={"LMS_BRIDGE_PSEUDONYM_KEY": KEY})
    assert outcome.code == 0, outcome.stderr

    expected = {
        pseudonymize("phone:+6281200001234"),
        pseudonymize("phone:+6281200005678"),
        pseudonymize("email:budi.s@example.org"),
        pseudonymize("telegram:user100000001"),
        already,  # a pseudonym is kept as it is
    }
    with sqlite3.connect(tmp_path / "state.db") as db:
        actors = {row[0] for row in db.execute("SELECT local_actor FROM evidence")}
        bodies = " ".join(row[0] for row in db.execute("SELECT body FROM outbox"))
    assert actors == expected
    dump = (tmp_path / "state.db").read_bytes() + bodies.encode()
    for needle in (b"8120000", b"812-0000", b"budi.s", b"Budi.S", b"100000001"):
        assert needle not in dump


def test_an_activity_file_with_raw_identifiers_needs_the_key(tmp_path):
    config = _config(tmp_path, "")
    path = tmp_path / "activities.jsonl"
    path.write_text(_activity("whatsapp", "+6281200001234", 1) + "\n")
    outcome = cli("--config", str(config), "import", str(path), env={"LMS_BRIDGE_PSEUDONYM_KEY": ""})
    assert outcome.one_sentence and "LMS_BRIDGE_PSEUDONYM_KEY" in outcome.stderr
    assert "6281200001234" not in outcome.stderr


@pytest.mark.parametrize(
    ("line", "what"),
    [
        (_activity("moodle", "budi.s@example.org", 1), "is an e-mail address"),
        (_activity("moodle", "+62 812 0000 1234", 1), "is a phone number"),
        (_activity("moodle", "101", 1, extras={"contact": "budi.s@example.org"}), "extras.contact"),
    ],
    ids=["account-email", "account-phone", "extras-email"],
)
def test_raw_contact_data_where_no_pseudonym_belongs_is_refused_and_nothing_is_stored(tmp_path, line, what):
    # A Moodle-like actor becomes an account name in the LRS, which cannot delete: refuse, never echo.
    config = _config(tmp_path, "")
    path = tmp_path / "activities.jsonl"
    path.write_text(_activity("moodle", "102", 0) + "\n" + line + "\n")
    outcome = cli("--config", str(config), "import", str(path), env={"LMS_BRIDGE_PSEUDONYM_KEY": KEY})
    assert outcome.one_sentence and "line 2" in outcome.stderr and what in outcome.stderr, outcome
    assert "budi" not in outcome.stderr and "0000" not in outcome.stderr
    if (tmp_path / "state.db").exists():
        with sqlite3.connect(tmp_path / "state.db") as db:
            assert db.execute("SELECT count(*) FROM outbox").fetchone() == (0,)


def test_the_activity_file_reader_knows_every_pseudonymous_source():
    from connectors.jsonl import PSEUDONYMOUS_SOURCES as JSONL_SOURCES

    assert JSONL_SOURCES == PSEUDONYMOUS_SOURCES


# --- file modes (low) ------------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_state_database_and_what_the_cli_writes_are_owner_only(tmp_path, monkeypatch):
    # Before: state.db, its -wal/-shm, reports and new config files followed the umask (0644).
    config = _config(tmp_path / "deploy", "")
    assert cli("--config", str(config), "db", "upgrade").code == 0
    db = tmp_path / "deploy" / "state.db"
    with sqlite3.connect(db) as connection:  # opened again by SQLite itself: its -wal and -shm follow the file
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE probe (x)")
        companions = [db.with_name(db.name + suffix) for suffix in ("-wal", "-shm")]
        assert all(p.exists() for p in companions)
        assert {p.name: _mode(p) for p in (db, *companions)} == {p.name: 0o600 for p in (db, *companions)}
    new_config = tmp_path / "fresh" / "lms-bridge.toml"
    new_config.parent.mkdir()
    monkeypatch.chdir(new_config.parent)  # `sites add` without a config file makes ./lms-bridge.toml
    monkeypatch.delenv("LMS_BRIDGE_CONFIG", raising=False)
    outcome = cli("sites", "add", "lms1", "--url", "https://lms.example.go.id", "--token-env", "MOODLE_TOKEN")
    assert outcome.code == 0, outcome.stderr
    assert _mode(new_config) == 0o600


def test_an_existing_world_readable_state_database_is_narrowed(tmp_path):
    config = _config(tmp_path, "")
    db = tmp_path / "state.db"
    sqlite3.connect(db).close()
    db.chmod(0o644)
    assert cli("--config", str(config), "db", "status").code in (0, 2)
    assert _mode(db) == 0o600


# --- bad inputs into the CLI (low): one sentence each, nothing stored --------------------------------

BAD_INPUTS: dict[str, bytes] = {
    "empty": b"",
    "binary garbage": bytes(range(256)) * 8,
    "UTF-16 with BOM": "nip,nama\n199001012015031001,Budi\n".encode("utf-16"),
    "UTF-16 without BOM": "nip,nama\n199001012015031001,Budi\n".encode("utf-16-be"),
    "UTF-8 BOM only": b"\xef\xbb\xbf",
    "UTF-8 BOM and junk": b"\xef\xbb\xbfhello\n",
    "NUL bytes": b"\x00" * 100,
    "Latin-1": "nama;unit\nBudi Gunawan \xe9\n".encode("latin-1"),
    "blank lines": b"\r\n\r\n",
    "huge line": b"a" * 3_000_000,
    "JSON array": b"[1,2,3]",
    "JSON nested 100,000 deep": b"[" * 100_000,
    "JSON of the wrong shape": b'{"kind": 1}\n',
    "zip header only": b"PK\x03\x04" + b"\x00" * 50,
}
BAD_CONFIGS: dict[str, bytes] = {
    "not TOML": b"[state\nurl=",
    "wrong types": b'[lrs]\nbatch_size = "many"\n',
    "state not a string": b"[state]\nurl = 5\n",
    "inboxes not a list": b"inboxes = 5\n",
    "source id a number": b'[[sources]]\nid = 7\ntype = "moodle"\n',
    "targets a string": b'[report]\ntargets = "x"\n',
    "sources a string": b'sources = "x"\n',
    "namespace not a UUID": b'[deployment]\nnamespace = "nope"\n',
    "section a number": b"state = 1\n",
    "inbox path a number": b"[[inboxes]]\npath = 3\n",
    "UTF-16 TOML": '[lrs]\nbatch_size = "x"\n'.encode("utf-16"),
    "binary garbage": bytes(range(256)),
    "Latin-1 TOML": '[report]\ninstitution = "Dinas Pendidikan \xe9"\n'.encode("latin-1"),
}
SUFFIXES = (".txt", ".json", ".csv", ".jsonl", ".zip")
FORCED = ("whatsapp", "telegram", "zoom", "meet", "teams", "jsonl")
#: Empty inputs some commands may accept (nothing to read is nothing lost; an empty config file is the
#: defaults, which `sites list` shows as no sites); all others must be refused.
MAY_SUCCEED = {
    ("outbox import", "empty"),
    ("outbox import", "blank lines"),
    ("config for sites", "UTF-8 BOM only"),
    ("config for sites", "blank lines"),
}


def _dump(db: Path) -> list[str]:
    with sqlite3.connect(db) as connection:
        return list(connection.iterdump())


def test_bad_inputs_get_one_sentence_and_store_nothing(tmp_path):
    # Before: the deep JSON gave "unexpected RecursionError", a non-UTF-8 dead-letter file and a non-UTF-8
    # config file "unexpected UnicodeDecodeError", a config saved with a BOM "Invalid statement".
    folder = tmp_path / "deploy"
    config = _config(folder, '[lrs]\nurl = "http://127.0.0.1:9/xAPI/"\n')
    env = {"LMS_BRIDGE_PSEUDONYM_KEY": KEY}
    assert cli("--config", str(config), "db", "upgrade").code == 0
    state = _dump(folder / "state.db")
    failures: list[str] = []
    tried = 0

    def expect(label: str, kind: str, *args: str) -> None:
        nonlocal tried
        tried += 1
        outcome = cli(*args, env=env)
        if outcome.code == 0 and (kind, label) in MAY_SUCCEED:
            return
        if not outcome.one_sentence:
            failures.append(f"{kind} <- {label}: exit {outcome.code}: {outcome.stderr.strip()[-300:]}")

    for label, data in BAD_INPUTS.items():
        stem = label.replace(" ", "-").replace(",", "")
        for suffix in SUFFIXES:
            path = tmp_path / f"in-{stem}{suffix}"
            path.write_bytes(data)
            expect(label, "import", "--config", str(config), "import", str(path), "--community", "cop-x")
        for source in FORCED:
            path = tmp_path / f"in-{stem}.txt"
            expect(label, f"import --source {source}", "--config", str(config), "import", str(path), "--source",
                   source, "--community", "cop-x")  # fmt: skip
        roster = tmp_path / f"roster-{stem}.csv"
        roster.write_bytes(data)
        expect(label, "people import", "--config", str(config), "people", "import", str(roster))
        expect(label, "people link-names", "--config", str(config), "people", "link-names", "--community", "cop-x",
               str(roster))  # fmt: skip
        expect(label, "people suggest", "--config", str(config), "people", "suggest", "--community", "cop-x",
               str(roster))  # fmt: skip
        expect(label, "outbox import", "--config", str(config), "outbox", "import", str(roster))
        mapping = tmp_path / f"mapping-{stem}.toml"
        mapping.write_bytes(data)
        expect(label, "import --mapping", "--config", str(config), "import", str(COMMUNITY_EXPORTS / "roster.csv"),
               "--source", "csv", "--mapping", str(mapping))  # fmt: skip
    for label, data in {**BAD_CONFIGS, **{k: v for k, v in BAD_INPUTS.items() if k != "empty"}}.items():
        stem = label.replace(" ", "-").replace(",", "")
        bad_config = tmp_path / f"config-{stem}.toml"
        bad_config.write_bytes(data)
        for command in (("doctor",), ("sites", "list"), ("people", "import", str(roster)), ("inbox", "run")):
            expect(label, f"config for {command[0]}", "--config", str(bad_config), *command)
        rules = tmp_path / f"rules-{stem}.toml"
        rules.write_bytes(data)
        rules_config = _config(tmp_path / f"rules-{stem}", f'[jp]\nrules_file = "{rules}"\n')
        expect(label, "rules file", "--config", str(rules_config), "rules", "check")

    assert not failures, f"{len(failures)} of {tried} inputs:\n" + "\n".join(failures)
    assert tried > 300
    assert _dump(folder / "state.db") == state  # every refusal left the state store as it was (not even a run)
    assert not any(p.name == "state.db" for p in tmp_path.glob("config-*"))


def test_a_config_saved_with_a_bom_is_read(tmp_path):
    config = tmp_path / "lms-bridge.toml"
    config.write_bytes(b'\xef\xbb\xbf[state]\nurl = "sqlite:///' + str(tmp_path / "state.db").encode() + b'"\n')
    outcome = cli("--config", str(config), "db", "upgrade")
    assert outcome.code == 0, outcome.stderr
    assert os.path.exists(tmp_path / "state.db")
