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

from queries.metrics import UNITS as METRIC_UNITS

FORMATS = ("table", "md", "latex", "csv", "json", "html")

# Units of the columns the tables carry, where a caller passes none (e.g. the demo's first
# table): every metric's, from the metric registry.
KNOWN_UNITS = dict(METRIC_UNITS)
# How a paper names what a table calls by identifier.
QUANTITY_LABELS = {"energy": "Energy", "force": "Force", "force_norm": "Force (norm)",
                   "stress": "Stress"}
STATISTIC_LABELS = {"mae": "MAE", "rmse": "RMSE", "max": "max", "mean": "mean", "std": "std"}
KEY_LABELS = {
    "model": "Model", "dataset": "Dataset", "element": "Element", "subset": "Subset",
    "n_elements": r"$n_\mathrm{el}$", "rank": "Rank", "n_structures": "$N$",
    "n_atoms": r"$N_\mathrm{atoms}$", "n_predicted": r"$N_\mathrm{ok}$",
    "n_failed": r"$N_\mathrm{failed}$", "n_missing": r"$N_\mathrm{missing}$",
}
CI_SUFFIXES = ("_lo", "_hi")

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
        text = f"{value:.{digits}f}"
        # -0.00001 prints as "-0.0000": a sign on a printed zero says nothing true
        return text[1:] if text.startswith("-") and not text.strip("-0.") else text
    return str(value)


def ci_columns(df: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """``{metric: (metric_lo, metric_hi)}`` for every column with both bounds beside it."""
    return {c: (f"{c}_lo", f"{c}_hi") for c in df.columns
            if f"{c}_lo" in df.columns and f"{c}_hi" in df.columns}


def with_units(df: pd.DataFrame, units: Mapping[str, str] | None) -> dict[str, str]:
    """The units of ``df``'s columns: those given, else the known ones (bounds share theirs)."""
    given = dict(KNOWN_UNITS if units is None else units)
    for c in list(given):
        for suffix in CI_SUFFIXES:
            given.setdefault(c + suffix, given[c])
    return {c: given[c] for c in df.columns if c in given}


def display_cells(df: pd.DataFrame, digits: int) -> tuple[list[str], list[list[str]]]:
    """Column names and cell texts, a confidence interval folded into its value's cell as
    ``value [lo, hi]`` (its ``_lo``/``_hi`` columns are not shown apart)."""
    cis = ci_columns(df)
    bounds = {b for pair in cis.values() for b in pair}
    cols = [c for c in df.columns if c not in bounds]
    rows = []
    for _, row in df.iterrows():
        out = []
        for c in cols:
            text = cell(row[c], digits)
            if c in cis and not _missing(row[c]) and not _missing(row[cis[c][0]]):
                lo, hi = (cell(row[b], digits) for b in cis[c])
                text = f"{text} [{lo}, {hi}]"
            out.append(text)
        rows.append(out)
    return cols, rows


def _is_numeric(df: pd.DataFrame, col: str) -> bool:
    return pd.api.types.is_numeric_dtype(df[col]) and not pd.api.types.is_bool_dtype(df[col])


def best_mask(df: pd.DataFrame, best: Sequence[str], group: Sequence[str],
              digits: int | None = None) -> pd.DataFrame:
    """True where a ``best`` column holds its group's lowest value (groups of >= 2 values).

    Values are compared as printed (rounded to ``digits``): two models whose errors print alike
    are both best, in every column, whatever the last bits of their sums.
    """
    mask = pd.DataFrame(False, index=df.index, columns=df.columns)
    group = [g for g in group if g in df.columns]
    # the comparison rule (queries.selection): a row with failed or missing predictions is never best
    whole = pd.Series(True, index=df.index)
    for c in ("n_failed", "n_missing"):
        if c in df.columns:
            whole &= pd.to_numeric(df[c], errors="coerce").fillna(0) == 0
    for col in (c for c in best if c in df.columns):
        vals = pd.to_numeric(df[col], errors="coerce").where(whole)
        if digits is not None:
            vals = vals.round(digits)
        grouped = vals.groupby([df[g] for g in group], dropna=False) if group else vals.groupby(
            pd.Series(0, index=df.index))
        low = grouped.transform("min")
        count = grouped.transform("count")
        mask[col] = (vals == low) & (count >= 2)
    return mask


def _header(cols: Sequence[str], units: Mapping[str, str]) -> list[str]:
    return [f"{c} ({units[c]})" if c in units else str(c) for c in cols]


def _numeric_flags(df: pd.DataFrame, cols: Sequence[str]) -> list[bool]:
    """Right-aligned columns: numbers, and counts written "a/b" (:func:`paper_table`)."""
    def counts(c: str) -> bool:
        vals = df[c].dropna().astype(str)
        return len(vals) > 0 and bool(vals.str.fullmatch(r"\d+(/\d+)?").all())

    return [_is_numeric(df, c) or counts(c) for c in cols]


def to_text_table(
    df: pd.DataFrame, *, digits: int = 3, stamp: str | None = None,
    units: Mapping[str, str] | None = None,
) -> str:
    cols, body = display_cells(df, digits)
    cells = [_header(cols, with_units(df, units)), *body]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cols))]
    numeric = _numeric_flags(df, cols)
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


