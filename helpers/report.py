"""The ``report`` command: executes the series and renders ``report/index.html`` and ``report.pdf``.

``python -m helpers report --profile quick`` runs ``notebooks/NN_*.ipynb`` in
numeric order with papermill (``helpers.notebook_execution``), keeping the
executed copies under ``report/executed/`` (``notebooks/`` only ever holds
clean sources), renders one self-contained HTML page from them, and prints
it to ``report/report.pdf`` with headless Chromium (``helpers.pdf``).

How the page is built: nbconvert renders each executed notebook on its own
(``helpers.notebook_html``: its ``HTMLExporter``, the project template
``helpers/report_template/cifar_lab`` and the preprocessors that drop what a
reader should not see) into a fragment; this module assembles the fragments
in the template's ``page.html.j2``. Exporting notebook by notebook, rather
than merging them into one notebook, keeps each notebook's own failure,
profile, runtime and papermill record beside its section, and lets one
executed notebook render on its own through the same template. The page
holds, in order: the profile's reach ("What these numbers can show", before
the first number, from ``helpers.summary.profile_statement``), the stamp
(``helpers.environment.stamp``), the failures, the contents (each
notebook's runtime, or "from cache" when the engine read every run from its
cache), the Summary (outputs of cells tagged ``summary-table``; a notebook
``NN_summary`` comes first), then one section per notebook. The PDF is
printed from a second rendering without code, stderr or tracebacks
(``_work/print.html``).

A notebook that fails does not stop the others: its section opens with the
failing cell and error, everything it produced up to the failure is shown,
and the command exits non-zero with a summary on stderr.

This module imports neither TensorFlow nor Keras; the kernels do.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import html
import importlib.util
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

# The report's packages are the "report" extra. helpers.cli builds every
# subcommand's parser on each call, so this module is imported by `train`
# too: it fails at once when the extra is missing (the CLI then says what to
# install), but imports nbconvert (about 2 s) only when a page is rendered.
for _package in ("nbconvert", "nbformat", "papermill", "jinja2"):
    if importlib.util.find_spec(_package) is None:
        raise ImportError(f"No module named {_package!r}", name=_package)

from markupsafe import Markup  # noqa: E402 - after the check above

from helpers import atomic, committed, config, environment, profiles  # noqa: E402
from helpers.notebook_execution import (PAPERMILL_ERROR_TAG, NotebookFailure, cell_tags,  # noqa: E402
                                        ensure_kernel, execute_notebook, failure_from_executed)
from helpers.pdf import NO_CHROMIUM, find_chromium, render_pdf  # noqa: E402

_NOTEBOOK_STEM = re.compile(r"^(\d{2})_[A-Za-z0-9_\-]+$")
_SUMMARY_STEM = re.compile(r"^\d{2}_summary$")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# What helpers.engine prints on a cache hit, and when it trains (or resumes,
# or runs an LR range test). A notebook whose runs all came from the cache
# has a misleading runtime: the contents say "from cache" instead.
_CACHE_HIT_LINE = re.compile(r"^\[[^\]\s]+\] cached: ", re.MULTILINE)
_TRAINING_LINE = re.compile(r"^(?:\[[^\]\s]+\] (?:training|resuming after epoch \d+): |lr-find: )",
                            re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class RenderedReport:
    """Paths written by :func:`render_report`.

    Attributes:
        html_path: The report page, ``<out_dir>/index.html``.
        print_html_path: The same content without code, the PDF's source.
        image_count: Number of ``<img>`` elements in the page.
        external_references: URLs the page would fetch from outside itself
            (should be empty; reported, not fatal).
    """

    html_path: Path
    print_html_path: Path
    image_count: int
    external_references: tuple[str, ...]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def find_notebooks(notebooks_dir: str | os.PathLike,
                   select: Iterable[str] | None = None) -> list[Path]:
    """The series' notebooks ``NN_*.ipynb`` in ``notebooks_dir``, in numeric order.

    Args:
        notebooks_dir: Directory holding the clean notebooks.
        select: Optional two-digit numbers ("03") or stems ("03_resnet_depth")
            to keep; None keeps all.

    Raises:
        ValueError: if the directory is missing or a selected notebook does
            not exist.

    Used in: the ``report`` command.
    """
    directory = Path(notebooks_dir)
    if not directory.is_dir():
        raise ValueError(f"The notebooks directory does not exist. Received: {str(directory)!r}")
    found = sorted((path for path in directory.glob("*.ipynb")
                    if _NOTEBOOK_STEM.match(path.stem)), key=lambda path: path.stem)
    if select is None:
        return found
    wanted = [item.strip() for item in select if item and item.strip()]
    kept = []
    for item in wanted:
        stem = item[:-len(".ipynb")] if item.endswith(".ipynb") else item
        matches = [path for path in found if path.stem == stem or path.stem[:2] == stem]
        if not matches:
            available = ", ".join(path.stem for path in found) or "none"
            raise ValueError(
                f"No notebook numbered or named {item!r} in {directory} "
                f"(available: {available}). Received: --notebooks {','.join(wanted)}"
            )
        kept.extend(path for path in matches if path not in kept)
    return sorted(kept, key=lambda path: path.stem)



# ---------------------------------------------------------------------------
# One notebook's section
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Section:
    """What the page shows of one notebook.

    Attributes:
        notebook: The notebook's stem.
        title: Its first "# " heading as plain text (the stem if none).
        body: nbconvert's fragment for the page (code folded).
        print_body: The same without code, stderr or tracebacks (the PDF's).
        summary_blocks: Outputs of its ``summary-table`` cells, without code.
        failure: How it failed, or None.
        profile: The profile papermill injected, or None.
        seconds: Papermill's execution time, or None.
        finished: When execution ended (ISO-8601), or None.
        from_cache: Whether the engine read every run from its cache.
    """

    notebook: str
    title: str
    body: str = ""
    print_body: str = ""
    summary_blocks: tuple[str, ...] = ()
    failure: NotebookFailure | None = None
    profile: str | None = None
    seconds: float | None = None
    finished: str | None = None
    from_cache: bool = False


def _output_text(nb) -> str:
    return "\n".join(
        _ANSI.sub("", "".join(output.get("text", "")))
        for cell in nb.cells if cell.cell_type == "code"
        for output in cell.get("outputs", []) if output.get("output_type") == "stream")


def served_from_cache(nb) -> bool:
    """True when the engine served every run of an executed notebook from its cache.

    Read from the cells' output streams: at least one "[run-id] cached: ..."
    line of ``helpers.engine.run`` and no line saying it trained, resumed or
    ran an LR range test. A notebook that runs nothing through the engine
    is not "from cache": its runtime is real.
    """
    text = _output_text(nb)
    return bool(_CACHE_HIT_LINE.search(text)) and not _TRAINING_LINE.search(text)


def _notebook_title(nb, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown" and PAPERMILL_ERROR_TAG not in cell_tags(cell):
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    # Plain text for the contents list: drop emphasis and links.
                    title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line[2:])
                    return re.sub(r"[*_`]", "", title).strip()
            break
    return fallback


def _prefixed_ids(fragment: str, prefix: str) -> str:
    """Heading ids made unique on the page ("Findings" in every notebook), links kept."""
    ids = set(re.findall(r'\bid="([^"]*)"', fragment))
    fragment = re.sub(r'\bid="([^"]*)"', lambda match: f'id="{prefix}-{match.group(1)}"', fragment)
    return re.sub(r'href="#([^"]*)"', lambda match: (f'href="#{prefix}-{match.group(1)}"'
                                                     if match.group(1) in ids else match.group(0)), fragment)


def _section(path: Path, failure: NotebookFailure | None, exporters: Mapping[bool, Any]) -> Section:
    """Exports one executed notebook for the page and for the print."""
    import nbformat

    from helpers import notebook_html

    nb = nbformat.read(path, as_version=4)
    record = nb.metadata.get("papermill", {}) or {}

    def export(notebook, printable: bool, summary_moved: bool, failed: bool) -> str:
        fragment = notebook_html.export(notebook, exporters[printable], name=path.stem, folder=path.parent,
                                        failed=failed, summary_moved=summary_moved)
        return _prefixed_ids(fragment, f"nb{path.stem}")

    tagged = [cell for cell in nb.cells
              if notebook_html.SUMMARY_TAG in cell_tags(cell) and cell.get("outputs")]
    summary_blocks = []
    if tagged:
        # The tagged cells alone, through the same exporter, code-free.
        summary_blocks.append(export(nbformat.v4.new_notebook(cells=tagged, metadata=nb.metadata),
                                     printable=True, summary_moved=False, failed=False))
    return Section(
        notebook=path.stem, title=_notebook_title(nb, path.stem),
        body=export(nb, printable=False, summary_moved=bool(tagged), failed=failure is not None),
        print_body=export(nb, printable=True, summary_moved=bool(tagged), failed=failure is not None),
        summary_blocks=tuple(summary_blocks), failure=failure,
        profile=(record.get("parameters") or {}).get("PROFILE"),
        seconds=record.get("duration"), finished=record.get("end_time"),
        from_cache=served_from_cache(nb))


# ---------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------


def _format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _stamp_rows(stamp: Mapping[str, Any], profile: str | None, date: str,
                sections: Sequence[Section]) -> list[tuple[str, str]]:
    hardware = stamp.get("hardware", {}) or {}
    versions = stamp.get("versions", {}) or {}
    git = stamp.get("git", {}) or {}
    cores = hardware.get("logical_cores")
    cpu = f"{hardware.get('cpu', '?')}" + (f" ({cores} logical cores)" if cores else "")
    revision = git.get("revision")
    if revision:
        revision_text = revision[:12] + (" (uncommitted changes)" if git.get("dirty") else "")
    else:
        revision_text = "unknown (not a git checkout)"
    executed = [section.seconds for section in sections if section.seconds is not None]
    cached = sum(1 for section in sections if section.seconds is not None and section.from_cache)
    execution = "?"
    if executed:
        execution = f"{_format_seconds(sum(executed))} over {len(executed)} notebooks"
        if cached:
            execution += (f" ({cached} of them read every run from the cache: their time is not "
                          f"training time)")
    return [
        ("profile", str(profile or "?")),
        ("rendered", date),
        ("execution time", execution),
        ("CPU", cpu),
        ("GPU", ", ".join(hardware.get("gpus") or []) or "none"),
        ("software", ", ".join(f"{name} {version}" for name, version in versions.items() if version) or "?"),
        ("git revision", revision_text),
    ]


def _profile_statement(profile: str | None) -> str | None:
    """The profile's "what it can and cannot show" (helpers.summary), or None if unknown.

    A page mixing profiles gets a warning that its sections are not comparable.
    """
    if profile is None:
        return None
    from helpers import summary

    if profile in profiles.PROFILE_NAMES:
        return summary.profile_statement(profiles.get_profile(profile))
    if str(profile).startswith("mixed"):
        return (f"The executed notebooks come from different profiles ({profile}); each section names "
                f"its own, and numbers from different profiles are not comparable.")
    return None


def _section_view(section: Section, profile: str | None, printable: bool) -> dict[str, Any]:
    """What page.html.j2 shows of one section: label, tags, meta line, banners, body."""
    tags = []
    if section.failure is not None:
        tags.append(("failed", "failed"))
    stale = bool(section.profile and profile and section.profile != profile)
    if stale:
        tags.append(("warn", f"profile {section.profile}"))
    if section.from_cache:
        tags.append(("cache", "from cache"))
    elif section.seconds is not None:
        tags.append(("", _format_seconds(section.seconds)))
    meta = [f"{section.notebook}.ipynb"]
    if section.profile:
        meta.append(f"profile {section.profile}")
    if section.finished:
        meta.append(f"executed {section.finished[:19].replace('T', ' ')} UTC")
    if section.from_cache:
        meta.append("every run read from the cache")
    elif section.seconds is not None:
        meta.append(_format_seconds(section.seconds))
    label = section.title if section.title.startswith(section.notebook[:2]) else \
        f"{section.notebook[:2]} · {section.title}"
    return {"notebook": section.notebook, "label": label, "tags": tags, "meta": " · ".join(meta),
            "failure": section.failure, "stale_profile": stale,
            "profile": section.profile, "body": Markup(section.print_body if printable else section.body)}


def _page(sections: Sequence[Section], stamp_rows: Sequence[tuple[str, str]], profile: str | None,
          title: str, not_executed: Sequence[str], printable: bool) -> str:
    """page.html.j2 around the sections, a ``NN_summary`` notebook first."""
    import jinja2

    from helpers import notebook_html

    ordered = sorted(sections, key=lambda section: (not _SUMMARY_STEM.match(section.notebook), section.notebook))
    templates = jinja2.Environment(loader=jinja2.FileSystemLoader(notebook_html.TEMPLATE_DIR),
                                   autoescape=True, undefined=jinja2.StrictUndefined,
                                   trim_blocks=True, lstrip_blocks=True)
    statement = _profile_statement(profile)
    return templates.get_template("page.html.j2").render(
        # Plain sentences: quotes stay as typed ("the student's numbers").
        title=title, profile=profile, statement=statement and Markup(html.escape(statement, quote=False)),
        stamp_rows=stamp_rows, printable=printable,
        failures=[section.failure for section in ordered if section.failure is not None],
        summary_blocks=[(section.notebook, Markup(block)) for section in ordered
                        for block in section.summary_blocks],
        sections=[_section_view(section, profile, printable) for section in ordered],
        not_executed=list(not_executed),
        css=Markup((notebook_html.TEMPLATE_DIR / "report.css").read_text(encoding="utf-8")),
        script=Markup((notebook_html.TEMPLATE_DIR / "image_check.js").read_text(encoding="utf-8")),
    )


def render_report(executed_paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike,
                  profile: str | None, failures: Iterable[NotebookFailure] | None = None, *,
                  stamp: Mapping[str, Any] | None = None, title: str = "CIFAR Lab report",
                  not_executed: Sequence[str] = ()) -> RenderedReport:
    """Renders executed notebooks into ``<out_dir>/index.html``.

    Also writes ``<out_dir>/_work/print.html``: the same content without
    code cells, tracebacks or stderr, which ``helpers.pdf.render_pdf`` prints.

    Args:
        executed_paths: Executed copies (papermill output), any order; the
            page orders them by number, a ``NN_summary`` notebook first.
        out_dir: Where the page goes (``report/`` by default in the command).
        profile: The profile the page is stamped with (``"mixed: ..."`` for
            copies from several), or None when unknown.
        failures: How notebooks failed. None reads them back from the
            executed copies; a failure whose notebook has no executed copy
            still gets a section with its error.
        stamp: The machine stamp; default ``helpers.environment.stamp()``.
        title: The page's heading.
        not_executed: Stems of notebooks listed in the contents as not run.

    Returns:
        A :class:`RenderedReport`.

    Used in: the ``report`` command.
    """
    from helpers import notebook_html

    paths = sorted({Path(path).resolve() for path in executed_paths}, key=lambda path: path.stem)
    if failures is None:
        by_notebook = {path.stem: failure_from_executed(path) for path in paths}
    else:
        by_notebook = {failure.notebook: failure for failure in failures}
    stamp = environment.stamp() if stamp is None else stamp
    exporters = {printable: notebook_html.exporter(printable) for printable in (False, True)}
    sections = [_section(path, by_notebook.get(path.stem), exporters) for path in paths]
    known = {path.stem for path in paths}
    sections += [Section(notebook, notebook, failure=failure)
                 for notebook, failure in sorted(by_notebook.items())
                 if failure is not None and notebook not in known]
    date = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    stamp_rows = _stamp_rows(stamp, profile, date, sections)
    out = Path(out_dir)
    page = _page(sections, stamp_rows, profile, title, not_executed, printable=False)
    atomic.write_text(out / "index.html", page)
    atomic.write_text(out / "_work" / "print.html",
                      _page(sections, stamp_rows, profile, title, not_executed, printable=True))
    return RenderedReport(
        html_path=out / "index.html", print_html_path=out / "_work" / "print.html",
        image_count=len(re.findall(r"<img\b", page, re.IGNORECASE)),
        external_references=tuple(notebook_html.external_references(page)),
    )


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``report`` subcommand's options to ``parser``."""
    parser.add_argument("--profile", choices=profiles.PROFILE_NAMES, default=None,
                        help="scale of every notebook (required unless --render-only)")
    parser.add_argument("--data-dir", default=None,
                        help="directory holding the CIFAR files, injected as DATA_DIR and exported "
                             "as CIFAR_DATA_DIR; default: the notebooks' own default")
    parser.add_argument("--notebooks", default=None,
                        help="comma-separated numbers or names to execute, e.g. 00,01 (default: all); "
                             "the page still shows the other notebooks' existing executed copies")
    parser.add_argument("--no-pdf", action="store_true", help="render index.html only, no report.pdf")
    parser.add_argument("--require-pdf", action="store_true",
                        help="fail before executing anything when Chromium (which prints the PDF) "
                             "is missing; by default the PDF is then skipped with a warning")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="longest time one cell may run (default: no limit)")
    parser.add_argument("--render-only", action="store_true",
                        help="train nothing. With --profile: execute the notebooks reading every run from "
                             "the profile's committed records (records/<profile>/), failing on a missing one; "
                             "without --profile: render the existing executed copies")
    parser.add_argument("--notebooks-dir", default=None,
                        help=f"where the clean notebooks are (default: {config.NOTEBOOKS_DIR})")
    parser.add_argument("--output-dir", default=None,
                        help=f"where index.html, report.pdf and executed/ go (default: {config.REPORT_DIR})")


