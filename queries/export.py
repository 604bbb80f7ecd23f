"""Tables as text for papers and pages: plain, Markdown, LaTeX (booktabs), HTML, CSV, JSON.

Pure functions of a DataFrame (no database). ``units`` maps a column to its unit, shown in the
header; ``best`` names columns where the lowest value is best and set in bold within each group of
rows sharing the ``group`` columns (the models compared on the same data), when the group has at
least two values; ``stamp`` is a provenance line (``queries.stamp``), set as a footnote.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence

import pandas as pd

FORMATS = ("table", "md", "latex", "csv", "json", "html")

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "Å": r"\AA{}", "±": r"$\pm$", "·": r"$\cdot$",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def cell(value: object, digits: int) -> str:
    if _missing(value):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _is_numeric(df: pd.DataFrame, col: str) -> bool:
    return pd.api.types.is_numeric_dtype(df[col]) and not pd.api.types.is_bool_dtype(df[col])


def best_mask(df: pd.DataFrame, best: Sequence[str], group: Sequence[str]) -> pd.DataFrame:
    """True where a ``best`` column holds its group's lowest value (groups of >= 2 values)."""
    mask = pd.DataFrame(False, index=df.index, columns=df.columns)
    group = [g for g in group if g in df.columns]
    # the comparison rule (queries.selection): a row with failed or missing predictions is never best
    whole = pd.Series(True, index=df.index)
    for c in ("n_failed", "n_missing"):
        if c in df.columns:
            whole &= pd.to_numeric(df[c], errors="coerce").fillna(0) == 0
    for col in (c for c in best if c in df.columns):
        vals = pd.to_numeric(df[col], errors="coerce").where(whole)
        grouped = vals.groupby([df[g] for g in group], dropna=False) if group else vals.groupby(
            pd.Series(0, index=df.index))
        low = grouped.transform("min")
        count = grouped.transform("count")
        mask[col] = (vals == low) & (count >= 2)
    return mask


def to_text_table(
    df: pd.DataFrame, *, digits: int = 3, stamp: str | None = None,
    units: Mapping[str, str] | None = None,
) -> str:
    cells = [_header(df, units or {})] + [
        [cell(v, digits) for v in row] for row in df.itertuples(index=False)
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(df.columns))]
    numeric = [_is_numeric(df, c) for c in df.columns]
    lines = []
    for k, row in enumerate(cells):
        lines.append("  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(row, widths, numeric, strict=True)
        ).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    if stamp:
        lines += ["", stamp]
    return "\n".join(lines)


def _header(df: pd.DataFrame, units: Mapping[str, str]) -> list[str]:
    return [f"{c} ({units[c]})" if c in units else str(c) for c in df.columns]


def to_markdown(
    df: pd.DataFrame, *, digits: int = 3, units: Mapping[str, str] | None = None,
    best: Sequence[str] = (), group: Sequence[str] = (), stamp: str | None = None,
) -> str:
    units = units or {}
    mask = best_mask(df, best, group)
    head = "| " + " | ".join(_header(df, units)) + " |"
    rule = "|" + "|".join("---:" if _is_numeric(df, c) else "---" for c in df.columns) + "|"
    rows = []
    for i, row in zip(df.index, df.itertuples(index=False), strict=True):
        vals = [cell(v, digits) for v in row]
        vals = [f"**{v}**" if mask.at[i, c] else v for v, c in zip(vals, df.columns, strict=True)]
        rows.append("| " + " | ".join(vals) + " |")
    text = "\n".join([head, rule, *rows])
    return text + (f"\n\n<sub>{stamp}</sub>" if stamp else "")


