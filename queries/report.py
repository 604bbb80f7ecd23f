"""``warehouse report``: a static site of the warehouse's results that opens from ``file://``.

One ``index.html`` (tables as HTML, sorted by clicking a header; a few lines of inline script,
no network) and its figures as SVG beside it: leaderboard per dataset, per-element heat map,
accuracy-cost Pareto front, parity plots, ensemble UQ, MD stability, properties, and a footer with
the warehouse version, schema revision, a fingerprint of the data shown and the date. Each
section is computed by the same query functions as the command line; a section without data says
so instead of failing the page.
"""

from __future__ import annotations

import hashlib
import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from queries.metrics import UNITS as metric_units
from warehouse import Warehouse, __version__
from warehouse.errors import WarehouseError

MAX_PARITY = 12  # parity figures: the first model x dataset pairs, by name

UNITS = dict(metric_units)  # every metric's unit, from the registry (queries.metrics)

SORT_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach((th, col) => {
  th.addEventListener('click', () => {
    const body = th.closest('table').tBodies[0];
    const asc = th.dataset.order !== 'asc';
    th.closest('tr').querySelectorAll('th').forEach(h => delete h.dataset.order);
    th.dataset.order = asc ? 'asc' : 'desc';
    const key = td => td.dataset.value !== undefined && td.dataset.value !== ''
      ? parseFloat(td.dataset.value) : td.textContent;
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = key(a.cells[col]), y = key(b.cells[col]);
      const c = (typeof x === 'number' && typeof y === 'number') ? x - y : String(x).localeCompare(String(y));
      return asc ? c : -c;
    });
    rows.forEach(r => body.appendChild(r));
  });
});
"""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
th, td { padding: .25em .6em; border-bottom: 1px solid #e4e4e4; text-align: right; }
th { background: #f4f4f4; cursor: pointer; white-space: nowrap; }
td.text, th.text { text-align: left; }
table.heat td { min-width: 3.5em; }
div.wide { overflow-x: auto; }
p.note { color: #666; font-size: .9em; }
figure { display: inline-block; margin: .5em 1em .5em 0; }
figure img { width: 26em; border: 1px solid #eee; }
footer { margin-top: 3em; color: #666; font-size: .85em; border-top: 1px solid #ccc; padding-top: .5em; }
"""


@dataclass
class Section:
    title: str
    anchor: str
    body: list[str] = field(default_factory=list)


def build_report(wh: Warehouse, out: Path, *, datasets: Sequence[str] = (),
                 energy_offset: str = "none") -> Path:
    """Write the site into ``out`` (created if needed); returns the path of ``index.html``."""
    out.mkdir(parents=True, exist_ok=True)
    site = _Site(wh, out, list(datasets), energy_offset)
    sections = [site.section(title, anchor, fill) for title, anchor, fill in (
        ("Leaderboard", "leaderboard", site.leaderboard),
        ("Errors per element", "elements", site.elements),
        ("Accuracy against cost", "pareto", site.pareto),
        ("Parity", "parity", site.parity),
        ("Ensemble uncertainty", "uq", site.uq),
        ("MD stability", "md", site.md),
        ("Properties", "properties", site.properties),
    )]
    index = out / "index.html"
    index.write_text(_page(sections, site.footer()), encoding="utf-8")
    return index


