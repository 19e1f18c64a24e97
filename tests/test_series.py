"""The whole notebook series in the smoke profile, rendered, opened in a browser.

This is CI's end-to-end check: every notebook executes top to bottom through
the real engine on the real data (a tiny subset), every figure is written
through ``save_figure``, the report renders to HTML and PDF, and a second
render retrains nothing. It needs the real CIFAR copies (skips without) and
takes several minutes; ``-m "not slow"`` leaves it out.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from helpers import report
from tests.conftest import PROJECT_ROOT
from tests.test_report import _count_pdf_pages, _dump_dom

pytestmark = [pytest.mark.slow, pytest.mark.real_data]


@pytest.fixture(scope="module")
def smoke_series(real_data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("series")
    env = dict(os.environ,
               CIFAR_LAB_RUNS_DIR=str(root / "runs"),
               CIFAR_LAB_FIGURES_DIR=str(root / "figures"),
               TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, "-m", "helpers", "report", "--profile", "smoke",
               "--data-dir", str(real_data_dir), "--output-dir", str(root / "report")]
    if report.find_chromium() is None:
        command.append("--no-pdf")
    started = time.perf_counter()
    first = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                           timeout=3600)
    first_seconds = time.perf_counter() - started
    return {"root": root, "env": env, "command": command, "first": first,
            "first_seconds": first_seconds}


def test_every_notebook_executes_and_renders(smoke_series):
    first = smoke_series["first"]
    assert first.returncode == 0, first.stderr[-4000:]
    root = smoke_series["root"]
    notebooks = sorted(path.name for path in (PROJECT_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    executed = sorted(path.name for path in (root / "report" / "executed").glob("*.ipynb"))
    assert executed == notebooks
    # Nothing was written next to the clean notebooks.
    assert not list((PROJECT_ROOT / "notebooks").glob("*.executed*"))
    page = (root / "report" / "index.html").read_text(encoding="utf-8")
    figures = sorted((root / "figures").glob("*.png"))
    assert len(figures) >= 20
    assert page.count("<img") >= len(figures)
    # Numbers in Findings come from run records of this execution.
    assert "best validation accuracy" in page
    # Smoke runs one seed: no comparison may claim a direction.
    assert "one seed cannot support a claim" in page and " beats " not in page
    # A page a reader can trust: no reprs, no TensorFlow start-up log, the profile stated first.
    for noise in ("PosixPath", "absl::InitializeLog", "cuInit", "cudart_stub", "<Figure size"):
        assert noise not in page, noise
    assert page.index("What these numbers can show") < page.index("this report (smoke)")
    records = list((root / "runs").glob("*/record.json"))
    assert records and all(json.loads(p.read_text())["status"] in ("completed", "diverged")
                            for p in records)


def test_report_opens_in_a_browser_with_every_figure_and_the_pdf_has_pages(smoke_series):
    chromium = report.find_chromium()
    if chromium is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    root = smoke_series["root"]
    body = re.search(r"<body[^>]*>", _dump_dom(chromium, root / "report" / "index.html")).group(0)
    total = int(re.search(r'data-images-total="(\d+)"', body).group(1))
    loaded = int(re.search(r'data-images-loaded="(\d+)"', body).group(1))
    assert total >= 20 and loaded == total
    assert _count_pdf_pages(root / "report" / "report.pdf") >= 9


def test_second_report_retrains_nothing(smoke_series):
    records_before = {p: p.stat().st_mtime_ns for p in (smoke_series["root"] / "runs").glob("*/record.json")}
    started = time.perf_counter()
    second = subprocess.run(smoke_series["command"], cwd=PROJECT_ROOT, env=smoke_series["env"],
                            capture_output=True, text=True, timeout=3600)
    assert second.returncode == 0, second.stderr[-4000:]
    records_after = {p: p.stat().st_mtime_ns for p in (smoke_series["root"] / "runs").glob("*/record.json")}
    assert records_after == records_before  # no record rewritten: every run came from the cache
    page = (smoke_series["root"] / "report" / "index.html").read_text(encoding="utf-8")
    assert "from cache" in page
    assert time.perf_counter() - started < smoke_series["first_seconds"]


def test_render_only_reads_exported_records_and_trains_nothing(smoke_series, real_data_dir):
    """The committed-records path: export the smoke series' records, then render
    from them with an empty run cache; nothing is trained and the page is whole."""
    assert smoke_series["first"].returncode == 0, smoke_series["first"].stderr[-4000:]
    root = smoke_series["root"]
    env = dict(smoke_series["env"], CIFAR_LAB_RECORDS_ROOT=str(root / "records"))
    exported = subprocess.run([sys.executable, "-m", "helpers", "records", "--profile", "smoke", "--data-dir",
                               str(real_data_dir), "--export", "--json"], cwd=PROJECT_ROOT, env=env,
                              capture_output=True, text=True, timeout=600)
    assert exported.returncode == 0, exported.stderr[-4000:]
    summary = json.loads(exported.stdout)
    assert summary["missing"] == [] and summary["export"]["copied"] == summary["total"]["runs"]
    copied = list((root / "records" / "smoke").glob("*/record.json"))
    assert len(copied) == summary["total"]["runs"]
    assert not list((root / "records" / "smoke").rglob("*.h5")) and not list((root / "records").rglob("*.keras"))

    empty_runs = root / "no-runs"
    env["CIFAR_LAB_RUNS_DIR"] = str(empty_runs)
    command = [sys.executable, "-m", "helpers", "report", "--profile", "smoke", "--render-only", "--data-dir",
               str(real_data_dir), "--output-dir", str(root / "rendered"), "--no-pdf"]
    rendered = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=3600)
    assert rendered.returncode == 0, rendered.stderr[-4000:]
    assert not list(empty_runs.glob("*/record.json"))  # nothing was trained
    page = (root / "rendered" / "index.html").read_text(encoding="utf-8")
    assert page.count("<img") >= 20 and "best validation accuracy" in page
    # A missing record is named, not trained.
    removed = copied[0]
    removed.unlink()
    rendered = subprocess.run(command + ["--notebooks", "01,02,03,04,05,06,07"], cwd=PROJECT_ROOT, env=env,
                              capture_output=True, text=True, timeout=3600)
    assert rendered.returncode == 1
    assert "--render-only trains nothing" in rendered.stderr or "MissingRunError" in rendered.stderr
    assert not list(empty_runs.glob("*/record.json"))
