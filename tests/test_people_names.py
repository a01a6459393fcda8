"""``lms-bridge people suggest`` and ``people link-names`` end to end (subprocesses, real SQLite, the roster).

A WhatsApp export from a phone on which members are saved contacts names its senders by display
name ("Pak Budi Santoso, S.Pd"): they match no roster phone. ``suggest`` proposes roster people and
stores nothing; ``link-names`` stores only keyed pseudonyms of confirmed names, within one community,
and the JP engine then credits the names' past activity.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, MetaData, func, select
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.identifiers import name_identifier
from lms_bridge.identity.names import candidates, match_key
from lms_bridge.identity.pseudonym import make_pseudonymizer
from lms_bridge.store.models import IdentityLink, JPRecord
from tests.fixtures.data import COMMUNITY_EXPORTS, COMMUNITY_VARIANTS
from tests.fixtures.deployment import Deployment

ROSTER = COMMUNITY_EXPORTS / "roster.csv"
CHAT = COMMUNITY_VARIANTS / "whatsapp_id_display_names.txt"
KEY_ENV = "LMS_BRIDGE_PSEUDONYM_KEY"
KEY = "people-names-test-key-0123456789abcdef"
BUDI = "198005122005011002"
SITI = "199203152019022001"
DEWI = "199202142022211007"
#: The display names of the export as typed in it, and fragments of them: none may reach the database.
DISPLAY_FRAGMENTS = ("pak budi", "s.pd", "bu siti", "dewi l.", "agus", "pratama", "🌸")


def deploy(make_deployment: Callable[..., Deployment], state_url: str) -> Deployment:
    built = make_deployment(state_url, "http://127.0.0.1:9/xAPI/", "unused")
    built.env[KEY_ENV] = KEY
    built.env["TEST_STATE_URL"] = state_url  # where the helpers below look
    built.run("people", "import", str(ROSTER), check=True)
    return built


@pytest.fixture
def deployment(tmp_path: Path, make_deployment: Callable[..., Deployment]) -> Deployment:
    return deploy(make_deployment, f"sqlite:///{tmp_path / 'state.db'}")


def _engine(deployment: Deployment) -> Engine:
    return store.open_engine(deployment.env["TEST_STATE_URL"], None)


def link_count(deployment: Deployment) -> int:
    with Session(_engine(deployment)) as session:
        return session.scalar(select(func.count()).select_from(IdentityLink)) or 0


def jp_nips(deployment: Deployment) -> set[str]:
    with Session(_engine(deployment)) as session:
        return set(session.scalars(select(JPRecord.nip).where(JPRecord.status == "active")))


def database_text(deployment: Deployment) -> str:
    """Every row of every table, as text (casefolded): what the store holds, whichever database."""
    engine = _engine(deployment)
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        return "\n".join(
            repr(tuple(row)) for table in metadata.sorted_tables for row in connection.execute(table.select())
        ).casefold()


@pytest.mark.parametrize(
    ("display", "key"),
    [
        ("Pak Budi Santoso, S.Pd", "budi santoso"),
        ("~\u202fDr. H. Budi Santoso, S.Pd., M.Pd 🙏", "budi santoso"),
        ("Hj. Siti Rahmawati, S.Kom, M.Si", "siti rahmawati"),
        ("Drs. Ir. Agus Pratama, M.T.", "agus pratama"),
        ("BAPAK DÉDÉ  SUPRIADI", "dede supriadi"),
        ("Ibu Dewi L.", "dewi l"),
        ("\u200eBu Siti 🌸", "siti"),
    ],
)
def test_match_key_drops_titles_honorifics_emoji_case_and_diacritics(display: str, key: str):
    assert match_key(display) == key


def test_candidates_rank_titles_initials_and_partial_names():
    roster = [(BUDI, "Budi Santoso"), (SITI, "Siti Rahmawati"), (DEWI, "Dewi Lestari"), ("1", "Budi Hartono")]
    assert [c.nip for c in candidates("Pak Budi Santoso, S.Pd", roster)][:1] == [BUDI]
    assert [c.nip for c in candidates("B. Santoso", roster)][:1] == [BUDI]
    assert [c.nip for c in candidates("dewi l.", roster)] == [DEWI]
    assert candidates("Agus Pratama", roster) == []


def test_suggest_stores_nothing_and_link_names_brings_past_activity(
    tmp_path: Path, state_url: str, make_deployment: Callable[..., Deployment]
):
    deployment = deploy(make_deployment, state_url)
    for community in ("cop-wi-7", "cop-lain"):  # the same export in two communities: links are per community
        deployment.run("import", str(CHAT), "--community", community, check=True)
    before = deployment.run("jp", "compute", "--year", "2024", check=True)
    assert "14 activities without a NIP" in before.stdout, before.stdout
    links = link_count(deployment)

    suggested = deployment.run("people", "suggest", "--community", "cop-wi-7", str(CHAT), check=True)
    lines = suggested.stdout.strip().splitlines()
    assert lines == [
        f'"pak budi santoso, s.pd" (3 activities): {BUDI} Budi Santoso (100)',
        f"bu siti 🌸 (2 activities): {SITI} Siti Rahmawati (90)",
        "agus pratama (1 activity): no roster name is close",
        f"dewi l. (1 activity): {DEWI} Dewi Lestari (95)",
        f"{CHAT}: 4 senders by display name, 0 already linked, 4 to confirm; nothing stored",
        "confirm the right pairs in a CSV with the header display_name,nip (names as printed above), then run "
        "lms-bridge people link-names --community cop-wi-7 FILE",
    ]
    assert link_count(deployment) == links  # suggest stored nothing

    confirmed = tmp_path / "confirmed.csv"
    # As the operator writes it: names as printed (one retyped in its own case), Excel's ';' and BOM.
    confirmed.write_text(
        f'\ufeffdisplay_name;nip\r\n"pak budi santoso, s.pd";{BUDI}\r\nBu Siti 🌸;{SITI}\r\n'
        f"~ Dewi L.;{DEWI[:8]} {DEWI[8:14]} {DEWI[14]} {DEWI[15:]}\r\n",
        encoding="utf-8",
    )
    linked = deployment.run("people", "link-names", "--community", "cop-wi-7", str(confirmed), check=True)
    assert linked.stdout.strip() == (
        f"{confirmed}: 3 names linked in community cop-wi-7 (3 new, 0 moved to another NIP, 0 unchanged); "
        "their past activity counts at the next jp compute"
    )
    again = deployment.run("people", "link-names", "--community", "cop-wi-7", str(confirmed), check=True)
    assert "(0 new, 0 moved to another NIP, 3 unchanged)" in again.stdout

    after = deployment.run("jp", "compute", "--year", "2024", check=True)
    # cop-wi-7: only Agus is left; cop-lain: all 7 still unresolved (a name links within its community).
    assert "8 activities without a NIP" in after.stdout, after.stdout
    assert jp_nips(deployment) == {BUDI, SITI, DEWI}
    show = deployment.run("people", "show", BUDI, check=True).stdout
    assert re.search(r"activities whatsapp\s+│ 3 ", show), show
    assert re.search(r"chat identities\s+│ 4 ", show), show  # three roster identities and the name

    resuggest = deployment.run("people", "suggest", "--community", "cop-wi-7", str(CHAT), check=True)
    assert resuggest.stdout.splitlines()[-2:] == [
        f"{CHAT}: 4 senders by display name, 3 already linked, 1 to confirm; nothing stored",
        "confirm the right pairs in a CSV with the header display_name,nip (names as printed above), then run "
        "lms-bridge people link-names --community cop-wi-7 FILE",
    ]

    # Only keyed pseudonyms were stored: the link is the parser's pseudonym of the canonical name.
    pseudonymize = make_pseudonymizer(SecretStr(KEY))
    with Session(_engine(deployment)) as session:
        stored = set(session.scalars(select(IdentityLink.local_id).where(IdentityLink.source == "name")))
        sites = set(session.scalars(select(IdentityLink.site_id).where(IdentityLink.source == "name")))
    names = ("pak budi santoso, s.pd", "bu siti 🌸", "dewi l.")
    assert stored == {pseudonymize(name_identifier(name) or "") for name in names}
    assert sites == {"cop-wi-7"}
    database = database_text(deployment)
    assert "siti rahmawati" in database  # the roster's own names are there: the check reads real rows
    assert [fragment for fragment in DISPLAY_FRAGMENTS if fragment in database] == []
    outputs = suggested.stdout + suggested.stderr + linked.stdout + linked.stderr
    assert KEY not in outputs


@pytest.mark.parametrize(
    ("body", "sentence"),
    [
        (f"display_name,nip\nBu Siti,{SITI}\nbu  SITI,{BUDI}\n", "line 3 gives the same display name as line 2"),
        (
            f"display_name,nip\nBu Siti,{SITI}\nAgus,12345\n",
            "line 3: the NIP '12345' is not a NIP (it has 5 digits, expected 18)",
        ),
        ("display_name,nip\nAgus,\n", "line 2 has no NIP"),
        (f"display_name,nip\n ,{SITI}\n", "line 2 has no display name"),
        (
            "display_name,nip\nAgus,199001012015031001\n",
            "line 2: no person with NIP 199001012015031001 in the state database "
            "(import the roster first: lms-bridge people import)",
        ),
        (f"nama_lengkap,nip\nAgus,{SITI}\n", "line 1 is not the header line display_name,nip"),
        ("display_name,nip\n", "has a header line but no display_name,nip pair below it"),
        (f"display_name,nip\nAgus,{SITI},x\n", "line 2 has 3 fields but the header has 2"),
    ],
)
def test_link_names_refuses_a_bad_row_in_one_sentence_and_stores_nothing(
    tmp_path: Path, deployment: Deployment, body: str, sentence: str
):
    links = link_count(deployment)
    confirmed = tmp_path / "confirmed.csv"
    confirmed.write_text(body, encoding="utf-8")
    result = deployment.run("people", "link-names", "--community", "cop-wi-7", str(confirmed))
    assert result.returncode == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"error: {confirmed}") and sentence in errors[0], errors
    assert "Traceback" not in result.stderr
    assert link_count(deployment) == links


def test_link_names_refuses_a_bad_community_and_a_missing_key(tmp_path: Path, deployment: Deployment):
    confirmed = tmp_path / "confirmed.csv"
    confirmed.write_text(f"display_name,nip\nBu Siti,{SITI}\n", encoding="utf-8")
    bad = deployment.run("people", "link-names", "--community", "CoP WI", str(confirmed))
    assert bad.returncode == 2 and "--community 'CoP WI' is not an id" in bad.stderr
    del deployment.env[KEY_ENV]
    nokey = deployment.run("people", "link-names", "--community", "cop-wi-7", str(confirmed))
    assert nokey.returncode == 2 and f"the pseudonym key {KEY_ENV} is not set" in nokey.stderr
    assert link_count(deployment) == 8