class _Site:
    def __init__(self, wh: Warehouse, out: Path, datasets: list[str], energy_offset: str) -> None:
        self.wh, self.out, self.datasets, self.energy_offset = wh, out, datasets, energy_offset
        self.fingerprints: list[str] = []

    def section(self, title: str, anchor: str, fill: Callable[[Section], None]) -> Section:
        sec = Section(title, anchor)
        try:
            fill(sec)
        except WarehouseError as exc:  # no data of this kind, or a query that refuses: say why
            sec.body = [f'<p class="note">{html.escape(str(exc))}</p>']
        if not sec.body:
            sec.body = ['<p class="note">Nothing of this kind is stored.</p>']
        return sec

    def leaderboard(self, sec: Section) -> None:
        from queries.leaderboard import COLUMNS, leaderboard_report

        report = leaderboard_report(self.wh, datasets=self.datasets,
                                    energy_offset=self.energy_offset)
        self.fingerprints.append(report.fingerprint)
        sec.body.append(f'<p class="note">Energy offset: {html.escape(self.energy_offset)}.'
                        " Every row counts its structures, failures and missing predictions;"
                        " click a header to sort.</p>")
        sec.body.append(_table(report.table[COLUMNS], table_id="leaderboard-table"))
        sec.body += [f'<p class="note">{html.escape(n)}</p>' for n in report.notes]

    def elements(self, sec: Section) -> None:
        from queries.leaderboard import leaderboard_report

        report = leaderboard_report(self.wh, datasets=self.datasets, by=["element"], pool=True,
                                    energy_offset=self.energy_offset)
        t = report.table
        if t.empty or "element" not in t:
            return
        grid = t.pivot_table(index="model", columns="element", values="force_rmse", aggfunc="first")
        sec.body.append('<p class="note">Force RMSE (meV/Å) over the atoms of each element,'
                        " datasets pooled; darker is worse.</p>")
        sec.body.append(_heat_table(grid))

    def pareto(self, sec: Section) -> None:
        from queries.cost_figures import plot_pareto
        from queries.pareto import pareto

        from queries.catalog import list_datasets

        # one front per dataset: a front compares models on one set of structures (never pooled
        # silently), each model entering only with every structure predicted ok
        for i, dataset in enumerate(self.datasets or list(list_datasets(self.wh)["dataset"])):
            try:
                rows = pareto(self.wh, datasets=[dataset], energy_offset=self.energy_offset)
            except WarehouseError:  # no predictions or no timings for this dataset
                continue
            rows = rows.dropna(subset=["s_per_atom_step"])
            if rows.empty:
                continue
            sec.body.append(_figure(plot_pareto(rows, self.out / f"pareto-{i}.svg"),
                                    f"Pareto front on {dataset}"))
            shown = [c for c in ("model", "protocol", "error", "s_per_atom_step", "n_structures",
                                 "n_failed", "n_missing", "on_front", "note") if c in rows]
            sec.body.append(_table(rows[shown]))

    def parity(self, sec: Section) -> None:
        from queries.figures import parity_data, plot_parity
        from queries.leaderboard import leaderboard

        pairs = leaderboard(self.wh, datasets=self.datasets)[["model", "dataset"]]
        for model, dataset in pairs.itertuples(index=False):
            if len(sec.body) >= 2 * MAX_PARITY:
                sec.body.append(f'<p class="note">First {MAX_PARITY} model/dataset pairs shown;'
                                " `warehouse plot parity` draws any other.</p>")
                break
            for quantity in ("energy", "forces"):
                try:
                    df = parity_data(self.wh, model=model, dataset=dataset, quantity=quantity,
                                     energy_offset=self.energy_offset)
                except WarehouseError:
                    continue
                name = f"parity-{_slug(model)}-{_slug(dataset)}-{quantity}.svg"
                path = plot_parity(df, self.out / name, quantity=quantity, title=f"{model} on {dataset}")
                sec.body.append(_figure(path, f"{model} on {dataset}: {quantity}"))

    def uq(self, sec: Section) -> None:
        from queries.catalog import list_datasets
        from queries.uq import uq_report

        with self.wh.engine.connect() as conn:
            ensembles = [r[0] for r in conn.exec_driver_sql("SELECT name FROM ensembles ORDER BY name")]
        datasets = self.datasets or list(list_datasets(self.wh)["dataset"])
        for ens in ensembles:
            table, _ = uq_report(self.wh, datasets=datasets, ensemble=ens)
            sec.body.append(f"<h3>Ensemble {html.escape(ens)}</h3>")
            sec.body.append(_table(table))

    def md(self, sec: Section) -> None:
        from queries.md import drift_table

        report = drift_table(self.wh)
        if report.table.empty:
            return
        sec.body.append(_table(report.table))
        sec.body += [f'<p class="note">{html.escape(str(n))}</p>' for n in getattr(report, "notes", [])]

    def properties(self, sec: Section) -> None:
        from queries.properties import parity

        report = parity(self.wh)
        table = getattr(report, "summary", None)
        table = table if table is not None else getattr(report, "table", pd.DataFrame())
        if len(table):
            sec.body.append(_table(table))

    def footer(self) -> str:
        revision = self.wh.revision() or "none"
        counts = self.wh.counts()
        digest = hashlib.sha256(("|".join(self.fingerprints) + repr(sorted(counts.items())))
                                .encode()).hexdigest()[:16]
        date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        return (f"mlip-warehouse {html.escape(__version__)} · schema {html.escape(revision)}"
                f' · data <span id="fingerprint">{digest}</span> · {date} ·'
                f" {counts.get('structures', 0)} structures, {counts.get('predictions', 0)} predictions")