def _profile_of(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            metadata = json.load(handle).get("metadata", {})
    except (OSError, ValueError):
        return None
    return ((metadata.get("papermill") or {}).get("parameters") or {}).get("PROFILE")


def run_report(profile: str | None, *, notebooks_dir: str | os.PathLike | None = None,
               output_dir: str | os.PathLike | None = None,
               data_dir: str | os.PathLike | None = None, select: Sequence[str] | None = None,
               pdf: bool = True, timeout: float | None = None, render_only: bool = False,
               require_pdf: bool = False) -> int:
    """Executes the selected notebooks and renders the report; returns an exit status.

    0 when every notebook ran and everything was written; 1 when a notebook
    failed or the PDF could not be printed (the HTML is still written).

    Raises:
        ValueError: for bad arguments, before anything runs (including a
            missing Chromium when a PDF is wanted).

    Used in: the ``report`` command.
    """
    notebooks_dir = Path(notebooks_dir) if notebooks_dir is not None else config.NOTEBOOKS_DIR
    output_dir = Path(output_dir) if output_dir is not None else config.REPORT_DIR
    executed_dir = output_dir / "executed"
    if not render_only and profile not in profiles.PROFILE_NAMES:
        raise ValueError(f"--profile is required: one of {', '.join(profiles.PROFILE_NAMES)}. "
                         f"Received: {profile!r}")
    if timeout is not None and timeout <= 0:
        raise ValueError(f"--timeout must be a positive number of seconds. Received: {timeout}")
    if data_dir is not None and not Path(data_dir).expanduser().exists():
        raise ValueError(f"--data-dir does not exist. Received: {str(data_dir)!r}")
    chromium = find_chromium() if pdf else None
    pdf_skipped = False
    if pdf and chromium is None:
        # Said before hours of execution, not after.
        if require_pdf:
            raise ValueError(NO_CHROMIUM + " Received: --require-pdf")
        _log(f"report: warning: {NO_CHROMIUM} Rendering index.html only.")
        pdf, pdf_skipped = False, True
    if output_dir.resolve() == notebooks_dir.resolve() or executed_dir.resolve() == notebooks_dir.resolve():
        raise ValueError(f"The report must not be written into the notebooks directory. "
                         f"Received: --output-dir {output_dir}")

    sources = find_notebooks(notebooks_dir)
    selected = find_notebooks(notebooks_dir, select) if select else sources
    if not sources:
        raise ValueError(f"No NN_*.ipynb notebooks in {notebooks_dir}. Received: {str(notebooks_dir)!r}")

    failures: dict[str, NotebookFailure | None] = {}
    started = time.monotonic()
    # --render-only with a profile executes the notebooks from its committed records.
    records = committed.records_dir(profile) if render_only and profile is not None else None
    if records is not None and not any(records.glob("*/record.json")):
        raise ValueError(f"No committed records for profile {profile!r} in {records}: --render-only has "
                         f"nothing to read. Train them with `python -m helpers report --profile {profile}` "
                         f"(without --render-only). Received: --profile {profile} --render-only")
    execute = not render_only or records is not None
    if execute:
        try:
            ensure_kernel()
        except RuntimeError as error:
            # A kernel that cannot be arranged is a setup problem, like bad input.
            raise ValueError(str(error)) from error
        for index, source in enumerate(selected, start=1):
            how = f"from the committed records in {records}" if records is not None else f"profile {profile}"
            _log(f"[{index}/{len(selected)}] {source.stem}: running ({how})")
            run = execute_notebook(source, executed_dir / source.name, profile, data_dir, timeout=timeout,
                                   records_dir=records)
            failures[source.stem] = run.failure
            if run.ok:
                _log(f"[{index}/{len(selected)}] {source.stem}: ok in {_format_seconds(run.seconds)}")
            else:
                _log(f"[{index}/{len(selected)}] {source.stem}: FAILED after "
                     f"{_format_seconds(run.seconds)}: {run.failure.describe()}")

    # Executed copies of notebooks that still exist; with --notebooks the
    # others keep their earlier copies, labelled with their own profile/date.
    shown = selected if (render_only and select and not execute) else sources
    executed = [executed_dir / source.name for source in shown if (executed_dir / source.name).is_file()]
    for path in executed:
        if path.stem not in failures:
            failures[path.stem] = failure_from_executed(path)
    not_executed = [source.stem for source in shown
                    if not (executed_dir / source.name).is_file() and failures.get(source.stem) is None]
    if render_only and not executed:
        raise ValueError(f"Nothing to render: no executed notebooks in {executed_dir}. "
                         f"Received: --render-only")

    if render_only and profile is None:
        found = sorted({name for name in map(_profile_of, executed) if name})
        profile = found[0] if len(found) == 1 else ("mixed: " + ", ".join(found) if found else None)
    rendered = render_report(executed, output_dir, profile,
                             [failure for failure in failures.values() if failure is not None],
                             not_executed=not_executed)
    _log(f"report: wrote {rendered.html_path} ({rendered.image_count} figures)")
    if rendered.external_references:
        _log("report: warning: the page refers to the network: " + ", ".join(rendered.external_references[:5]))

    status = 0
    if pdf:
        try:
            pdf_path = render_pdf(rendered.print_html_path, output_dir / "report.pdf", chromium)
            _log(f"report: wrote {pdf_path}")
        except RuntimeError as error:
            _log(f"report: error: {error}")
            status = 1

    if pdf_skipped:
        _log(f"report: warning: report.pdf was not written. {NO_CHROMIUM}")
    failed = [failure for failure in failures.values() if failure is not None]
    if execute:
        _log(f"report: executed {len(selected)} notebook{'s' if len(selected) != 1 else ''} "
             f"in {_format_seconds(time.monotonic() - started)}")
    if failed:
        _log(f"report: {len(failed)} notebook{'s' if len(failed) != 1 else ''} failed:")
        for failure in failed:
            _log(f"  {failure.describe()}")
        status = 1
    return status


def report_main(args: argparse.Namespace) -> int:
    """Handler of ``python -m helpers report``; returns the exit status."""
    select = args.notebooks.split(",") if args.notebooks else None
    return run_report(args.profile, notebooks_dir=args.notebooks_dir, output_dir=args.output_dir,
                      data_dir=args.data_dir, select=select, pdf=not args.no_pdf,
                      timeout=args.timeout, render_only=args.render_only,
                      require_pdf=args.require_pdf)
