"""``lms-bridge people``: the roster import, show and unresolved through the real CLI (subprocesses)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.identifiers import phone_identifier
from lms_bridge.identity.pseudonym import make_pseudonymizer
from lms_bridge.store.models import Evidence, IdentityLink, Person
from tests.fixtures.data import COMMUNITY_EXPORTS
from tests.fixtures.deployment import Deployment

ROSTER = COMMUNITY_EXPORTS / "roster.csv"
KEY_ENV = "LMS_BRIDGE_PSEUDONYM_KEY"
KEY = "people-cli-test-key-0123456789abcdef"
BUDI = "198005122005011002"
#: Raw identifiers of the sample roster, in the notations the file uses and normalised.
RAW_VALUES = (
    "811-0000-0101",
    "6281100000101",
    "0812-0000-0202",
    "6281200000202",
    "100000001",
    "100000002",
    "100000003",
    "@example.org",
)


@pytest.fixture
def deploy(make_deployment: Callable[..., Deployment]) -> Callable[..., Deployment]:
    """A deployment with the pseudonym key set (no LRS needed by these commands)."""

    def build(state_url: str, *, key: str | None = KEY, extra_toml: str = "") -> Deployment:
        deployment = make_deployment(state_url, "http://127.0.0.1:9/xAPI/", "unused", extra_toml=extra_toml)
        if key is not None:
            deployment.env[KEY_ENV] = key
        return deployment

    return build


def person_count(state_url: str) -> int:
    with Session(store.open_engine(state_url, None)) as session:
        return session.scalar(select(func.count()).select_from(Person)) or 0


def assert_no_raw_identifiers(*texts: str) -> None:
    for text in texts:
        assert [raw for raw in RAW_VALUES if raw in text] == []


def test_import_show_and_unresolved(state_url: str, deploy: Callable[..., Deployment]):
    deployment = deploy(state_url)
    result = deployment.run("people", "import", str(ROSTER), check=True)
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "line 5: the NIP has 5 digits, expected 18"
    assert f"{ROSTER}: 4 rows read, 3 persons imported (3 new, 0 updated, 0 unchanged), 1 skipped" in lines[1]
    assert "8 identities linked (8 new" in lines[1]
    again = deployment.run("people", "import", str(ROSTER), check=True)
    assert "3 persons imported (0 new, 0 updated, 3 unchanged)" in again.stdout
    assert "8 identities linked (0 new, 0 moved" in again.stdout
    assert person_count(state_url) == 3

    # A NIP with spaces, as one argument or as several.
    for args in (("19800512 200501 1 002",), ("19800512", "200501", "1", "002")):
        show = deployment.run("people", "show", *args, check=True)
        assert "Budi Santoso" in show.stdout and BUDI in show.stdout
        assert "chat identities │ 3" in show.stdout
    pppk = deployment.run("people", "show", "199202142022211007", check=True)
    assert "PPPK" in pppk.stdout
    unresolved = deployment.run("people", "unresolved", check=True)
    assert "identities without a NIP" in unresolved.stdout
    outputs = (result.stdout, result.stderr, again.stdout, show.stdout, pppk.stdout, unresolved.stdout)
    assert_no_raw_identifiers(*outputs)
    assert not any(KEY in text for text in outputs)


def test_missing_key_exits_2_and_stores_nothing(tmp_path: Path, deploy: Callable[..., Deployment]):
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    result = deploy(state_url, key=None).run("people", "import", str(ROSTER))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: the pseudonym key {KEY_ENV} is not set: put a long random value in the environment "
        "(or a 0600 secrets file named in [secrets] file)"
    ]
    assert result.stdout == ""
    assert person_count(state_url) == 0
    custom = deploy(state_url, key=None, extra_toml='[deployment]\npseudonym_key_env = "CUSTOM_ROSTER_KEY"\n')
    other = custom.run("people", "import", str(ROSTER))
    assert other.returncode == 2 and "CUSTOM_ROSTER_KEY is not set" in other.stderr


def test_refused_files_and_unknown_nip_are_one_sentence(tmp_path: Path, deploy: Callable[..., Deployment]):
    deployment = deploy(f"sqlite:///{tmp_path / 'state.db'}")
    no_nip = tmp_path / "no_nip.csv"
    no_nip.write_text("nama,telepon\nBudi,0811 0000 0101\n")
    result = deployment.run("people", "import", str(no_nip))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: roster {no_nip} has no nip column in its header line "
        "(expected columns such as nip,nama,unit_kode,jabatan,telepon)"
    ]
    missing = deployment.run("people", "import", str(tmp_path / "missing.csv"))
    assert missing.returncode == 1 and missing.stderr.startswith(f"error: roster {tmp_path / 'missing.csv'}")
    all_bad = tmp_path / "all_bad.csv"
    all_bad.write_text("nip,nama,telepon\n12345,Bad,0811 0000 0101\n")
    bad = deployment.run("people", "import", str(all_bad))
    assert bad.returncode == 1
    assert bad.stdout.strip() == "line 2: the NIP has 5 digits, expected 18"
    assert bad.stderr.strip() == f"error: roster {all_bad}: none of its 1 rows could be imported"
    unknown = deployment.run("people", "show", "19800512 200501 1 003")
    assert unknown.returncode == 1
    assert len(unknown.stderr.strip().splitlines()) == 1
    assert unknown.stderr.startswith("error: no person with NIP 198005122005011003")
    not_nip = deployment.run("people", "show", "0811 0000 0101")
    assert not_nip.returncode == 1 and "not a NIP" in not_nip.stderr
    assert "0811" not in not_nip.stderr  # a phone typed as a NIP is not echoed


def test_dry_run_semicolon_bom_and_warnings(tmp_path: Path, deploy: Callable[..., Deployment]):
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    deployment = deploy(state_url)
    roster = tmp_path / "excel.csv"
    roster.write_bytes(
        f"\ufeffNIP;Nama;Telepon;Email\r\n{BUDI};Budi;0811 0000 0101 / 0812 x;budi(at)example.org\r\n".encode()
    )
    dry = deployment.run("people", "import", "--dry-run", str(roster), check=True)
    assert dry.stdout.strip().splitlines()[:2] == [
        "line 2: warning: e-mail is not a valid e-mail: ignored",
        "line 2: warning: phone number 2 is not a valid phone number: ignored",
    ]
    assert "1 persons would be imported" in dry.stdout and "(dry run: nothing stored)" in dry.stdout
    assert person_count(state_url) == 0
    deployment.run("people", "import", str(roster), check=True)
    assert person_count(state_url) == 1
    assert "0811" not in dry.stdout and "budi(at)" not in dry.stdout


def test_unresolved_table_with_evidence(tmp_path: Path, deploy: Callable[..., Deployment]):
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    deployment = deploy(state_url)
    deployment.run("people", "import", str(ROSTER), check=True)
    pseudonymize = make_pseudonymizer(SecretStr(KEY))
    member = pseudonymize(phone_identifier("0811 0000 0101") or "")
    stranger = pseudonymize(phone_identifier("0899 1234 5678") or "")
    when = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    with Session(store.open_engine(state_url, None)) as session, session.begin():
        session.add(IdentityLink(source="moodle", site_id="kemenpan", local_id="88", person_id=None))
        for source, actor, times in (("whatsapp", member, 2), ("whatsapp", stranger, 3), ("moodle", "99", 1)):
            session.add_all(
                Evidence(
                    statement_id=str(uuid.uuid4()),
                    source=source,
                    site_id="kemenpan" if source == "moodle" else "cop-wi",
                    local_actor=actor,
                    kind="message_posted",
                    occurred_at=when,
                    object_key="g",
                    facts="{}",
                )
                for _ in range(times)
            )
    table = deployment.run("people", "unresolved", check=True).stdout
    rows = [line for line in table.splitlines() if line.startswith("│")]
    assert [[cell.strip() for cell in row.strip("│").split("│")] for row in rows] == [
        ["whatsapp", "cop-wi", stranger, "3", "2026-03-02", "2026-03-02"],
        ["moodle", "kemenpan", "99", "1", "2026-03-02", "2026-03-02"],
        ["moodle", "kemenpan", "88", "0", "-", "-"],
    ]
    limited = deployment.run("people", "unresolved", "--limit", "1", check=True).stdout
    assert [line.split("│")[3].strip() for line in limited.splitlines() if line.startswith("│")] == [stranger]
    assert limited.strip().endswith("more than 1: use --limit to see more")
    show = deployment.run("people", "show", BUDI, check=True).stdout
    assert "activities whatsapp │ 2" in show
