"""The report command: execution with papermill, the page nbconvert renders, the PDF.

Three tiny notebooks are executed once for the module (a few seconds per
kernel): one with parameters and two figures, one that fails in a code cell,
and one after it that must still run.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from helpers import cli, notebook_execution, notebook_html, pdf, report

PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def _figures_notebook():
    return new_notebook(cells=[
        new_markdown_cell(
            "# Tiny figures\n\n"
            "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            "(https://colab.research.google.com/github/example/notebook.ipynb)\n\n"
            "The narrative-marker-alpha sentence explains the question."),
        new_code_cell('PROFILE = "full"\nDATA_DIR = None', metadata={"tags": ["parameters"]}),
        new_code_cell('import os\nprint(f"profile={PROFILE}")\nprint(f"data-dir={DATA_DIR}")\n'
                      'print(f"env-data-dir={os.environ.get(\'CIFAR_DATA_DIR\')}")\n'
                      'print(f"notebook-env={os.environ.get(\'CIFAR_LAB_NOTEBOOK\')}")'),
        new_code_cell('import matplotlib.pyplot as plt\nfrom helpers.plots import save_figure\n'
                      'for name in ("curve", "bars"):\n'
                      '    fig, axis = plt.subplots(figsize=(2, 1.5))\n'
                      '    axis.plot([0, 1], [1, 0])\n'
                      '    save_figure(fig, name)\n'
                      '    plt.show()'),
        new_code_cell('from IPython.display import HTML\n'
                      'HTML("<table><tr><th>run</th><th>accuracy</th></tr>'
                      '<tr><td>summary-row-marker</td><td>0.5</td></tr></table>")',
                      metadata={"tags": ["summary-table"]}),
        new_markdown_cell("## Findings\n\nfindings-marker-bravo"),
    ])


def _failing_notebook():
    return new_notebook(cells=[
        new_markdown_cell("# Fails midway\n\nbefore-failure-marker"),
        new_code_cell('PROFILE = "full"', metadata={"tags": ["parameters"]}),
        new_code_cell('print("first-cell-" + "ran")'),
        new_code_cell('raise KeyError("missing-run-record")'),
        new_code_cell('print("never-" + "printed")'),
    ])


def _after_notebook():
    return new_notebook(cells=[
        new_markdown_cell("# After the failure"),
        new_code_cell('print("third-notebook-" + "ran")'),
    ])


def _run_cli(argv):
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        status = cli.main(argv)
    return status, stderr.getvalue()


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    notebooks_dir = root / "notebooks"
    notebooks_dir.mkdir()
    sources = {"00_figures": _figures_notebook(), "01_broken": _failing_notebook(),
               "02_after": _after_notebook()}
    for stem, notebook in sources.items():
        nbformat.write(notebook, notebooks_dir / f"{stem}.ipynb")
    source_bytes = {path.name: path.read_bytes() for path in notebooks_dir.iterdir()}
    data_dir = root / "data"
    data_dir.mkdir()
    figures_dir = root / "figures"
    output_dir = root / "out"
    with pytest.MonkeyPatch.context() as patch:
        # The kernel inherits this, so its helpers.config writes figures here.
        patch.setenv("CIFAR_LAB_FIGURES_DIR", str(figures_dir))
        patch.delenv("CIFAR_DATA_DIR", raising=False)
        status, stderr = _run_cli(["report", "--profile", "smoke", "--data-dir", str(data_dir),
                                   "--notebooks-dir", str(notebooks_dir),
                                   "--output-dir", str(output_dir), "--no-pdf", "--timeout", "120"])
    page = (output_dir / "index.html").read_text(encoding="utf-8")
    return {"root": root, "notebooks_dir": notebooks_dir, "source_bytes": source_bytes,
            "data_dir": data_dir, "figures_dir": figures_dir, "output_dir": output_dir,
            "status": status, "stderr": stderr, "page": page}


def _section(page: str, notebook: str) -> str:
    match = re.search(rf'<section class="notebook" id="nb{notebook}">(.*?)</section>', page, re.DOTALL)
    assert match, f"no section for {notebook}"
    return match.group(1)


def _without_details(fragment: str) -> str:
    return re.sub(r"<details\b.*?</details>", "", fragment, flags=re.DOTALL)


class _LoadCollector(HTMLParser):
    """Collects every URL a browser would fetch: src of any tag, href of <link>."""

    def __init__(self):
        super().__init__()
        self.loads: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value and (name == "src" or (tag == "link" and name == "href")):
                self.loads.append(value)


def test_executed_copies_are_under_the_output_dir_and_sources_are_untouched(executed):
    executed_dir = executed["output_dir"] / "executed"
    assert sorted(path.name for path in executed_dir.glob("*.ipynb")) == [
        "00_figures.ipynb", "01_broken.ipynb", "02_after.ipynb"]
    after = {path.name: path.read_bytes() for path in executed["notebooks_dir"].iterdir()}
    assert after == executed["source_bytes"]


def test_parameters_and_environment_reach_the_kernel(executed):
    section = _section(executed["page"], "00_figures")
    assert "profile=smoke" in section
    assert f"data-dir={executed['data_dir'].resolve()}" in section
    assert f"env-data-dir={executed['data_dir'].resolve()}" in section
    assert "notebook-env=00_figures" in section
    # save_figure took the number from CIFAR_LAB_NOTEBOOK.
    assert sorted(path.name for path in executed["figures_dir"].glob("*.png")) == [
        "00_bars.png", "00_curve.png"]


def test_page_is_self_contained(executed):
    collector = _LoadCollector()
    collector.feed(executed["page"])
    assert collector.loads, "expected embedded images"
    assert all(url.startswith("data:") for url in collector.loads), collector.loads
    assert notebook_html.external_references(executed["page"]) == []
    # The Colab badge became text; its link (navigation, not a load) stays.
    assert "Open In Colab" in executed["page"]


def test_page_has_narrative_one_image_per_figure_and_hidden_code(executed):
    page = executed["page"]
    section = _section(page, "00_figures")
    assert "narrative-marker-alpha" in section and "findings-marker-bravo" in section
    images = re.findall(r"<img\b[^>]*>", page)
    assert len(images) == 2
    assert all('src="data:image/png;base64,' in image for image in images)
    assert len(re.findall(r"<img\b", section)) == 2
    # Code is on the page, but only inside the <details> toggles.
    assert 'save_figure(fig, name)' in section
    assert 'save_figure(fig, name)' not in _without_details(section)
    assert "<script src" not in page


def test_failing_notebook_is_reported_and_the_others_render(executed):
    assert executed["status"] == 1
    stderr = executed["stderr"]
    assert "01_broken: code cell 3 (In [4]): KeyError" in stderr
    assert "missing-run-record" in stderr
    page = executed["page"]
    broken = _section(page, "01_broken")
    assert "This notebook failed at code cell 3 (In [4])" in broken
    assert "KeyError" in broken and "missing-run-record" in broken
    visible = _without_details(broken)
    assert "first-cell-ran" in visible and "before-failure-marker" in visible
    assert "never-printed" not in visible
    assert "third-notebook-ran" in _section(page, "02_after")
    assert (executed["output_dir"] / "executed" / "01_broken.ipynb").is_file()
    # The failure is also listed above the contents.
    assert page.index("1 notebook failed") < page.index('<nav class="toc">')


def test_summary_tagged_output_is_lifted_to_the_top(executed):
    page = executed["page"]
    summary = re.search(r'<section class="summary" id="summary">(.*?)</section>', page, re.DOTALL)
    assert summary and "summary-row-marker" in summary.group(1)
    assert page.index('id="summary"') < page.index('id="nb00_figures"')
    assert "summary-row-marker" not in _without_details(_section(page, "00_figures"))


def test_stamp_names_profile_versions_and_revision(executed):
    stamp = re.search(r'<dl class="stamp">(.*?)</dl>', executed["page"], re.DOTALL).group(1)
    assert "<dt>profile</dt><dd>smoke</dd>" in stamp
    assert "python 3." in stamp and "tensorflow" in stamp and "keras" in stamp
    for label in ("CPU", "GPU", "git revision", "rendered"):
        assert f"<dt>{label}</dt>" in stamp


def test_render_only_reads_failures_back_from_executed_copies(executed, tmp_path):
    output_dir = tmp_path / "out"
    shutil.copytree(executed["output_dir"] / "executed", output_dir / "executed")
    status, stderr = _run_cli(["report", "--render-only", "--no-pdf",
                               "--notebooks-dir", str(executed["notebooks_dir"]),
                               "--output-dir", str(output_dir)])
    assert status == 1
    assert "01_broken: code cell 3 (In [4]): KeyError" in stderr
    page = (output_dir / "index.html").read_text(encoding="utf-8")
    assert "<dt>profile</dt><dd>smoke</dd>" in page
    assert "This notebook failed at code cell 3" in page
    assert len(re.findall(r"<img\b", page)) == 2


def test_missing_chromium_fails_before_executing_only_when_the_pdf_is_required(
        executed, tmp_path, monkeypatch):
    monkeypatch.setattr(report, "find_chromium", lambda: None)
    status, stderr = _run_cli(["report", "--profile", "smoke", "--require-pdf",
                               "--notebooks-dir", str(executed["notebooks_dir"]),
                               "--output-dir", str(tmp_path / "out")])
    assert status == 2
    assert "apt-get install chromium" in stderr and "--no-pdf" in stderr
    assert not (tmp_path / "out").exists()
    # By default the HTML is still rendered, with a loud warning and no PDF.
    (tmp_path / "out2").mkdir()
    shutil.copytree(executed["output_dir"] / "executed", tmp_path / "out2" / "executed")
    status, stderr = _run_cli(["report", "--render-only", "--notebooks-dir", str(executed["notebooks_dir"]),
                               "--output-dir", str(tmp_path / "out2")])
    assert status == 1  # the fixture's failing notebook, not the missing PDF
    assert "report.pdf was not written" in stderr and "apt-get install chromium" in stderr
    assert (tmp_path / "out2" / "index.html").is_file()
    assert not (tmp_path / "out2" / "report.pdf").exists()


def test_bad_selection_and_profile_are_refused(executed, tmp_path):
    status, stderr = _run_cli(["report", "--profile", "smoke", "--no-pdf", "--notebooks", "09",
                               "--notebooks-dir", str(executed["notebooks_dir"]),
                               "--output-dir", str(tmp_path / "out")])
    assert status == 2 and "Received: --notebooks 09" in stderr
    status, stderr = _run_cli(["report", "--no-pdf", "--notebooks-dir", str(executed["notebooks_dir"]),
                               "--output-dir", str(tmp_path / "out")])
    assert status == 2 and "--profile is required" in stderr
    assert not (tmp_path / "out").exists()


def test_find_notebooks_orders_by_number_and_selects(tmp_path):
    for stem in ("02_b", "00_a", "10_c", "notes", "1_bad"):
        nbformat.write(new_notebook(), tmp_path / f"{stem}.ipynb")
    assert [path.stem for path in report.find_notebooks(tmp_path)] == ["00_a", "02_b", "10_c"]
    assert [path.stem for path in report.find_notebooks(tmp_path, ["10", "00_a"])] == ["00_a", "10_c"]


def test_render_embeds_local_attached_and_drops_remote_images(tmp_path):
    source_dir = tmp_path / "notebooks"
    (source_dir / "pictures").mkdir(parents=True)
    (source_dir / "pictures" / "local.png").write_bytes(PNG_1X1)
    encoded = base64.b64encode(PNG_1X1).decode("ascii")
    markdown = new_markdown_cell("# Images\n\n![local](pictures/local.png) ![attached](attachment:dot.png) "
                                 "![remote](https://example.org/remote.png) ![gone](pictures/missing.png) "
                                 "![dangling](attachment:nowhere.png)")
    markdown["attachments"] = {"dot.png": {"image/png": encoded}}
    code = new_code_cell("show()", execution_count=1, outputs=[
        new_output("display_data", data={"text/html": '<img src="http://example.org/x.png" alt="remote-html">'}),
        new_output("stream", name="stdout", text="10%\r50%\r100%\nbacx\bk\n"),
    ])
    notebook = new_notebook(cells=[markdown, code])
    notebook.metadata["papermill"] = {"input_path": str(source_dir / "00_images.ipynb"),
                                      "parameters": {"PROFILE": "smoke"}, "duration": 1.0}
    executed_path = tmp_path / "executed" / "00_images.ipynb"
    executed_path.parent.mkdir()
    nbformat.write(notebook, executed_path)

    rendered = report.render_report([executed_path], tmp_path / "out", "smoke")

    page = rendered.html_path.read_text(encoding="utf-8")
    assert rendered.external_references == ()
    assert rendered.image_count == 2
    assert page.count(f"data:image/png;base64,{encoded}") == 2
    assert "remote-html" in page and "[image not found: pictures/missing.png]" in page
    assert "[image not found: attachment:nowhere.png]" in page
    # Progress bars keep their last state; backspaces erase.
    assert "100%\nback\n" in page and "10%" not in page
    printed = rendered.print_html_path.read_text(encoding="utf-8")
    assert "show()" in page and "show()" not in printed


def test_kernel_interpreter_check():
    import sys

    assert notebook_execution.kernel_uses_this_interpreter("python")
    assert notebook_execution.kernel_uses_this_interpreter(sys.executable)
    assert not notebook_execution.kernel_uses_this_interpreter("/nonexistent/other-env/bin/python")


def _dump_dom(chromium: str, page: Path) -> str:
    with tempfile.TemporaryDirectory() as profile_dir:
        command = pdf.chromium_command(chromium, profile_dir, "--dump-dom", page.resolve().as_uri())
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _count_pdf_pages(path: Path) -> int:
    if shutil.which("pdfinfo"):
        output = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, timeout=60).stdout
        return int(re.search(r"^Pages:\s+(\d+)", output, re.MULTILINE).group(1))
    return len(re.findall(rb"/Type\s*/Page(?!s)", path.read_bytes()))


def test_browser_loads_every_figure_and_pdf_has_pages(executed, tmp_path):
    chromium = report.find_chromium()
    if chromium is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    body = re.search(r"<body[^>]*>", _dump_dom(chromium, executed["output_dir"] / "index.html")).group(0)
    total = int(re.search(r'data-images-total="(\d+)"', body).group(1))
    loaded = int(re.search(r'data-images-loaded="(\d+)"', body).group(1))
    assert total == 2 and loaded == total

    # The check can fail: a corrupt image is counted as not loaded.
    broken = tmp_path / "broken.html"
    broken.write_text(executed["page"].replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1),
                      encoding="utf-8")
    body = re.search(r"<body[^>]*>", _dump_dom(chromium, broken)).group(0)
    assert 'data-images-loaded="1"' in body and 'data-images-total="2"' in body

    # The command prints the PDF from the existing executed copies.
    output_dir = tmp_path / "out"
    shutil.copytree(executed["output_dir"] / "executed", output_dir / "executed")
    status, stderr = _run_cli(["report", "--render-only", "--notebooks-dir", str(executed["notebooks_dir"]),
                               "--output-dir", str(output_dir)])
    assert status == 1, stderr  # the failing notebook still fails the command
    pdf = output_dir / "report.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert _count_pdf_pages(pdf) >= 3  # the header, then one page break per notebook


def _cell(source, execution_count, started=True, outputs=(), tags=()):
    cell = new_code_cell(source, execution_count=execution_count, outputs=list(outputs),
                         metadata={"tags": list(tags)})
    cell.metadata["papermill"] = {"start_time": "2026-01-01T00:00:00" if started else None,
                                  "status": "completed"}
    return cell


def test_failure_location_without_an_error_output(tmp_path):
    injected = _cell("PROFILE = 'smoke'", 1, tags=["injected-parameters"])
    # A dead kernel: the cell that killed it started, the next never did.
    dead = new_notebook(cells=[injected, _cell("print(1)", 2), new_markdown_cell("text"),
                               _cell("os._exit(1)", 3), _cell("print(2)", None, started=False)])
    assert notebook_execution.locate_failure(dead) == (2, 3, None)
    nbformat.write(dead, tmp_path / "05_dead.ipynb")
    failure = notebook_execution.failure_from_executed(tmp_path / "05_dead.ipynb")
    assert (failure.notebook, failure.cell_number, failure.ename) == ("05_dead", 2, "NotFinished")
    # Every cell started and none failed: no failure, unless execution is
    # known to have stopped (then the last cell is the one).
    finished = new_notebook(cells=[injected, _cell("print(1)", 2), _cell("print(2)", 3)])
    assert notebook_execution.locate_failure(finished) is None
    assert notebook_execution.locate_failure(finished, stopped=True) == (2, 3, None)
    # An error output wins; a cell tagged raises-exception is allowed one.
    error = new_output("error", ename="ValueError", evalue="bad", traceback=[])
    allowed = _cell("raise ValueError", 2, outputs=[error], tags=["raises-exception"])
    failing = new_notebook(cells=[injected, allowed, _cell("fail()", 3, outputs=[error]),
                                  _cell("print(2)", None, started=False)])
    assert notebook_execution.locate_failure(failing) == (2, 3, error)


# ---------------------------------------------------------------------------
# A report a reader can trust at a glance (issue 14, point 4). Each test
# renders hand-made executed notebooks: no kernel, a fraction of a second.
# ---------------------------------------------------------------------------

TF_START_UP = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1795773063.327945   13881 port.cc:153] oneDNN custom operations are on. You may see "
    "slightly different numerical results due to floating-point round-off errors.\n"
    "I0000 00:00:1795773063.330081   13881 cudart_stub.cc:31] Could not find cuda drivers on your "
    "machine, GPU will not be used.\n"
    "E0000 00:00:1795773067.642871   13881 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA "
    "error: Failed call to cuInit: UNKNOWN ERROR (303)\n"
    "2024-01-01 12:00:00.123456: I tensorflow/core/platform/cpu_feature_guard.cc:210] This TensorFlow "
    "binary is optimized to use available CPU instructions in performance-critical operations.\n"
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
    "appropriate compiler flags.\n"
)


def _executed(tmp_path, stem, cells, profile="quick", duration=8.0):
    """Writes an executed-looking notebook (papermill metadata, outputs) and returns its path."""
    notebook = new_notebook(cells=cells)
    notebook.metadata["papermill"] = {"input_path": str(tmp_path / f"{stem}.ipynb"),
                                      "parameters": {"PROFILE": profile}, "duration": duration,
                                      "end_time": "2026-01-01T00:00:08"}
    path = tmp_path / "executed" / f"{stem}.ipynb"
    path.parent.mkdir(exist_ok=True)
    nbformat.write(notebook, path)
    return path


def _render(tmp_path, paths, profile="quick"):
    rendered = report.render_report(paths, tmp_path / "out", profile)
    return (rendered.html_path.read_text(encoding="utf-8"),
            rendered.print_html_path.read_text(encoding="utf-8"))


def _stderr(text):
    return new_output("stream", name="stderr", text=text)


def test_object_reprs_are_not_rendered(tmp_path):
    paths_repr = ("[PosixPath('/work/main/figures/00_samples.png'),\n"
                  " PosixPath('/work/main/figures/00_samples.svg')]")
    cells = [
        new_markdown_cell("# Reprs"),
        _cell("save_figure(fig, 'samples')", 1, outputs=[
            new_output("execute_result", data={"text/plain": paths_repr}, execution_count=1)]),
        _cell("plt.figure()", 2, outputs=[
            new_output("display_data", data={"text/plain": "<Figure size 640x480 with 1 Axes>"}),
            new_output("execute_result", data={"text/plain": "<matplotlib.legend.Legend at 0x7f3a2b1c9d90>"},
                       execution_count=2)]),
        _cell("axis.set_title('x')", 3, outputs=[
            new_output("execute_result", data={"text/plain": "Text(0.5, 1.0, 'accuracy')"}, execution_count=3)]),
        _cell("value", 4, outputs=[
            new_output("execute_result", data={"text/plain": "0.4217"}, execution_count=4)]),
    ]
    page, printed = _render(tmp_path, [_executed(tmp_path, "00_reprs", cells)])
    for html_page in (page, printed):
        assert "PosixPath" not in html_page
        assert "at 0x7f3a" not in html_page and "Figure size" not in html_page
        assert "Text(0.5" not in html_page
        assert "0.4217" in html_page  # a real value is kept


def test_tensorflow_log_lines_are_stripped_but_real_errors_kept(tmp_path):
    engine_line = "[resnet20-cifar10-0123456789ab] training: ResNet-20; 1500 images\n"
    real_error = "E0000 00:00:1795773067.9   13881 some_kernel.cc:12] a real failure worth reading\n"
    cells = [
        new_markdown_cell("# Logs"),
        _cell("import tensorflow", 1, outputs=[_stderr(TF_START_UP)]),
        _cell("run()", 2, outputs=[_stderr(TF_START_UP + engine_line + real_error)]),
    ]
    page, printed = _render(tmp_path, [_executed(tmp_path, "01_logs", cells)])
    for fragment in ("absl::InitializeLog", "port.cc", "cudart_stub", "cuInit", "cpu_feature_guard",
                     "rebuild TensorFlow"):
        assert fragment not in page and fragment not in printed, fragment
    # A stream that was only noise leaves no stderr block; the other keeps its real lines.
    assert page.count('<details class="stderr">') == 1
    assert "stderr (2 lines)" in page
    assert "training: ResNet-20" in page and "a real failure worth reading" in page


def test_kernel_environment_quiets_tensorflow(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    with notebook_execution.kernel_environment("01_x", None):
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")  # the caller's own choice wins
    with notebook_execution.kernel_environment("01_x", None):
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"


def test_empty_headings_and_labels_are_dropped(tmp_path):
    cells = [
        new_markdown_cell("# 08 · Header\n\n| | |\n| --- | --- |\n| **Question** | q |\n\n**Figures written:**\n"),
        new_markdown_cell("## Setup"),
        _cell("from helpers import summary", 1),
        new_markdown_cell("## Nothing here"),
        new_markdown_cell("## Findings\n\nfindings-text-marker\n\n**Figures written:**\n- `figures/08_a.png`"),
        new_markdown_cell("## Trailing heading"),
    ]
    page, printed = _render(tmp_path, [_executed(tmp_path, "08_headings", cells)])
    for html_page in (page, printed):
        assert "Nothing here" not in html_page and "Trailing heading" not in html_page
        # The label with nothing under it goes; the one over a list stays.
        assert html_page.count("Figures written:") == 1
        assert "figures/08_a.png" in html_page and "findings-text-marker" in html_page
        assert "Question" in html_page
    # "Setup" heads folded code on the page, and nothing in the print.
    assert re.search(r"<h2[^>]*>Setup", page)
    assert not re.search(r"<h2[^>]*>Setup", printed)


def test_contents_say_from_cache_for_notebooks_served_by_the_cache(tmp_path):
    cached_lines = ("[1/2] plain-20, seed 0\n[plain20-cifar10-0123456789ab] cached: completed, 8 epochs (plain-20)\n"
                    "[2/2] plain-20, seed 1\n[plain20-cifar10-ba9876543210] cached: completed, 8 epochs (plain-20)\n")
    trained_lines = ("[resnet20-cifar10-0123456789ab] cached: completed, 8 epochs (ResNet-20)\n"
                     "[resnet20-cifar10-fedcba987654] training: ResNet-20; 1500 images, 23 steps/epoch\n")
    paths = [
        _executed(tmp_path, "01_cached", [new_markdown_cell("# Cached"), _cell("run()", 1, outputs=[
            _stderr(TF_START_UP + cached_lines)])], duration=9.6),
        _executed(tmp_path, "02_trained", [new_markdown_cell("# Trained"), _cell("run()", 1, outputs=[
            _stderr(trained_lines)])], duration=612.0),
        _executed(tmp_path, "00_data", [new_markdown_cell("# Data"), _cell("load()", 1, outputs=[
            new_output("stream", name="stdout", text="loaded\n")])], duration=31.0),
    ]
    page, printed = _render(tmp_path, paths)
    for html_page in (page, printed):
        toc = re.search(r'<nav class="toc">(.*?)</nav>', html_page, re.DOTALL).group(1)
        cached_item = re.search(r"<li>[^\n]*Cached.*?</li>", toc).group(0)
        assert "from cache" in cached_item and "10 s" not in cached_item
        assert "10.2 min" in re.search(r"<li>[^\n]*Trained.*?</li>", toc).group(0)
        assert "31 s" in re.search(r"<li>[^\n]*Data.*?</li>", toc).group(0)
        assert toc.count("from cache") == 1
        assert "every run read from the cache" in _section(html_page, "01_cached")
    assert "1 of them read every run from the cache" in page


def test_profile_banner_comes_before_the_first_number(tmp_path):
    cells = [new_markdown_cell("# Summary"),
             _cell("table", 1, tags=["summary-table"], outputs=[
                 new_output("execute_result", data={"text/html": "<table><tr><td>41.2</td></tr></table>"},
                            execution_count=1)])]
    page, printed = _render(tmp_path, [_executed(tmp_path, "08_summary", cells)])
    for html_page in (page, printed):
        banner = html_page.index('class="banner profile"')
        assert "This report was run at the quick profile" in html_page
        assert "not comparable with the student's or the published numbers" in html_page
        assert banner < html_page.index('<dl class="stamp">') < html_page.index('id="summary"')
        assert banner < html_page.index("41.2")


def test_tables_fit_the_page(tmp_path):
    import pandas as pd

    wide = pd.DataFrame({f"column {index}": ["a-long-value-without-spaces-" * 3] for index in range(8)})
    named = pd.DataFrame({"accuracy": [0.1, 0.2]}, index=pd.Index(["plain-20", "ResNet-20"], name="arm"))
    cells = [new_markdown_cell("# Tables"),
             _cell("wide", 1, outputs=[new_output("execute_result", execution_count=1, data={
                 "text/html": wide.to_html(), "text/plain": "wide"})]),
             _cell("named", 2, outputs=[new_output("execute_result", execution_count=2, data={
                 "text/html": named.to_html(), "text/plain": "named"})])]
    page, printed = _render(tmp_path, [_executed(tmp_path, "02_tables", cells)])
    for html_page in (page, printed):
        assert "<th>0</th>" not in html_page  # pandas' range index is not a column
        assert 'class="wide dataframe"' in html_page
        assert "<th>plain-20</th>" in html_page  # a meaningful index stays
        assert "@page { size: A4" in html_page and "overflow-wrap: anywhere" in html_page


def test_summary_notebook_header_has_no_empty_label():
    notebook = nbformat.read(Path(__file__).resolve().parents[1] / "notebooks" / "08_summary.ipynb",
                             as_version=4)
    header = notebook.cells[0].source
    label = re.search(r"\*\*Figures written:\*\*(.*)", header)
    assert label and label.group(1).strip()
    sources = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert "summary.profile_statement(profile)" in sources
    assert sources.index("summary.profile_statement(profile)") < sources.index("summary.summary_table(")
    tagged = [cell for cell in notebook.cells if "summary-table" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1 and "summary.summary_table(profile, DATA_DIR)" in tagged[0].source
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")


# ---------------------------------------------------------------------------
# The page is nbconvert's (issue 16, point 4): its HTMLExporter, the project
# template and preprocessors; nothing fetched; one notebook renders alone.
# ---------------------------------------------------------------------------


class _HttpCollector(HTMLParser):
    """Every http(s) reference except a link a reader may follow (``<a href>``)."""

    def __init__(self):
        super().__init__()
        self.references: list[str] = []
        self._tag = None

    def handle_starttag(self, tag, attrs):
        self._tag = tag
        for name, value in attrs:
            if value and re.search(r"https?:", value) and not (tag == "a" and name == "href"):
                self.references.append(f"<{tag} {name}={value[:80]}>")

    def handle_data(self, data):
        if self._tag in ("script", "style") and re.search(r"https?:", data):
            self.references.append(f"<{self._tag}>: {data[:80]}")


def _http_references(page: str) -> list[str]:
    collector = _HttpCollector()
    collector.feed(page)
    return collector.references


def _assert_fetches_nothing(page: str) -> None:
    assert _http_references(page) == []
    assert notebook_html.external_references(page) == []
    # No loader of nbconvert's stock templates (they would fetch from a CDN).
    without_data = re.sub(r"data:[^\"'\s)]+", "", page).lower()
    for loader in ("mathjax", "require.js", "require.min.js", "jquery", "cdn.", "unpkg", "jsdelivr",
                   "<link", "<script src", "@import"):
        assert loader not in without_data, loader


def test_page_and_print_fetch_nothing_and_name_no_http_source(executed):
    page = executed["page"]
    _assert_fetches_nothing(page)
    _assert_fetches_nothing((executed["output_dir"] / "_work" / "print.html").read_text(encoding="utf-8"))
    # The one http reference is the Colab badge's link, which a reader may follow.
    assert re.findall(r'href="(https?:[^"]*)"', page) == [
        "https://colab.research.google.com/github/example/notebook.ipynb"]
    # The checker itself can fail.
    assert _http_references('<script src="https://cdn.example.org/require.js"></script>')
    assert _http_references('<style>@import url("https://fonts.example.org/a.css");</style>')


def test_sections_are_the_exporters_fragments(executed):
    import nbformat
    from nbconvert.exporters import HTMLExporter

    exporter = notebook_html.exporter()
    assert isinstance(exporter, HTMLExporter) and exporter.template_name == "cifar_lab"
    path = executed["output_dir"] / "executed" / "02_after.ipynb"
    fragment = notebook_html.export(nbformat.read(path, as_version=4), exporter, name=path.stem,
                                    folder=path.parent, failed=False)
    # The section is that fragment, with its heading ids made unique on the page.
    section = _section(executed["page"], "02_after")
    assert fragment.replace('id="After-the-failure"', 'id="nb02_after-After-the-failure"').replace(
        'href="#After-the-failure"', 'href="#nb02_after-After-the-failure"').strip() in section
    # nbconvert's Markdown renderer anchors headings; its ansi2html colours streams.
    assert re.search(r'<h1 id="nb00_figures-Tiny-figures">Tiny figures<a class="anchor-link" '
                     r'href="#nb00_figures-Tiny-figures">', executed["page"])
    coloured = nbformat.v4.new_notebook(cells=[_cell("print(red)", 1, outputs=[
        new_output("stream", name="stdout", text="\x1b[31mred-marker\x1b[0m\n")])])
    assert '<span class="ansi-red-fg">red-marker</span>' in notebook_html.export(
        coloured, exporter, name="x", folder=".")


def _noisy_executed_notebook(tmp_path) -> Path:
    """An executed notebook with everything the preprocessors drop, as papermill leaves it."""
    error = new_output("error", ename="ValueError", evalue="boom-marker", traceback=["Traceback-marker"])
    cells = [
        new_markdown_cell('<span style="color:red">An Exception was encountered</span>',
                          metadata={"tags": ["papermill-error-cell-tag"]}),
        new_markdown_cell("# 09 · Noisy\n\nnarrative-marker\n\n"
                          "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
                          "(https://colab.research.google.com/x.ipynb)\n\n**Figures written:**\n"),
        _cell('PROFILE = "full"', 1, tags=["parameters"]),
        _cell('PROFILE = "quick"\nDATA_DIR = None', 2, tags=["injected-parameters"]),
        new_markdown_cell("## Setup"),
        _cell("import tensorflow", 3, outputs=[_stderr(TF_START_UP)]),
        _cell("save_figure(fig, 'x')", 4, outputs=[
            new_output("display_data", data={"image/png": base64.b64encode(PNG_1X1).decode("ascii"),
                                             "text/plain": "<Figure size 640x480 with 1 Axes>"}),
            new_output("execute_result", execution_count=4, data={
                "text/plain": "[PosixPath('/work/main/figures/09_x.png')]"})]),
        new_markdown_cell("## Nothing here"),
        new_markdown_cell("## Findings\n\nfindings-marker"),
        _cell("fail()", 5, outputs=[error]),
        _cell("after()", None, started=False),
    ]
    path = _executed(tmp_path, "09_noisy", cells)
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata["papermill"]["exception"] = True
    nbformat.write(notebook, path)
    return path


def _assert_clean_single_page(page: str) -> None:
    assert page.lstrip().startswith("<!DOCTYPE html>") and "<style" in page
    _assert_fetches_nothing(page)
    visible = _without_details(page)
    assert "narrative-marker" in visible and "findings-marker" in visible and "Open In Colab" in visible
    assert len(re.findall(r'<img\b[^>]*\bsrc="data:image/png;base64,', page)) == 1
    for noise in ("PosixPath", "Figure size", "absl::InitializeLog", "cuInit", "port.cc",
                  "An Exception was encountered", 'PROFILE = "quick"', "Nothing here", "Figures written",
                  "In&nbsp;[", "Out["):
        assert noise not in page, noise
    assert "boom-marker" in visible and "Execution stopped here (ValueError)" in visible
    # The folded code is there for whoever wants it; the parameters cell is labelled so.
    assert "<summary>parameters (defaults)</summary>" in page and "Traceback-marker" in page


def test_one_executed_notebook_renders_cleanly_with_the_template(tmp_path):
    _assert_clean_single_page(notebook_html.notebook_page(_noisy_executed_notebook(tmp_path)))


def test_jupyter_nbconvert_with_the_template_gives_the_same_clean_page(tmp_path):
    import sys

    path = _noisy_executed_notebook(tmp_path)
    out = tmp_path / "nbconvert"
    project_root = Path(report.__file__).resolve().parents[1]
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(project_root)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    result = subprocess.run(
        [sys.executable, "-m", "nbconvert", "--to", "html", "--template", "cifar_lab",
         f"--TemplateExporter.extra_template_basedirs={notebook_html.TEMPLATE_BASEDIR}",
         "--output-dir", str(out), str(path)],
        capture_output=True, text=True, timeout=300, env=environment, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    page = (out / "09_noisy.html").read_text(encoding="utf-8")
    _assert_clean_single_page(page)
    assert page == notebook_html.notebook_page(path)
