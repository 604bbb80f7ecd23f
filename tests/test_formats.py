"""Every output format, and the paper LaTeX (issue 16, defects 7 and 13), on the real UNEP-v1 data.

Three models: UNEP-v1, Zhou's EAM, and "unep-v1-twin", UNEP-v1's own predictions filed under a
second name (two models with identical errors: ties must be treated alike).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

import unep_fixtures
from queries.export import cell
from unep_fixtures import DATASET, ingest_unep

FORMATS = ("table", "md", "latex", "csv", "json", "html")
METRICS = ["energy_mae", "energy_rmse", "force_mae", "force_rmse", "stress_mae", "stress_rmse"]


@pytest.fixture
def filled(wh, shared_data: Path, tmp_path: Path, monkeypatch):
    twin = tmp_path / "fixtures"
    twin.mkdir()
    for p in unep_fixtures.FIXTURES.glob("*.npz"):
        (twin / p.name).symlink_to(p)
    shutil.copy(unep_fixtures.FIXTURES / "unep-v1.npz", twin / "unep-v1-twin.npz")
    monkeypatch.setattr(unep_fixtures, "FIXTURES", twin)
    ingest_unep(wh, shared_data, models=("unep-v1", "eam-zhou", "unep-v1-twin"))
    return wh


def _columns(fmt: str, text: str) -> list[str]:
    """The column names a format shows, units and markup taken off."""
    if fmt == "json":
        return [k for k in json.loads(text)[0] if k != "units"]
    if fmt == "csv":
        return [re.sub(r" \[.*\]$", "", c) for c in next(csv.reader(io.StringIO(text)))]
    if fmt == "table":
        return re.findall(r"(\w+)(?: \([^)]*\))?", text.splitlines()[0])
    if fmt == "md":
        return [re.sub(r" \(.*\)$", "", c.strip()) for c in text.splitlines()[0].strip("|").split("|")]
    if fmt == "html":
        return [re.sub(r" \(.*\)$", "", h) for h in re.findall(r"<th>(.*?)</th>", text)]
    raise ValueError(fmt)


@pytest.mark.parametrize("options", [[], ["--ci", "95"]], ids=["plain", "ci"])
def test_every_format_has_the_same_columns_with_units(filled, cli, options: list[str]) -> None:
    seen = {}
    for fmt in ("table", "md", "csv", "json", "html"):
        res = cli("leaderboard", "-d", DATASET, "-f", fmt, *options)
        assert res.exit_code == 0, res.output
        seen[fmt] = _columns(fmt, res.stdout)
        assert "n_predicted" in seen[fmt], fmt
        assert "meV/atom" in res.stdout and "meV/Å" in res.stdout and "GPa" in res.stdout, fmt
    bounds = {f"{m}_{s}" for m in METRICS for s in ("lo", "hi")}
    machine = [c for c in seen["json"] if c not in bounds]
    assert seen["csv"] == seen["json"]  # machine formats keep the bounds as columns
    for fmt in ("table", "md", "html"):
        assert seen[fmt] == machine, fmt  # the same columns, a CI folded into its value's cell


def test_ci_prints_value_and_interval(filled, cli) -> None:
    for fmt in ("table", "md", "latex"):
        res = cli("leaderboard", "-d", DATASET, "-f", fmt, "--ci", "95", "-m", "unep-v1",
                  "-m", "eam-zhou")
        assert res.exit_code == 0, res.output
        assert "_lo" not in res.stdout and "_hi" not in res.stdout
        assert re.search(r"\d+\.\d{3}(?:\\\\\{\\tiny| )\[\d+\.\d{3}, \d+\.\d{3}\]", res.stdout), fmt
    table = cli("leaderboard", "-d", DATASET, "--ci", "95").stdout
    assert max(len(line) for line in table.splitlines()) < 330  # was ~450 with _lo/_hi columns


def test_shifts_never_print_negative_zero(filled, cli) -> None:
    assert cell(-0.00001, 4) == "0.0000" and cell(-0.0001, 4) == "-0.0001"
    for fmt in ("table", "md", "latex", "html"):
        res = cli("leaderboard", "-d", DATASET, "-f", fmt, "--energy-offset", "per-element")
        assert res.exit_code == 0, res.output
        assert not re.search(r"-0\.0+(?!\d*[1-9])\b", res.stdout), fmt


def test_runs_shows_the_command_wall_time(filled, cli, shared_data: Path, monkeypatch) -> None:
    """A command's work before its transaction (an evaluate computes first) counts."""
    import ingest.timings as timings

    real = timings.parse_timings

    def slow(*args, **kwargs):
        time.sleep(1.5)  # the minutes an evaluate computes before it stores anything
        return real(*args, **kwargs)

    monkeypatch.setattr(timings, "parse_timings", slow)
    log = shared_data / "lammps/bench_eam_Cu/log.15Jul25.eam.fixed.g++.1"
    assert cli("ingest", "timings", str(log), "-m", "eam").exit_code == 0
    (row,) = json.loads(cli("runs", "--kind", "timings", "-f", "json").stdout)
    assert row["seconds"] >= 1.5


# -- paper LaTeX ----------------------------------------------------------------------------------


def test_latex_grouped_headers_symbols_and_counts(filled, cli) -> None:
    tex = cli("leaderboard", "-d", DATASET, "-f", "latex").stdout
    assert r"\multicolumn{2}{c}{Energy}" in tex and r"\multicolumn{2}{c}{(meV/\AA{})}" in tex
    assert r"\cmidrule(lr){3-4}" in tex and "MAE & RMSE & MAE & RMSE" in tex
    for identifier in ("n\\_structures", "energy\\_mae", "n\\_failed", "n\\_atoms"):
        assert identifier not in tex
    assert "Model & $N$ &" in tex  # the counts are one column
    assert f"Errors on dataset {DATASET}" in tex  # one dataset: named in the caption


