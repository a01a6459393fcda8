"""lms-bridge against a real Moodle 4.5 (issue 17): the real CLI into real Ralph, checked against Moodle's tables."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.moodle.settings import REQUIRED_FUNCTIONS
from lms_bridge.demo.ralph import RalphLRS
from tests.fixtures.deployment import Deployment, write_deployment
from tests.fixtures.lrs import lrs_statements
from tests.real_moodle.conftest import RealMoodle

pytestmark = [pytest.mark.real_moodle]

SOURCE_KEY = "https://lms-bridge.id/xapi/extensions/source"
TOKEN_ENV = "MOODLE_TOKEN_REAL"
SITE = "real"


def _deploy(folder: Path, moodle: RealMoodle, lrs: RalphLRS, token: str) -> Deployment:
    folder.mkdir(parents=True, exist_ok=True)
    source = f'\n[[sources]]\nid = "{SITE}"\ntype = "moodle"\nurl = "{moodle.url}"\ntoken_env = "{TOKEN_ENV}"\n'
    return write_deployment(
        folder,
        state_url=f"sqlite:///{folder / 'state.db'}",
        lrs_url=lrs.url,
        password=lrs.password,
        extra_toml=source,
        env={TOKEN_ENV: token},
    )


@pytest.fixture(scope="module")
def lrs() -> Iterator[RalphLRS]:
    with RalphLRS() as server:
        yield server


@pytest.fixture(scope="module")
def synced(real_moodle: RealMoodle, lrs: RalphLRS, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """A fresh deployment that ran ``sites test``, ``sync`` and ``outbox flush`` once against the seeded site."""
    deployment = _deploy(tmp_path_factory.mktemp("deploy"), real_moodle, lrs, real_moodle.token())
    tested = deployment.run("sites", "test")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    deployment.run("sync", check=True, timeout=300)
    deployment.run("outbox", "flush", check=True)
    return deployment


def _landed(lrs: RalphLRS) -> list[dict]:
    return [s for s in lrs_statements(lrs) if s["context"]["extensions"][SOURCE_KEY]["site"] == SITE]


def _by_native(lrs: RalphLRS) -> dict[str, dict]:
    return {s["context"]["extensions"][SOURCE_KEY]["native_id"]: s for s in _landed(lrs)}


def test_every_activity_completion_moodle_holds_lands_with_its_module_name(synced, real_moodle, lrs):
    truth = real_moodle.rows(
        "select cmc.coursemoduleid, cmc.userid, p.name from mdl_course_modules_completion cmc "
        "join mdl_course_modules cm on cm.id = cmc.coursemoduleid join mdl_modules m on m.id = cm.module "
        "join mdl_page p on p.id = cm.instance and m.name = 'page' "
        "join mdl_user_enrolments ue on ue.userid = cmc.userid "
        "join mdl_enrol e on e.id = ue.enrolid and e.courseid = cm.course where cmc.completionstate > 0"
    )
    assert len(truth) == 4  # the seed's four overrides of enrolled users
    landed = _by_native(lrs)
    for cmid, userid, name in truth:
        statement = landed[f"cm={cmid}|user={userid}"]
        # Item 8: the module's name, read with core_course_get_contents.
        assert statement["object"]["definition"]["name"]["en-US"] == name
    modules = {n for n in landed if n.startswith("cm=")}
    assert modules == {f"cm={cmid}|user={userid}" for cmid, userid, _ in truth}


def test_a_teachers_override_for_a_user_who_never_opened_the_course_is_read(synced, real_moodle, lrs):
    budi = real_moodle.seeded["users"]["budi"]
    never = real_moodle.rows("select count(*) from mdl_user_lastaccess where userid = %s", int(budi))
    assert never == [(0,)]  # Moodle holds no access for him
    overrides = real_moodle.rows(
        "select coursemoduleid, overrideby from mdl_course_modules_completion where userid = %s", int(budi)
    )
    assert overrides and all(by is not None for _, by in overrides)
    landed = _by_native(lrs)
    for cmid, _ in overrides:
        assert f"cm={cmid}|user={budi}" in landed  # item 1
    course = real_moodle.seeded["courses"]["etika"]
    assert f"course={course}|user={budi}" in landed  # his course completion, aggregated by cron


def test_course_completions_match_moodles_table(synced, real_moodle, lrs):
    truth = real_moodle.rows("select course, userid from mdl_course_completions where timecompleted > 0")
    landed = {n for n in _by_native(lrs) if n.startswith("course=")}
    assert landed == {f"course={course}|user={user}" for course, user in truth}


def test_every_forum_post_lands_and_a_poster_who_left_keeps_his_nip(synced, real_moodle, lrs):
    posts = real_moodle.rows("select id, discussion, parent, userid from mdl_forum_posts where deleted = 0")
    landed = _by_native(lrs)
    expected = {f"discussion={d}" if parent == 0 else str(pid) for pid, d, parent, _ in posts}
    assert expected <= set(landed)
    dedi = real_moodle.seeded["users"]["dedi"]
    assert real_moodle.rows("select count(*) from mdl_user_enrolments where userid = %s", int(dedi)) == [
        (0,)
    ]  # he left the course before the first sync
    nip = real_moodle.rows("select idnumber from mdl_user where id = %s", int(dedi))[0][0]
    links = dict(synced.query("select l.local_id, p.nip from identity_links l join persons p on p.id = l.person_id"))
    assert links.get(str(dedi)) == nip  # item 5: resolved with core_user_get_users_by_field


def test_backfill_and_jp_compute_run_against_the_real_site(synced, lrs):
    before = len(_landed(lrs))
    backfill = synced.run("backfill", "--site", SITE, "--since", "2020-01-01", timeout=300)
    assert backfill.returncode == 0, backfill.stdout + backfill.stderr
    synced.run("outbox", "flush", check=True)
    assert len(_landed(lrs)) == before  # same ids: nothing new, nothing lost
    runs = synced.run("runs", "list", check=True).stdout
    assert "backfill" in runs  # item 8: a backfill is labelled as one
    jp = synced.run("jp", "compute", timeout=300)
    assert jp.returncode == 0, jp.stdout + jp.stderr


def test_a_teachers_token_fails_sites_test_naming_the_capability(real_moodle, lrs, tmp_path):
    deployment = _deploy(tmp_path / "teacher", real_moodle, lrs, real_moodle.token(user="guru"))
    result = deployment.run("sites", "test")
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "nopermissions" in out and "moodle/course:view" in out and "Manager" in out, out
    assert "Traceback" not in out
    doctor = deployment.run("doctor")
    line = next(x for x in doctor.stdout.splitlines() if x.startswith(("ok   moodle", "FAIL moodle")))
    assert line.startswith("FAIL moodle real") and "moodle/course:view" in line and "Manager" in line, line


def test_web_services_off_names_the_setting_to_turn_on(real_moodle, lrs, tmp_path):
    deployment = _deploy(tmp_path / "off", real_moodle, lrs, real_moodle.token())
    for name, value in (("enablewebservices", "0"), ("webserviceprotocols", "")):
        real_moodle.set_config(name, value)
        try:
            result = deployment.run("sites", "test")
        finally:
            real_moodle.set_config(name, "1" if name == "enablewebservices" else "rest")
        out = result.stdout + result.stderr
        assert result.returncode != 0 and "Enable web services" in out and "REST" in out, out


def test_a_site_without_bigbluebutton_needs_no_webinar_function(real_moodle, lrs, tmp_path):
    functions = ",".join(REQUIRED_FUNCTIONS)  # everything lms-bridge reads, without BigBlueButton's
    deployment = _deploy(tmp_path / "nobbb", real_moodle, lrs, real_moodle.token(functions=functions, service="nobbb"))
    tested = deployment.run("sites", "test")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "webinars will be skipped" in tested.stdout
    synced = deployment.run("sync", timeout=300)
    assert synced.returncode == 0, synced.stdout + synced.stderr