def to_markdown(
    df: pd.DataFrame, *, digits: int = 3, units: Mapping[str, str] | None = None,
    best: Sequence[str] = (), group: Sequence[str] = (), stamp: str | None = None,
) -> str:
    mask = best_mask(df, best, group, digits)
    cols, body = display_cells(df, digits)
    head = "| " + " | ".join(_header(cols, with_units(df, units))) + " |"
    rule = "|" + "|".join("---:" if num else "---" for num in _numeric_flags(df, cols)) + "|"
    rows = []
    for i, vals in zip(df.index, body, strict=True):
        vals = [f"**{v}**" if mask.at[i, c] else v for v, c in zip(vals, cols, strict=True)]
        rows.append("| " + " | ".join(vals) + " |")
    text = "\n".join([head, rule, *rows])
    return text + (f"\n\n<sub>{stamp}</sub>" if stamp else "")


def split_metric(col: str, units: Mapping[str, str]) -> tuple[str, str, str] | None:
    """``energy_mae`` -> (``Energy``, ``meV/atom``, ``MAE``) for a column with a unit; else None."""
    if col not in units or "_" not in col:
        return None
    quantity, _, statistic = col.rpartition("_")
    label = QUANTITY_LABELS.get(quantity, quantity.replace("_", " ").capitalize())
    return label, units[col], STATISTIC_LABELS.get(statistic, statistic)


def _latex_label(col: str) -> str:
    return KEY_LABELS.get(col) or latex_escape(col.replace("_", " "))


def _latex_header(cols: Sequence[str], units: Mapping[str, str]) -> list[str]:
    r"""Grouped header rows: the quantity, its unit below it, a ``\cmidrule`` over its statistics.

    The unit has a row of its own: "Energy (meV/atom)" on one line is often wider than the two
    numbers under it, and LaTeX then gives all the extra width to the last column of the group.
    """
    parts = [split_metric(c, units) for c in cols]
    if not any(parts):  # nothing to group: names, with units beside them
        return [" & ".join(_latex_label(c) + (f" ({latex_escape(units[c])})" if c in units else "")
                           for c in cols) + r" \\"]
    top, unit_row, rules, second = [], [], [], []
    i = 0
    while i < len(cols):
        if parts[i] is None:
            top.append("")
            unit_row.append("")
            second.append(_latex_label(cols[i]))
            i += 1
            continue
        j = i
        while j < len(cols) and parts[j] is not None and parts[j][:2] == parts[i][:2]:
            second.append(latex_escape(parts[j][2]))
            j += 1
        top.append(r"\multicolumn{%d}{c}{%s}" % (j - i, latex_escape(parts[i][0])))
        unit_row.append(r"\multicolumn{%d}{c}{(%s)}" % (j - i, latex_escape(parts[i][1])))
        rules.append(r"\cmidrule(lr){%d-%d}" % (i + 1, j))
        i = j
    return [" & ".join(top) + r" \\", " & ".join(unit_row) + r" \\", " ".join(rules),
            " & ".join(second) + r" \\"]


