"""Exports: LaTeX (booktabs, units, best in bold, provenance stamp), HTML, Markdown; the stamp's
fingerprint is the same for the same inputs and changes with them."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from queries.export import best_mask, latex_escape, render_table, to_latex
from queries.stamp import rows_fingerprint
from unep_fixtures import DATASET, ingest_unep
from warehouse import __version__

TABLE = pd.DataFrame({
    "model": ["a_1", "b&c", "d"], "dataset": ["x", "x", "y"],
    "n_structures": [3, 3, 1], "force_rmse": [1.5, 0.5, np.nan], "energy_mae": [2.0, 3.0, 4.0],
})
UNITS = {"force_rmse": "meV/Å", "energy_mae": "meV/atom"}


def check_latex(tex: str) -> None:
    """Balanced environments and braces; one booktabs frame per tabular; rows as wide as the spec."""
    stack = []
    for kind, name in re.findall(r"\\(begin|end)\{(\w+)\}", tex):
        if kind == "begin":
            stack.append(name)
        else:
            assert stack and stack.pop() == name, f"unbalanced \\end{{{name}}}"
    assert not stack, f"unclosed environments {stack}"
    depth = 0
    for ch in re.sub(r"\\[{}]", "", tex):
        depth += (ch == "{") - (ch == "}")
        assert depth >= 0
    assert depth == 0, "unbalanced braces"
    for spec, body in re.findall(r"\\begin\{tabular\}\{(\w+)\}(.*?)\\end\{tabular\}", tex, re.S):
        assert body.count(r"\toprule") == body.count(r"\midrule") == body.count(r"\bottomrule") == 1
        assert body.index(r"\toprule") < body.index(r"\midrule") < body.index(r"\bottomrule")
        rows = [r for r in body.split("\n") if r.rstrip().endswith(r"\\")]
        for r in rows:
            cells = re.split(r"(?<!\\)&", r)
            spans = [int(m.group(1)) if (m := re.search(r"\\multicolumn\{(\d+)\}", c)) else 1
                     for c in cells]
            assert sum(spans) == len(spec), r


def test_latex_structure_units_bold_and_escaping():
    tex = to_latex(TABLE, units=UNITS, best=["force_rmse", "energy_mae"], group=["dataset"],
                   stamp="mlip-warehouse 0.1 · schema 0002 · rows abc · 2026-01-01", notes=["50% note"])
    check_latex(tex)
    assert r"(meV/\AA{})" in tex and "(meV/atom)" in tex
    assert r"a\_1" in tex and r"b\&c" in tex and r"50\% note" in tex
    assert r"\textbf{0.500}" in tex and r"\textbf{2.000}" in tex  # best of dataset x
    assert r"\textbf{4.000}" not in tex  # alone in its group: nothing to beat
    assert r"\footnotesize" in tex and "rows abc" in tex


def test_best_mask_ignores_nan_and_single_rows():
    mask = best_mask(TABLE, ["force_rmse"], ["dataset"])
    assert mask["force_rmse"].tolist() == [False, True, False]


class _Balanced(HTMLParser):
    VOID = {"br"}

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack.pop() == tag, tag


def test_html_and_markdown():
    html = render_table(TABLE, "html", units=UNITS, best=["force_rmse"], group=["dataset"],
                        stamp="STAMP")
    p = _Balanced()
    p.feed(html)
    assert not p.stack
    assert "<strong>0.500</strong>" in html and "STAMP" in html and "b&amp;c" in html
    md = render_table(TABLE, "md", units=UNITS, best=["force_rmse"], group=["dataset"], stamp="STAMP")
    assert "**0.500**" in md and "force_rmse (meV/Å)" in md and md.rstrip().endswith("</sub>")
    assert md.splitlines()[1].count("|") == TABLE.shape[1] + 1


def test_fingerprint_depends_on_rows_and_options_only():
    sums = pd.DataFrame({"model": ["a", "b"], "dataset": ["x", "x"], "n_structures": [3, 3],
                         "f_sq": [0.1, 0.2], "id_sum": [10, 20], "max_run": [1, 2]})
    fp = rows_fingerprint(sums, options={"by": []})
    assert fp == rows_fingerprint(sums.iloc[::-1], options={"by": []})  # row order irrelevant
    assert fp == rows_fingerprint(sums.assign(f_sq=[0.1 + 1e-16, 0.2]), options={"by": []})
    assert fp != rows_fingerprint(sums.assign(id_sum=[11, 20]), options={"by": []})
    assert fp != rows_fingerprint(sums, options={"by": ["element"]})


def test_latex_escape_specials():
    assert latex_escape("a_b%c$d#e{f}g~h^i\\") == (
        r"a\_b\%c\$d\#e\{f\}g\textasciitilde{}h\textasciicircum{}i\textbackslash{}")


@pytest.fixture
def filled(wh, shared_data):
    ingest_unep(wh, shared_data, models=("unep-v1", "eam-zhou"), sets=("eos",))
    return wh


def test_cli_latex_is_stamped_and_reproducible(filled, cli, tmp_path: Path):
    outs = []
    for name in ("a.tex", "b.tex"):
        res = cli("leaderboard", "-d", DATASET, "-f", "latex", "--out", tmp_path / name)
        assert res.exit_code == 0, res.output
        outs.append((tmp_path / name).read_text())
    assert outs[0] == outs[1]  # same inputs, same stamp (and same date within the test)
    tex = outs[0]
    check_latex(tex)
    stamp = re.search(r"mlip-warehouse (\S+) \$\\cdot\$ schema (\S+) \$\\cdot\$ rows ([0-9a-f]{16})"
                      r" \$\\cdot\$ (\d{4}-\d{2}-\d{2})", tex)
    assert stamp, tex
    assert stamp.group(1) == __version__ and stamp.group(2) == filled.revision()
    # two models, six metrics, one best each; the EOS forces (zero by symmetry, 1.8e-5 and
    # 2.2e-5 meV/Å) both print as 0.000: a tie as printed, so both are bold
    assert tex.count(r"\textbf{") == 8
    res = cli("leaderboard", "-d", DATASET, "-f", "latex", "--by", "subset")
    assert res.exit_code == 0
    assert stamp.group(3) not in res.stdout  # other rows used, other fingerprint
    if shutil.which("pdflatex"):
        doc = tmp_path / "doc.tex"
        doc.write_text("\\documentclass{article}\\usepackage{booktabs}\\usepackage[T1]{fontenc}"
                       "\\begin{document}\n" + tex + "\n\\end{document}\n")
        run = subprocess.run(["pdflatex", "-interaction=nonstopmode", doc.name], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout[-2000:]
