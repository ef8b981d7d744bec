"""The grading of each base, from ``Annotation_BaseNN.csv`` (the spreadsheet saved as CSV).

MESSIDOR ships its grades as Excel ``.xls`` files; reading those would need a dependency for
one optional feature, so segsynth reads only a CSV export of them (``,``, ``;`` or tab
separated, as Excel writes in different locales) and otherwise ignores the spreadsheet. The
grades are used to keep a subset (e.g. only healthy eyes, retinopathy grade 0).
"""

from __future__ import annotations

import csv
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import segsynth
from segsynth_messidor.layout import shown

_NAME = "image name"
_GRADE = "retinopathy grade"
_RISK = "risk of macular edema"


@dataclass(frozen=True)
class Grading:
    """The retinopathy grade (0..3) and macular-edema risk (0..2) of one photograph."""

    retinopathy: int
    edema_risk: int


def csv_path(folder: Path) -> Path | None:
    """``Annotation_<base>.csv`` in ``folder`` (any letter case), if present."""
    target = f"annotation_{folder.name}.csv".lower()
    return next((p for p in folder.iterdir() if p.name.lower() == target), None)


def _number(text: str, path: Path, line: int, column: str) -> int:
    try:
        return int(float(text.strip()))
    except ValueError as exc:
        raise segsynth.UserError(
            f"{path}, line {line}: the {column!r} column holds {text!r}, not a number. Fix the "
            "CSV export of the spreadsheet."
        ) from exc


def read_grading(path: Path, present: set[str]) -> dict[str, Grading]:
    """``file name -> Grading`` from one CSV; rows naming absent photographs are warned about."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        text = path.read_text(encoding="latin-1")  # Excel's "CSV" on Windows
    except OSError as exc:
        raise segsynth.UserError(f"cannot read {path}: {exc}") from exc
    try:
        dialect = csv.Sniffer().sniff(text.splitlines()[0] if text else "", delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.reader(io.StringIO(text), dialect))
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if not all(column in header for column in (_NAME, _GRADE, _RISK)):
        raise segsynth.UserError(
            f"{path} does not have the columns 'Image name', 'Retinopathy grade' and 'Risk of "
            f"macular edema' in its first line (it has {rows[0] if rows else 'nothing'}). "
            "Export the original Annotation spreadsheet to CSV without changing its header."
        )
    name_at, grade_at, risk_at = (header.index(c) for c in (_NAME, _GRADE, _RISK))
    grading: dict[str, Grading] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        name = row[name_at].strip()
        grading[name] = Grading(
            _number(row[grade_at], path, line, "Retinopathy grade"),
            _number(row[risk_at], path, line, "Risk of macular edema"),
        )
    absent = sorted(set(grading) - present)
    if absent:
        warnings.warn(
            f"{path} grades {len(absent)} photograph(s) that are not in {path.parent}: "
            f"{shown(absent)}; they are ignored.",
            UserWarning,
            stacklevel=2,
        )
    return grading