A4_TEXT_WIDTH_PT = 345  # the text width of LaTeX's article class at 10 pt (a4paper too)


def _font_size(df: pd.DataFrame, cols: Sequence[str], body: list[list[str]]) -> str | None:
    """The largest of \\small, \\footnotesize, \\scriptsize at which the table fits an A4 text
    width and height, by a character-count estimate; None when even \\scriptsize is too wide."""
    def width(text: str) -> float:
        value, _, bounds = text.partition(" [")
        return max(len(value), 0.8 * (len(bounds) + 1))  # bounds: a second, smaller line

    numeric = _numeric_flags(df, cols)
    points = 6.0 * len(cols)  # 2 x \\tabcolsep per column
    for k, num in enumerate(numeric):  # ~4.2 pt per digit, ~4.8 per letter at \\small (measured)
        points += max([width(r[k]) for r in body] + [5.0]) * (4.2 if num else 4.8)
    two_lines = any(" [" in c for r in body for c in r)
    for size, scale in ((r"\small", 1.0), (r"\footnotesize", 8 / 9), (r"\scriptsize", 7 / 9)):
        if points * scale <= A4_TEXT_WIDTH_PT and len(df) * (1.8 if two_lines else 1) * scale <= 44:
            return size
    return None


def to_latex(
    df: pd.DataFrame, *, digits: int = 3, units: Mapping[str, str] | None = None,
    best: Sequence[str] = (), group: Sequence[str] = (), stamp: str | None = None,
    notes: Sequence[str] = (), caption: str | None = None,
) -> str:
    r"""A ``table`` float with a booktabs ``tabular`` for a paper: metric columns grouped under
    their quantity and unit (``\cmidrule``), symbols for identifiers, the best value of each group
    of rows in bold (ties alike), a CI as ``value [lo, hi]`` on two lines of its cell, the stamp and
    notes as a footnote. Needs ``\usepackage{booktabs}``."""
    units = with_units(df, units)
    mask = best_mask(df, best, group, digits)
    cols, body = display_cells(df, digits)
    spec = "".join("r" if num else "l" for num in _numeric_flags(df, cols))
    size = _font_size(df, cols, body)
    lines = [] if size else [TOO_WIDE]
    lines += [r"\begin{table}[htbp]", r"\centering", size or r"\scriptsize",
              r"\setlength{\tabcolsep}{3pt}"]
    if caption:
        lines.append(r"\caption{" + latex_escape(caption) + "}")
    lines += [r"\begin{tabular}{" + spec + "}", r"\toprule", *_latex_header(cols, units),
              r"\midrule"]
    keys = [c for c in group if c in cols]  # rows of one group are compared with each other
    previous = None
    for i, vals in zip(df.index, body, strict=True):
        here = tuple(df.at[i, k] for k in keys)
        if keys and previous is not None and here != previous:
            lines.append(r"\addlinespace[2pt]")
        out = []
        for text, c in zip(vals, cols, strict=True):
            if c in keys and here == previous:
                text = ""  # the group's key is printed on its first row only
            text = _latex_cell(text) if text else ""
            out.append(r"\textbf{" + text + "}" if mask.at[i, c] else text)
        lines.append(" & ".join(out) + r" \\")
        previous = here
    lines += [r"\bottomrule", r"\end{tabular}"]
    foot = [latex_escape(n) for n in notes] + ([latex_escape(stamp)] if stamp else [])
    if foot:
        lines.append(r"\par\smallskip{\footnotesize " + r" \\ ".join(foot) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines)


TOO_WIDE = "% mlip-warehouse: this table is wider than an A4 text width; choose fewer with --columns"


def _latex_cell(text: str) -> str:
    """One cell: ``-`` for a missing value, a CI's bounds on a second, smaller line."""
    if text == "-":
        return "--"
    value, sep, bounds = text.partition(" [")
    if not sep:
        return latex_escape(text)
    return (r"\begin{tabular}[t]{@{}r@{}}" + latex_escape(value) + r"\\{\tiny["
            + latex_escape(bounds.rstrip("]")) + r"]}\end{tabular}")