def to_latex(
    df: pd.DataFrame, *, digits: int = 3, units: Mapping[str, str] | None = None,
    best: Sequence[str] = (), group: Sequence[str] = (), stamp: str | None = None,
    notes: Sequence[str] = (), caption: str | None = None,
) -> str:
    """A ``table`` float with a booktabs ``tabular``: names, then units, then rows; the stamp
    and notes as a footnote line under the rule. Needs ``\\usepackage{booktabs}``."""
    units = units or {}
    mask = best_mask(df, best, group)
    spec = "".join("r" if _is_numeric(df, c) else "l" for c in df.columns)
    names = " & ".join(latex_escape(c) for c in df.columns) + r" \\"
    unit_row = " & ".join(f"({latex_escape(units[c])})" if c in units else "" for c in df.columns)
    lines = [r"\begin{table}[htbp]", r"\centering"]
    if caption:
        lines.append(r"\caption{" + latex_escape(caption) + "}")
    lines += [r"\begin{tabular}{" + spec + "}", r"\toprule", names]
    if units:
        lines.append(unit_row + r" \\")
    lines.append(r"\midrule")
    for i, row in zip(df.index, df.itertuples(index=False), strict=True):
        vals = []
        for v, c in zip(row, df.columns, strict=True):
            text = "--" if _missing(v) else latex_escape(cell(v, digits))
            vals.append(r"\textbf{" + text + "}" if mask.at[i, c] else text)
        lines.append(" & ".join(vals) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    foot = [latex_escape(n) for n in notes] + ([latex_escape(stamp)] if stamp else [])
    if foot:
        lines.append(r"\par\smallskip{\footnotesize " + r" \\ ".join(foot) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines)


def to_html(
    df: pd.DataFrame, *, digits: int = 3, units: Mapping[str, str] | None = None,
    best: Sequence[str] = (), group: Sequence[str] = (), stamp: str | None = None,
    notes: Sequence[str] = (),
) -> str:
    """A self-contained ``<table>`` fragment; best values in ``<strong>``, stamp as caption."""
    units = units or {}
    mask = best_mask(df, best, group)
    esc = html.escape
    out = ['<table class="warehouse">']
    if stamp or notes:
        foot = "<br>".join(esc(x) for x in [*notes, *([stamp] if stamp else [])])
        out.append(f'<caption style="caption-side: bottom; font-size: small">{foot}</caption>')
    out.append("<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in _header(df, units))
               + "</tr></thead>")
    out.append("<tbody>")
    for i, row in zip(df.index, df.itertuples(index=False), strict=True):
        tds = []
        for v, c in zip(row, df.columns, strict=True):
            text = esc(cell(v, digits))
            text = f"<strong>{text}</strong>" if mask.at[i, c] else text
            align = ' style="text-align: right"' if _is_numeric(df, c) else ""
            tds.append(f"<td{align}>{text}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    out += ["</tbody>", "</table>"]
    return "\n".join(out)


def to_json(df: pd.DataFrame) -> str:
    records = json.loads(df.to_json(orient="records", double_precision=15))
    return json.dumps(records, indent=2, ensure_ascii=False)


def render_table(
    df: pd.DataFrame, fmt: str, *, digits: int = 3, units: Mapping[str, str] | None = None,
    best: Sequence[str] = (), group: Sequence[str] = (), stamp: str | None = None,
    notes: Sequence[str] = (),
) -> str:
    """One table in format ``fmt`` (one of :data:`FORMATS`); JSON and CSV carry no stamp."""
    if fmt == "json":
        return to_json(df)
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "latex":
        return to_latex(df, digits=digits, units=units, best=best, group=group, stamp=stamp,
                        notes=notes)
    if fmt == "html":
        return to_html(df, digits=digits, units=units, best=best, group=group, stamp=stamp,
                       notes=notes)
    lines = "".join(f"\n{'- ' if fmt == 'md' else ''}{n}" for n in notes)
    if fmt == "md":
        text = to_markdown(df, digits=digits, units=units, best=best, group=group)
        return text + ("\n" + lines if notes else "") + (f"\n\n<sub>{stamp}</sub>" if stamp else "")
    if fmt == "table":
        text = to_text_table(df, digits=digits, units=units)
        return text + ("\n" + lines if notes else "") + (f"\n\n{stamp}" if stamp else "")
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def offsets_wide(offsets: pd.DataFrame) -> pd.DataFrame:
    """The fitted shifts as one row per (model, dataset), one column per element (eV/atom)."""
    wide = offsets.pivot_table(index=["model", "dataset"], columns="element",
                               values="shift_ev_per_atom", aggfunc="first").reset_index()
    wide.columns.name = None
    return wide


def report_text(report, fmt: str, *, stamp: str | None = None, digits: int = 3) -> str:
    """A :class:`queries.leaderboard.LeaderboardReport` in ``fmt``, shifts and notes included.

    JSON stays a list of records; with fitted energy offsets each record carries
    ``energy_shifts`` (element -> eV/atom) of its model and dataset, CSV the same as JSON text.
    """
    from queries.leaderboard import METRICS, UNITS

    table = report.table
    units = {str(k): v for k, v in UNITS.items()}
    units.update({f"{m}_{s}": units[m] for m in METRICS for s in ("lo", "hi")})
    if fmt in ("json", "csv"):
        if report.offsets is not None:
            shifts = {
                key: dict(zip(g["element"], g["shift_ev_per_atom"], strict=True))
                for key, g in report.offsets.groupby(["model", "dataset"])
            }
            table = table.assign(energy_shifts=[
                shifts.get((mo, ds), {}) for mo, ds in zip(table["model"], table["dataset"], strict=True)
            ])
            if fmt == "csv":
                table["energy_shifts"] = table["energy_shifts"].map(json.dumps)
        return render_table(table, fmt)
    group = ["dataset", *report.keys]
    text = render_table(table, fmt, digits=digits, units=units, best=METRICS, group=group,
                        stamp=None if report.offsets is not None else stamp, notes=report.notes)
    if report.offsets is not None:
        shift_notes = ["per-element energy shifts mu (eV/atom), subtracted as x . mu per structure"]
        text += "\n\n" + render_table(offsets_wide(report.offsets), fmt, digits=4, stamp=stamp,
                                      notes=shift_notes)
    return text
