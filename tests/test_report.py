"""`warehouse report`: a static site that opens from file:// and shows the leaderboard's numbers.

The browser half drives Debian's headless Chromium through selenium and its chromedriver; it
skips where they are absent (CI installs them, and fails rather than skips there).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from ingest.demo import run_demo
from queries.leaderboard import COLUMNS, leaderboard
from queries.report import build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def site(wh, tmp_path: Path) -> Path:
    run_demo(wh)
    return build_report(wh, tmp_path / "site" / "nested", energy_offset="per-element")


def test_the_site_is_self_contained_and_carries_the_leaderboards_numbers(wh, site: Path) -> None:
    page = site.read_text(encoding="utf-8")
    for src in re.findall(r'<img src="([^"]+)"', page):
        assert (site.parent / src).is_file(), src
    assert not re.search(r'(src|href)="(https?:)?//', page), "nothing is fetched from a network"
    assert "schema " in page and 'id="fingerprint"' in page and "mlip-warehouse" in page
    table = page[page.index('id="leaderboard-table"'):]
    values = [float(v) for v in re.findall(r'data-value="([^"]+)"', table[: table.index("</table>")])]
    board = leaderboard(wh, energy_offset="per-element")[COLUMNS]
    expected = board.select_dtypes("number").to_numpy(dtype=float).ravel()
    np.testing.assert_allclose(values, expected[np.isfinite(expected)], rtol=1e-12)


def test_cli_report_on_an_empty_warehouse_says_what_is_missing(cli, tmp_path: Path) -> None:
    res = cli("report", "--out", tmp_path / "empty")
    assert res.exit_code == 0, res.output
    page = (tmp_path / "empty" / "index.html").read_text(encoding="utf-8")
    assert page.count("<section") == 7 and "Traceback" not in page


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("CI"),
                    reason="Debian's chromium and chromium-driver are not installed")
def test_the_site_in_a_real_browser(wh, site: Path, tmp_path: Path) -> None:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1600"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.get(site.as_uri())
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        # every figure loaded (an image that failed has naturalWidth 0)
        assert driver.execute_script(
            "return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        shown = driver.execute_script("""
            const t = document.getElementById('leaderboard-table');
            const head = Array.from(t.tHead.rows[0].cells).map(c => c.textContent);
            return {head, rows: Array.from(t.tBodies[0].rows).map(r => Array.from(r.cells).map(c => c.textContent))};""")
        board = json.loads(leaderboard(wh, energy_offset="per-element")[COLUMNS].to_json(orient="records"))
        assert [r[0] for r in shown["rows"]] == [b["model"] for b in board]
        col = shown["head"].index("force_rmse (meV/Å)")
        for row, b in zip(shown["rows"], board, strict=True):
            assert float(row[col]) == pytest.approx(b["force_rmse"], rel=1e-3)  # shown to 4 digits
        # sorting by clicking a header: descending force RMSE puts Ni (the worse) first
        header = driver.find_elements(By.CSS_SELECTOR, "#leaderboard-table th")[col]
        header.click()
        header.click()
        first = driver.execute_script("return document.querySelector('#leaderboard-table tbody tr').cells[1].textContent")
        assert first == "mlearn-Ni-test"
        shot = tmp_path / "report.png"
        driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[0] > 500 and pixels[..., :3].std() > 0.05, "the screenshot is not blank"