def to_html(
    df: pd.DataFrame, *, digits: int = 3, units: Mapping[str, str] | None = None,
    best: Sequence[str] = (), group: Sequence[str] = (), stamp: str | None = None,
    notes: Sequence[str] = (),
) -> str:
    """A self-contained ``<table>`` fragment; best values in ``<strong>``, stamp as caption."""
    mask = best_mask(df, best, group, digits)
    cols, body = display_cells(df, digits)
    esc = html.escape
    out = ['<table class="warehouse">']
    if stamp or notes:
        foot = "<br>".join(esc(x) for x in [*notes, *([stamp] if stamp else [])])
        out.append(f'<caption style="caption-side: bottom; font-size: small">{foot}</caption>')
    out.append("<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in
                                       _header(cols, with_units(df, units))) + "</tr></thead>")
    out.append("<tbody>")
    numeric = _numeric_flags(df, cols)
    for i, vals in zip(df.index, body, strict=True):
        tds = []
        for text, c, num in zip(vals, cols, numeric, strict=True):
            text = esc(text)
            text = f"<strong>{text}</strong>" if mask.at[i, c] else text
            align = ' style="text-align: right"' if num else ""
            tds.append(f"<td{align}>{text}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    out += ["</tbody>", "</table>"]
    return "\n".join(out)


def to_json(df: pd.DataFrame, units: Mapping[str, str] | None = None) -> str:
    """A list of records; each record with a unit-bearing column also carries ``units``
    (column -> unit), so the numbers keep their units when the file travels alone."""
    records = json.loads(df.to_json(orient="records", double_precision=15))
    if units := with_units(df, units):
        records = [{**r, "units": units} for r in records]
    return json.dumps(records, indent=2, ensure_ascii=False)


def to_csv(df: pd.DataFrame, units: Mapping[str, str] | None = None) -> str:
    """CSV whose header names carry their units as ``name [unit]`` (the convention the series
    tables of ``warehouse ingest md`` read back)."""
    units = with_units(df, units)
    return df.rename(columns={c: f"{c} [{u}]" for c, u in units.items()}).to_csv(index=False)


def render_table(
    df: pd.DataFrame, fmt: str, *, digits: int = 3, units: Mapping[str, str] | None = None,
    best: Sequence[str] = (), group: Sequence[str] = (), stamp: str | None = None,
    notes: Sequence[str] = (), caption: str | None = None,
) -> str:
    """One table in format ``fmt`` (one of :data:`FORMATS`); JSON and CSV carry no stamp.

    Every format has the same columns and their units (``units``, else :data:`KNOWN_UNITS`):
    in the header (table, md, html, csv), in grouped headers (latex) or in each record (json).
    """
    if fmt == "json":
        return to_json(df, units)
    if fmt == "csv":
        return to_csv(df, units)
    if fmt == "latex":
        return to_latex(df, digits=digits, units=units, best=best, group=group, stamp=stamp,
                        notes=notes, caption=caption)
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


def offsets_by_element(offsets: pd.DataFrame) -> pd.DataFrame:
    """The fitted shifts with one row per element and one column per model (and dataset when
    there are several): the shape that fits a page when there are many elements."""
    several = offsets["dataset"].nunique() > 1
    key = offsets["model"] + (" / " + offsets["dataset"] if several else "")
    wide = offsets.assign(key=key).pivot_table(index="element", columns="key",
                                               values="shift_ev_per_atom", aggfunc="first")
    wide.columns.name = None
    return wide.reset_index()


ALWAYS_KEPT = ("model", "dataset", "subset", "element", "n_elements", "rank", "n_structures",
               "n_predicted", "n_failed", "n_missing")


def select_columns(df: pd.DataFrame, wanted: Sequence[str]) -> pd.DataFrame:
    """``df`` with its group keys and counts, and only the ``wanted`` metric columns: exact names
    (``force_rmse``) or a quantity (``energy`` = every ``energy_*``); their CI bounds follow."""
    chosen: list[str] = []
    for name in wanted:
        hits = [c for c in df.columns if c == name or (c.startswith(name + "_")
                                                        and not c.endswith(CI_SUFFIXES))]
        if not hits:
            from warehouse.errors import NoMatch

            have = [c for c in df.columns if c not in ALWAYS_KEPT and not c.endswith(CI_SUFFIXES)]
            raise NoMatch(f"--columns {name!r} names no column; choose from {', '.join(have)}")
        chosen += hits
    keep = [c for c in df.columns if c in ALWAYS_KEPT or c in chosen
            or any(c == x + suffix for x in chosen for suffix in CI_SUFFIXES)]
    return df[keep]


def paper_table(table: pd.DataFrame, *, keep_atoms: bool = False) -> tuple[pd.DataFrame, str]:
    """A leaderboard table shaped for a page, and its caption: one dataset goes to the caption,
    the counts become one column ``N`` ("a/b": a of b structures predicted ok), ``n_atoms`` goes
    unless asked for, a metric with no value in any row (no stress labels) goes, with a note."""
    t = table.copy()
    caption = []
    if "dataset" in t and t["dataset"].nunique() == 1:
        caption.append(f"Errors on dataset {t['dataset'].iloc[0]}.")
        t = t.drop(columns="dataset")
    empty = [c for c in t.columns if c in KNOWN_UNITS and t[c].isna().all()]
    if empty:
        t = t.drop(columns=[c for c in t.columns if c in empty or c[:-3] in empty])
        caption.append(f"No labels for {', '.join(empty)}.")
    if {"n_structures", "n_predicted"} <= set(t.columns):
        n, ok = t["n_structures"].astype(int), t["n_predicted"].astype(int)
        counts = [str(a) if a == b else f"{a}/{b}" for a, b in zip(ok, n, strict=True)]
        at = t.columns.get_loc("n_structures")
        t = t.drop(columns=[c for c in ("n_structures", "n_predicted", "n_failed", "n_missing")
                            if c in t.columns])
        t.insert(at, "n_structures", counts)
        caption.append("N: structures compared"
                       + ("; a/b: a of b predicted, the rest failed or missing"
                          " (warehouse failures lists them)." if any("/" in c for c in counts)
                          else ", all predicted."))
    if not keep_atoms and "n_atoms" in t:
        t = t.drop(columns="n_atoms")
    # the rows compared with each other (a dataset, an element, ...) come first, grouped
    front = [c for c in ("dataset", "subset", "element", "n_elements") if c in t.columns]
    t = t[[*front, *[c for c in t.columns if c not in front]]]
    return t.sort_values(front, kind="stable") if front else t, " ".join(caption)


def report_text(report, fmt: str, *, stamp: str | None = None, digits: int = 3,
                columns: Sequence[str] = ()) -> str:
    """A :class:`queries.leaderboard.LeaderboardReport` in ``fmt``, shifts and notes included.

    JSON stays a list of records; with fitted energy offsets each record carries
    ``energy_shifts`` (element -> eV/atom) of its model and dataset, CSV the same as JSON text.
    LaTeX is shaped for a page (:func:`paper_table`). ``columns`` chooses the metric columns.
    """
    from queries.leaderboard import METRICS, UNITS

    table = select_columns(report.table, columns) if columns else report.table
    units = with_units(table, {str(k): v for k, v in UNITS.items()})
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
        return render_table(table, fmt, units=units)
    group = ["dataset", *report.keys]  # a dataset moved to the caption is one group anyway
    caption = None
    if fmt == "latex":
        table, caption = paper_table(table, keep_atoms="n_atoms" in columns)
    text = render_table(table, fmt, digits=digits, units=units, best=METRICS, group=group,
                        stamp=None if report.offsets is not None else stamp, notes=report.notes,
                        caption=caption)
    if report.offsets is not None:
        shift_notes = ["per-element energy shifts mu (eV/atom), subtracted as x . mu per structure"]
        shifts = offsets_by_element(report.offsets) if fmt == "latex" else offsets_wide(report.offsets)
        text += "\n\n" + render_table(shifts, fmt, digits=4, units={}, stamp=stamp,
                                      notes=shift_notes, caption="Per-element energy shifts"
                                      " (eV/atom) fitted per model and dataset.")
    return text
