"""Keep ``DIR/logs/metrics.csv`` whole across ``--resume`` (Lightning's CSVLogger starts it afresh)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from robustfusion.atomic import write_text


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV log, or none when it does not exist."""
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def prepend_rows(path: Path, previous: list[dict[str, str]]) -> None:
    """Put the rows logged before a resume in front of the new ones.

    Rows of epochs that the resumed run logged again (the epoch cut short by the interruption)
    are dropped from ``previous``; the header is the union of both.
    """
    if not previous:
        return
    current = read_rows(path)
    first_new_epoch = min((int(row["epoch"]) for row in current if row.get("epoch")), default=None)
    kept = [
        row
        for row in previous
        if first_new_epoch is None or not row.get("epoch") or int(row["epoch"]) < first_new_epoch
    ]
    fields: list[str] = []
    for row in kept + current:
        fields += [key for key in row if key not in fields]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=sorted(fields))
    writer.writeheader()
    writer.writerows(kept + current)
    write_text(path, buffer.getvalue())