def _page(sections: list[Section], footer: str) -> str:
    nav = " · ".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections)
    body = "\n".join(f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>\n' + "\n".join(s.body)
                     + "</section>" for s in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>MLIP benchmark report</title><style>{STYLE}</style></head>\n<body>"
            f"<h1>MLIP benchmark report</h1><nav>{nav}</nav>\n{body}\n<footer>{footer}</footer>"
            f"<script>{SORT_SCRIPT}</script></body></html>\n")


def _table(df: pd.DataFrame, *, table_id: str | None = None) -> str:
    head = "".join(f'<th class="{"text" if _is_text(df[c]) else "num"}">{html.escape(_header(c))}</th>'
                   for c in df.columns)
    rows = []
    for rec in df.itertuples(index=False):
        cells = []
        for col, v in zip(df.columns, rec, strict=True):
            if _is_text(df[col]) or v is None or isinstance(v, str):
                cells.append(f'<td class="text">{html.escape("" if _missing(v) else str(v))}</td>')
            else:
                cells.append(f'<td data-value="{"" if _missing(v) else repr(float(v))}">{_fmt(v)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    ident = f' id="{table_id}"' if table_id else ""
    return (f'<div class="wide"><table class="sortable"{ident}><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _heat_table(grid: pd.DataFrame) -> str:
    from matplotlib import colormaps

    values = grid.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    cmap = colormaps["YlOrRd"]
    head = '<th class="text">model</th>' + "".join(f"<th>{html.escape(str(c))}</th>" for c in grid.columns)
    rows = []
    for model, row in grid.iterrows():
        cells = [f'<td class="text">{html.escape(str(model))}</td>']
        for v in row:
            if _missing(v):
                cells.append('<td data-value=""></td>')
                continue
            r, g, b, _ = cmap(0.1 + 0.8 * ((v - lo) / (hi - lo) if hi > lo else 0.5))
            ink = "#fff" if (0.299 * r + 0.587 * g + 0.114 * b) < 0.5 else "#000"
            cells.append(f'<td data-value="{float(v)!r}" style="background:rgb({r*255:.0f},{g*255:.0f},'
                         f'{b*255:.0f});color:{ink}">{_fmt(v)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="sortable heat" id="elements-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _figure(path: Path, caption: str) -> str:
    return (f'<figure><img src="{html.escape(path.name)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _header(col: str) -> str:
    return f"{col} ({UNITS[col]})" if col in UNITS else col


def _is_text(series: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


def _missing(v: object) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _fmt(v: object) -> str:
    if _missing(v):
        return ""
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    x = float(v)
    return f"{x:.4g}" if x == 0 or 1e-3 <= abs(x) < 1e5 else f"{x:.3e}"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
