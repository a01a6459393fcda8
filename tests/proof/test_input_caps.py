"""Proof (issue 20 item 2, issue 16 memory): what one input file may hold is capped, and refused in one sentence.

Each test failed on main before the caps: a named pipe hung ``import`` and ``people import``,
``/dev/zero`` was read until memory ran out, a roster had no size cap, a 200,000-level nested
JSON line ended in ``RecursionError``, Telegram and activity files had no message or row cap,
a zip bomb was inflated whole, and an export whose dates read both ways, imported with one
``--day-first``/``--month-first`` flag, answered the other flag with "nothing new".

Inputs are generated in ``tmp_path`` and kept small; the 200 MB chat belongs to
``bench/whatsapp_memory.py`` (BENCHMARKS.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lms_bridge.config.settings import load_settings
from lms_bridge.errors import InputError
from lms_bridge.ingest.files import read_import_file
from tests.fixtures.deployment import ROOT, Deployment, write_deployment

KEY_ENV = "LMS_BRIDGE_PSEUDONYM_KEY"
KEY = "input-caps-proof-key-0123456789abcdef"
NO_LRS = "http://127.0.0.1:9/xAPI/"


def deployment(folder: Path, limits: str = "") -> Deployment:
    built = write_deployment(
        folder,
        state_url=f"sqlite:///{folder / 'state.db'}",
        lrs_url=NO_LRS,
        password="unused",
        extra_toml=f"[limits]\n{limits}\n" if limits else "",
    )
    built.env[KEY_ENV] = KEY
    return built


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    """The run failed with exactly one line on stderr, no traceback; that line."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def whatsapp_lines(count: int, day: int = 13) -> str:
    return "".join(f"{day}/03/24 09.{index % 60:02d} - Budi: pesan nomor {index}\n" for index in range(count))


def telegram_export(count: int, extra: object = None) -> str:
    start = datetime(2024, 3, 13, 2, 0, tzinfo=UTC)
    messages = []
    for number in range(1, count + 1):
        when = start + timedelta(minutes=number)
        message = {
            "id": number,
            "type": "message",
            "date": when.strftime("%Y-%m-%dT%H:%M:%S"),
            "date_unixtime": str(int(when.timestamp())),
            "from": "Budi",
            "from_id": "user1001",
            "text": f"pesan {number}",
        }
        if extra is not None and number == 1:
            message["extra"] = extra
        messages.append(message)
    return json.dumps({"name": "CoP Uji", "type": "private_supergroup", "id": 1000000077, "messages": messages})


# --- not a regular file -------------------------------------------------------------------------------


def test_a_named_pipe_is_refused_at_once_by_import_and_people_import(tmp_path: Path) -> None:
    deploy = deployment(tmp_path)
    chat = tmp_path / "chat.txt"
    roster = tmp_path / "roster.csv"
    os.mkfifo(chat)
    os.mkfifo(roster)
    # On main both commands blocked for ever in open(): a timeout here is the failure.
    imported = one_error(deploy.run("import", str(chat), "--community", "cop-uji", timeout=30))
    assert imported == f"error: {chat}: a named pipe, not a regular file; nothing was read"
    people = one_error(deploy.run("people", "import", str(roster), timeout=30))
    assert people == f"error: roster {roster}: a named pipe, not a regular file; nothing was read"


def test_dev_zero_is_refused_at_once_not_read_until_memory_runs_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy = deployment(tmp_path)
    zero = Path("/dev/zero")
    # On main people import read 5.4 GB from it before dying: a separate process, with a timeout.
    assert one_error(deploy.run("people", "import", str(zero), timeout=60)) == (
        "error: roster /dev/zero: a device, not a regular file; nothing was read"
    )
    monkeypatch.setenv(KEY_ENV, KEY)
    settings = load_settings(deploy.config)
    with pytest.raises(InputError) as refused:
        read_import_file(settings, zero, source="whatsapp", community="cop-uji")
    assert str(refused.value) == "/dev/zero: a device, not a regular file; nothing was read"


