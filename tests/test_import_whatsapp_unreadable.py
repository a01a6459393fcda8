"""`import --skip-unreadable` on a WhatsApp export: the rest is imported and `runs show` names the skipped lines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.fixtures.deployment import Deployment

KEY_ENV = "LMS_BRIDGE_PSEUDONYM_KEY"
NO_LRS = "http://127.0.0.1:9/xAPI/"

LINES = [
    "12/03/24 09.00 - Budi: a",
    "31/02/24 09.01 - Budi: tanggal mustahil",
    "12/03/24 09.02 - Siti: b",
    "12/03/24 25.03 - Siti: jam mustahil",
    "12/03/24 09.04 - Budi: c",
]


def test_skip_unreadable_is_recorded_in_the_run(
    tmp_path: Path, state_url: str, make_deployment: Callable[..., Deployment]
) -> None:
    deployment = make_deployment(state_url, NO_LRS, "unused")
    deployment.env[KEY_ENV] = "import-cli-test-key-0123456789abcdef"
    chat = tmp_path / "chat.txt"
    chat.write_text("\n".join(LINES) + "\n", encoding="utf-8")

    refused = deployment.run("import", str(chat), "--community", "cop-wi-7")
    assert refused.returncode == 1
    assert (
        "chat.txt line 2: invalid date or time" in refused.stderr and "(and 1 more unreadable lines)" in refused.stderr
    )

    done = deployment.run("import", str(chat), "--community", "cop-wi-7", "--skip-unreadable", check=True)
    assert "skipped 2 unreadable lines (--skip-unreadable): 2, 4" in done.stdout
    assert "3 messages read" in done.stdout
    shown = deployment.run("runs", "show", "1", check=True)
    assert "unreadable lines skipped: 2, 4" in shown.stdout