def test_latex_ties_are_bold_alike(filled, cli) -> None:
    """unep-v1 and its twin have identical errors: bold alike in every metric column (both
    bold where they are best, neither where Zhou's EAM is, as for Ni's forces)."""
    for by in ([], ["--by", "element"]):
        tex = cli("leaderboard", "-d", DATASET, "-f", "latex", *by).stdout

        def bold(name: str) -> list[list[bool]]:
            rows = [r for r in tex.splitlines() if re.search(rf"(^|& ){name} &", r)]
            return [[c.startswith(r"\textbf{") for c in r.rstrip(" \\").split(" & ")[-6:]]
                    for r in rows]

        one, twin = bold("unep-v1"), bold("unep-v1-twin")
        assert one and one == twin
        assert any(all(flags) for flags in one)
        if by:
            assert not all(all(flags) for flags in one)  # somewhere EAM is best


def test_latex_columns_option(filled, cli) -> None:
    res = cli("leaderboard", "-d", DATASET, "-f", "latex", "--columns", "energy,force_rmse")
    assert res.exit_code == 0, res.output
    assert "Stress" not in res.stdout and "MAE & RMSE & RMSE" in res.stdout
    res = cli("leaderboard", "-d", DATASET, "-f", "json", "--columns", "force_rmse")
    assert {k for k in json.loads(res.stdout)[0] if k.endswith(("mae", "rmse"))} == {"force_rmse"}
    res = cli("leaderboard", "-d", DATASET, "--columns", "nonsense")
    assert res.exit_code == 1 and "names no column" in res.output
    # a metric outside the default table, named by --columns: computed for it
    res = cli("leaderboard", "-d", DATASET, "-f", "json", "--columns", "force_rmse,force_norm_rmse")
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)[0]
    assert row["force_rmse"] > 0  # the norm RMSE is exactly sqrt(3) x the component RMSE
    assert row["force_norm_rmse"] == pytest.approx(3 ** 0.5 * row["force_rmse"], rel=1e-6)


def test_out_into_a_new_folder(filled, cli, tmp_path: Path) -> None:
    out = tmp_path / "paper" / "tables" / "errors.tex"
    res = cli("leaderboard", "-d", DATASET, "-f", "latex", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert out.read_text().startswith(r"\begin{table}")
    res = cli("leaderboard", "-d", DATASET, "-f", "latex", "--out", str(tmp_path))
    assert res.exit_code == 1 and "is a folder" in res.output and "Traceback" not in res.output


def _pdflatex() -> str:
    exe = shutil.which("pdflatex")
    if exe is None:
        if os.environ.get("WAREHOUSE_REQUIRE_PDFLATEX"):
            pytest.fail("pdflatex is missing (.ci/run installs texlive-latex-base)")
        pytest.skip("pdflatex is not installed (Debian: texlive-latex-base texlive-latex-recommended)")
    return exe


EXPORTS = {
    "default": [],
    "by-element": ["--by", "element"],
    "by-subset": ["--by", "subset"],
    "energy-offset": ["--energy-offset", "per-element"],
    "columns-ci": ["--columns", "energy,force", "--ci", "95"],
}


@pytest.mark.parametrize("name", list(EXPORTS))
def test_latex_compiles_on_an_a4_page(filled, cli, tmp_path: Path, name: str) -> None:
    """pdflatex, an A4 article with booktabs: no error, no overfull box, no float too large."""
    exe = _pdflatex()
    res = cli("leaderboard", "-d", DATASET, "-f", "latex", *EXPORTS[name])
    assert res.exit_code == 0, res.output
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass[a4paper]{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
                   + res.stdout + "\n\\end{document}\n", encoding="utf-8")
    run = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", doc.name],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert run.returncode == 0, run.stdout[-2000:]
    assert "Overfull" not in log, re.findall(r"Overfull.*", log)
    assert "Float too large" not in log
    if shutil.which("pdftoppm"):  # the page as a picture (CI keeps it; a person looks at it)
        subprocess.run(["pdftoppm", "-r", "60", "-png", "-singlefile", "doc.pdf", "page"],
                       cwd=tmp_path, check=True, timeout=60)
        assert (tmp_path / "page.png").stat().st_size > 1000


def test_a_too_wide_table_says_so(filled, cli) -> None:
    res = cli("leaderboard", "-d", DATASET, "-f", "latex", "--ci", "95")
    assert res.exit_code == 0
    assert "wider than an A4" in res.output and "--columns" in res.output


def test_every_format_renders_a_frame_alike() -> None:
    """The pure renderer: same columns in every format, units from the known metrics."""
    from queries.export import render_table

    df = pd.DataFrame({"model": ["a", "b"], "n_predicted": [3, 3], "energy_mae": [1.0, 1.0004],
                       "energy_mae_lo": [0.5, 0.6], "energy_mae_hi": [1.5, 1.6]})
    for fmt in FORMATS:
        text = render_table(df, fmt, best=["energy_mae"])
        assert "meV/atom" in text, fmt
        if fmt in ("md", "latex", "html"):  # 1.000 and 1.000 as printed: both best
            assert text.count("**1.000") + text.count(r"\textbf{") + text.count("<strong>") == 2
