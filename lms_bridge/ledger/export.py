"""Writing report tables as CSV (Excel-friendly), JSON or XLSX.

CSV is UTF-8 with a BOM so that Excel opens names with accents correctly; JSON is
a list of objects with the same keys as the CSV header; XLSX has a bold, frozen
header row, column widths that fit, and optionally one sheet per group (unit).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from lms_bridge.errors import InputError

Row = Sequence[Any]


def json_value(value: Any) -> Any:
    """A cell as JSON, CSV and XLSX want it: a Decimal becomes an int or a float (``2``, ``1.5``)."""
    if isinstance(value, Decimal):
        normal = value.normalize()
        return int(normal) if normal == normal.to_integral_value() else float(normal)
    return value


def to_csv(header: Sequence[str], rows: Sequence[Row]) -> str:
    """CSV text with a BOM (Excel opens it as UTF-8)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if value is None else json_value(value) for value in row])
    return "\ufeff" + buffer.getvalue()


def to_json(header: Sequence[str], rows: Sequence[Row], **extra: Any) -> str:
    """A JSON document: ``{"rows": [{header: value}...], **extra}``."""
    data = {**extra, "rows": [{key: json_value(value) for key, value in zip(header, row, strict=True)} for row in rows]}
    return json.dumps(data, ensure_ascii=False, indent=1, default=str)


def write_xlsx(path: Path, sheets: Mapping[str, tuple[Sequence[str], Sequence[Row]]]) -> None:
    """Write an XLSX workbook: one sheet per entry, header bold and frozen, widths fitted.

    Raises:
        InputError: when the file cannot be written.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    workbook.remove(workbook.active)
    used: set[str] = set()
    for title, (header, rows) in sheets.items():
        # Sheet titles: at most 31 characters, none of []:*?/\ and unique.
        name = "".join("_" if ch in "[]:*?/\\" else ch for ch in title)[:31] or "sheet"
        base, number = name, 2
        while name in used:
            name = f"{base[:28]}-{number}"
            number += 1
        used.add(name)
        sheet = workbook.create_sheet(name)
        sheet.append(list(header))
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        widths = [len(str(h)) for h in header]
        for row in rows:
            values = [json_value(value) for value in row]
            sheet.append(values)
            widths = [max(w, len(str(v)) if v is not None else 0) for w, v in zip(widths, values, strict=True)]
        sheet.freeze_panes = "A2"
        for index, width in enumerate(widths, start=1):
            sheet.column_dimensions[get_column_letter(index)].width = min(max(width + 2, 8), 60)
    try:
        workbook.save(path)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from exc


def write_text(path: Path | None, text: str) -> None:
    """Write text to ``path`` (UTF-8), or to stdout when ``path`` is None.

    Raises:
        InputError: when the file cannot be written.
    """
    if path is None:
        import sys

        sys.stdout.write(text)
        if not text.endswith("\n"):
            sys.stdout.write("\n")
        return
    try:
        path.write_text(text, encoding="utf-8", newline="")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from exc
