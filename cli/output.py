"""One output option for every command that prints a table: table, md, csv, json."""

from __future__ import annotations

import json
import math
from enum import StrEnum
from pathlib import Path

import pandas as pd
import typer


class Format(StrEnum):
    TABLE = "table"
    MD = "md"
    CSV = "csv"
    JSON = "json"


def _cell(value: object, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def to_markdown(df: pd.DataFrame, *, digits: int = 3) -> str:
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(df[c]) else "---" for c in df.columns) + "|"
    rows = ["| " + " | ".join(_cell(v, digits) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def to_text_table(df: pd.DataFrame, *, digits: int = 3) -> str:
    cells = [[str(c) for c in df.columns]] + [
        [_cell(v, digits) for v in row] for row in df.itertuples(index=False)
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(df.columns))]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    lines = []
    for k, row in enumerate(cells):
        lines.append("  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(row, widths, numeric, strict=True)
        ).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def to_json(df: pd.DataFrame) -> str:
    records = json.loads(df.to_json(orient="records", double_precision=15))
    return json.dumps(records, indent=2, ensure_ascii=False)


def render(df: pd.DataFrame, fmt: Format, *, digits: int = 3) -> str:
    if fmt is Format.JSON:
        return to_json(df)
    if fmt is Format.CSV:
        return df.to_csv(index=False)
    if fmt is Format.MD:
        return to_markdown(df, digits=digits)
    return to_text_table(df, digits=digits)


def emit(text: str, out: Path | None = None) -> None:
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        typer.echo(f"wrote {out}", err=True)