def test_a_roster_larger_than_its_configured_cap_is_refused(tmp_path: Path) -> None:
    deploy = deployment(tmp_path, "roster_max_mb = 1")
    roster = tmp_path / "roster.csv"
    row = "198005122005011002,Budi Santoso,Unit A,Widyaiswara,,,\n"
    roster.write_text("nip,name,unit,position,phone,telegram,email\n" + row * (1_100_000 // len(row)))
    assert one_error(deploy.run("people", "import", str(roster))) == (
        f"error: roster {roster}: larger than 1 MB, not a roster"
    )


# --- nesting -------------------------------------------------------------------------------------------


def test_json_nested_200000_levels_deep_is_one_sentence_not_a_recursion_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    settings = load_settings(deployment(tmp_path).config)
    deep = "[" * 200_000 + "]" * 200_000
    activity_file = tmp_path / "deep.jsonl"
    activity_file.write_text(deep + "\n")
    telegram = tmp_path / "result.json"
    telegram.write_text(deep)
    # On main: RecursionError (a traceback, and the inbox retried the file on every pass).
    with pytest.raises(InputError) as refused:
        read_import_file(settings, activity_file)
    assert str(refused.value) == (
        f"activity file {activity_file} line 1: JSON nested more than 16 levels deep, not an export; "
        "raise [limits] max_json_depth if the file is genuine"
    )
    with pytest.raises(InputError) as refused:
        read_import_file(settings, telegram, community="cop-uji")
    assert str(refused.value) == (
        "telegram export result.json: JSON nested more than 64 levels deep, not an export; "
        "raise [limits] max_json_depth if the file is genuine"
    )


def test_a_telegram_export_nested_deeper_than_the_configured_depth_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    nested: object = "x"
    for _ in range(100):  # deep, yet well within what json.loads reads: only the cap refuses it
        nested = [nested]
    path = tmp_path / "result.json"
    path.write_text(telegram_export(3, extra=nested))
    settings = load_settings(deployment(tmp_path, "max_json_depth = 50").config, environ={KEY_ENV: KEY})
    with pytest.raises(InputError, match=r"^telegram export result\.json: JSON nested more than 50 levels deep"):
        read_import_file(settings, path, community="cop-uji")
    relaxed = load_settings(deployment(tmp_path, "max_json_depth = 200").config, environ={KEY_ENV: KEY})
    assert read_import_file(relaxed, path, community="cop-uji").records == 3


# --- messages and rows ---------------------------------------------------------------------------------


def test_message_and_row_caps_come_from_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    settings = load_settings(deployment(tmp_path, "max_messages = 5\nmax_rows = 2").config, environ={KEY_ENV: KEY})
    chat = tmp_path / "chat.txt"
    chat.write_text(whatsapp_lines(6))
    with pytest.raises(InputError, match=r"^whatsapp export chat\.txt line 6: more than 5 messages in one file"):
        read_import_file(settings, chat, community="cop-uji")
    telegram = tmp_path / "result.json"
    telegram.write_text(telegram_export(6))
    with pytest.raises(InputError) as refused:
        read_import_file(settings, telegram, community="cop-uji")
    assert str(refused.value) == (  # refused while streaming, at the first message over the cap
        "telegram export result.json: more than 5 messages in one chat (messages[5] is message 6); "
        "split the export or raise --max-messages or [limits] max_messages"
    )
    activities = tmp_path / "activities.jsonl"
    line = json.dumps(
        {
            "source": "import",
            "site": "import",
            "kind": "message_posted",
            "native_id": "m{n}",
            "actor": "a1",
            "object": {"type": "message", "native_id": "m"},
            "occurred_at": "2024-03-13T02:00:00Z",
        }
    )
    activities.write_text("".join(line.replace("m{n}", f"m{n}") + "\n" for n in range(3)))
    with pytest.raises(InputError, match=r"^activities\.jsonl: 3 activities in one file, more than the 2 allowed"):
        read_import_file(settings, activities)


# --- a zip bomb ---------------------------------------------------------------------------------------

# The peak is this process's own high-water mark (VmHWM), not getrusage's ru_maxrss: Linux carries ru_maxrss
# over fork and exec, so a CLI started by a pytest process that had grown to 400 MB reported 400 MB.
_PEAK = """
import runpy, sys
sys.argv = ["lms-bridge", *sys.argv[1:]]
try:
    runpy.run_module("lms_bridge.cli", run_name="__main__")
except SystemExit as exit:
    code = exit.code
with open("/proc/self/status", encoding="ascii") as status:
    peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(peak_kb // 1024, code)
"""


def test_a_zip_bomb_is_refused_by_the_message_cap_in_bounded_memory(tmp_path: Path) -> None:
    deploy = deployment(tmp_path)
    block = whatsapp_lines(100) + "13/03/24 10.00 - Budi: \U0001f44d teks dengan emoji\n"
    text = tmp_path / "_chat.txt"
    with text.open("w", encoding="utf-8") as handle:
        for _ in range(30_000_000 // len(block)):
            handle.write(block)
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.write(text, "_chat.txt")
    text.unlink()
    assert bomb.stat().st_size < 600_000  # about 30 MB of chat inside
    result = subprocess.run(
        [sys.executable, "-c", _PEAK, "--config", str(deploy.config), "import", str(bomb), "--community", "cop-uji"]
        + ["--max-messages", "1000"],
        env=deploy.env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    peak, code = result.stdout.split()[-2:]
    assert code == "1" and "more than 1,000 messages in one file (this is message 1,001)" in result.stderr
    # Main inflated the whole member and decoded it before counting: its 25 MB chat alone peaked at 515 MB.
    # This reader stops at message 1,001 (measured about 104 MB, the process itself).
    assert int(peak) < 250, f"peak RSS {peak} MB"


# --- the date-order trap (issue 16) ----------------------------------------------------------------------


def test_an_export_imported_in_one_date_order_is_not_silently_done_in_the_other(tmp_path: Path) -> None:
    deploy = deployment(tmp_path)
    chat = tmp_path / "chat.txt"
    chat.write_text("01/02/24 08.00 - Budi: satu\n02/03/24 09.00 - Siti: dua\n")  # both readings keep the order
    refused = one_error(deploy.run("import", str(chat), "--community", "cop-uji"))
    assert "pass --day-first or --month-first" in refused
    assert not deploy.query("select * from cursors")  # a refusal marks nothing done (or made no database)
    first = deploy.run("import", str(chat), "--community", "cop-uji", "--day-first")
    assert first.returncode == 0 and "added 2 statements" in first.stdout
    # Main answered "nothing new (already imported)" here, as if the other reading had been imported.
    other = one_error(deploy.run("import", str(chat), "--community", "cop-uji", "--month-first"))
    assert other == (
        "error: chat.txt was already imported into cop-uji with its dates read as day/month (--day-first); "
        "reading them as month/day now would add every message a second time under other dates, so nothing "
        "was imported"
    )
    assert deploy.outbox_count() == 2
    again = deploy.run("import", str(chat), "--community", "cop-uji", "--day-first")
    assert again.returncode == 0 and "nothing new (already imported)" in again.stdout
