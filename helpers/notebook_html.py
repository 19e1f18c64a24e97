"""Executed notebooks as clean, self-contained HTML, rendered by nbconvert.

Each notebook goes through nbconvert's ``HTMLExporter`` with the project's
template ``helpers/report_template/cifar_lab``:

* ``section.html.j2`` renders a notebook's cells as an HTML fragment: code
  folded into ``<details>`` (left out entirely with ``exclude_input``, the
  printed variant, which also leaves out stderr and tracebacks), figures as
  ``data:`` URIs, no prompts, no script and nothing fetched from a network
  (no require.js, MathJax or CDN stylesheet: TeX stays as typed).
* ``index.html.j2`` wraps one fragment in a page of its own, so a single
  executed notebook renders cleanly without the report:
  ``jupyter nbconvert --to html --TemplateExporter.extra_template_basedirs=helpers/report_template
  --template cifar_lab report/executed/03_resnet_depth.ipynb``, or
  :func:`notebook_page`.
* ``page.html.j2`` is the report's page around the fragments (``helpers.report``).

What a reader should not have to see is removed by the preprocessors below,
listed in the template's ``conf.json`` (so plain ``jupyter nbconvert`` with
the template applies them too), in this order: papermill's cells
(:class:`DropPapermillCells`); stream messages merged and carriage returns
applied (nbconvert's ``CoalesceStreamsPreprocessor``); backspaces and
TensorFlow's C++ log lines (:class:`CleanStreams`); reprs returned by
accident and live-only widgets/scripts (:class:`DropObjectReprs`); images
that would be fetched, or that are missing (:class:`OfflineImages`); pandas'
0..N-1 index column (:class:`TidyTables`); then the cell where execution
stopped is marked (:class:`MarkStoppedCell`) and headings or "**Label:**"
lines left with nothing under them are dropped (:class:`DropEmptyHeadings`).

This module imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from nbconvert.exporters import HTMLExporter
from nbconvert.preprocessors import Preprocessor, TagRemovePreprocessor
from traitlets import Bool, Set
from traitlets.config import Config

from helpers.notebook_execution import INJECTED_TAG, PAPERMILL_ERROR_TAG, cell_tags, locate_failure

TEMPLATE_BASEDIR = Path(__file__).resolve().parent / "report_template"
TEMPLATE_NAME = "cifar_lab"
TEMPLATE_DIR = TEMPLATE_BASEDIR / TEMPLATE_NAME
# The output of a cell tagged so is lifted to the report's Summary section.
SUMMARY_TAG = "summary-table"
# Tables with this many columns or more print in a smaller font.
WIDE_TABLE_COLUMNS = 7

# TensorFlow's C++ log lines (absl/glog: "I0000 00:00:1795773063.327945  13881
# port.cc:153] ...", or TF < 2.16's "2024-01-01 12:00:00.123456: I tensorflow/
# ...cc:113] ...") and absl's notice before its first one. They go straight to
# file descriptor 2, so TF_CPP_MIN_LOG_LEVEL (set for the kernels) cannot stop
# the ones written before TensorFlow reads it. Info and warning lines are
# dropped from the page; error lines only when they are the known start-up
# probes of a machine without (or with) CUDA, so a real error still shows.
_TF_LOG_LINE = re.compile(
    r"^(?:(?P<glog>[IWEF])\d{4} \d{2}:\d{2}:\d+(?:\.\d+)?\s+\d+\s+\S+:\d+\]"
    r"|\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d+: (?P<dated>[IWEF]) \S+:\d+\])")
_TF_NOISE_LINES = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR\s*$"),
    re.compile(r"^To enable the following instructions: .*"
               r"rebuild TensorFlow with the appropriate compiler flags\.?\s*$"),
)
_TF_BENIGN_ERRORS = re.compile(
    r"cuInit|cuda_platform|cuda_diagnostics|kernel driver does not appear|"
    r"Unable to register cu(?:DNN|FFT|BLAS) factory|computation_placer|TF-TRT|NUMA node")
# Reprs of objects a cell returned by accident: a list of PosixPath, a figure
# or artist "at 0x7f...", matplotlib's "Text(0.5, 1.0, 'title')".
_OBJECT_REPRS = (
    re.compile(r"\b(?:Pure)?(?:Posix|Windows)Path\("),
    re.compile(r"<[\w.]+(?: object)? at 0x[0-9a-fA-F]+>"),
    re.compile(r"^<Figure size [\d.]+x[\d.]+ with \d+ Axes>$"),
    re.compile(r"^\[?Text\([-\d.e+]+, [-\d.e+]+, '.*'\)\]?$", re.DOTALL),
)
# Representations a page without a kernel cannot show.
_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_LIVE_ONLY_MIMES = ("application/javascript", "text/vnd.mermaid")
_SHOWN_BESIDES_TEXT = ("text/html", "text/markdown", "image/png", "image/jpeg", "image/svg+xml", "text/latex")


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def without_library_noise(text: str) -> str:
    """``text`` without TensorFlow's C++ start-up and log lines.

    Info and warning lines go; error lines only when they are known
    start-up probes (no CUDA driver, factories registered twice).
    """
    kept = []
    for line in text.split("\n"):
        if any(pattern.match(line) for pattern in _TF_NOISE_LINES):
            continue
        match = _TF_LOG_LINE.match(line)
        if match is not None:
            level = match.group("glog") or match.group("dated")
            if level in ("I", "W") or _TF_BENIGN_ERRORS.search(line):
                continue
        kept.append(line)
    return "\n".join(kept)


def is_object_repr(text: str) -> bool:
    """True for a repr no reader wants: paths, objects "at 0x...", figures, Text(...)."""
    stripped = text.strip()
    return any(pattern.search(stripped) for pattern in _OBJECT_REPRS)


# ---------------------------------------------------------------------------
# Preprocessors (listed, in this order, in the template's conf.json)
# ---------------------------------------------------------------------------


class DropPapermillCells(TagRemovePreprocessor):
    """Removes papermill's injected-parameters cell and its red error-marker cells.

    The profile a notebook ran with is in the page's stamp and each section's
    header; the failure in the section's banner and the stopped-cell marker.
    """

    remove_cell_tags = Set({INJECTED_TAG, PAPERMILL_ERROR_TAG}).tag(config=True)


class CleanStreams(Preprocessor):
    """Streams as a terminal would show them, without TensorFlow's C++ log lines.

    Runs after nbconvert's ``CoalesceStreamsPreprocessor`` (one output per run
    of a stream, carriage returns applied): applies backspaces, drops the log
    lines from stderr (:func:`without_library_noise`) and drops streams left
    with nothing to read.
    """

    def preprocess_cell(self, cell, resources, index):
        if "outputs" not in cell:
            return cell, resources
        kept = []
        for output in cell.outputs:
            if output.output_type == "stream":
                text = _with_backspaces_applied(_text(output.text).replace("\r\n", "\n"))
                if output.name == "stderr":
                    text = without_library_noise(text)
                if not text.strip():
                    continue
                output.text = text
            kept.append(output)
        cell.outputs = kept
        return cell, resources


def _with_backspaces_applied(text: str) -> str:
    if "\b" not in text:
        return text
    kept: list[str] = []
    for character in text:
        if character != "\b":
            kept.append(character)
        elif kept and kept[-1] != "\n":
            kept.pop()
    return "".join(kept)


class DropObjectReprs(Preprocessor):
    """Drops results that are only a repr (:func:`is_object_repr`) or empty.

    Also drops widget views (their text fallback, "HBox(...)", is noise
    without a kernel) and removes script representations, so the next
    representation of the same result shows.
    """

    def preprocess_cell(self, cell, resources, index):
        if "outputs" not in cell:
            return cell, resources
        kept = []
        for output in cell.outputs:
            if output.output_type in ("display_data", "execute_result"):
                data = output.get("data", {})
                if _WIDGET_MIME in data:
                    continue
                for mime in _LIVE_ONLY_MIMES:
                    data.pop(mime, None)
                if not any(mime in data for mime in _SHOWN_BESIDES_TEXT):
                    text = _text(data.get("text/plain", ""))
                    if not text.strip() or is_object_repr(text):
                        continue
            kept.append(output)
        cell.outputs = kept
        return cell, resources


_MARKDOWN_IMAGE = re.compile(
    r"!\[(?P<alt>[^\]]*)\]\(\s*<?(?P<src>[^)\s>]+)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
_HTML_IMAGE = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_SRC_ATTRIBUTE = re.compile(r"""\bsrc\s*=\s*(["'])(.*?)\1""", re.IGNORECASE | re.DOTALL)
_ALT_ATTRIBUTE = re.compile(r"""\balt\s*=\s*(["'])(.*?)\1""", re.IGNORECASE | re.DOTALL)
_REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.\-]*:)?//", re.IGNORECASE)


def _offline_span(text: str) -> str:
    return f'<span class="offline-image">{text}</span>'


class OfflineImages(Preprocessor):
    """Makes every image in Markdown and HTML self-contained, or says why it is not.

    For ``![alt](src)`` and ``<img src>`` in Markdown cells and in Markdown
    and HTML outputs: a local file (relative to the clean notebook, which
    papermill records as ``input_path``) becomes a ``data:`` URI; a remote
    image (a badge) becomes its alt text, since the page fetches nothing; a
    missing file or attachment becomes "[image not found: src]". Attachments
    nbconvert embeds itself.
    """

    def preprocess(self, nb, resources):
        input_path = (nb.metadata.get("papermill") or {}).get("input_path")
        if input_path and Path(input_path).is_absolute() and Path(input_path).parent.is_dir():
            folder = Path(input_path).parent
        else:
            folder = Path((resources.get("metadata") or {}).get("path") or ".")
        for cell in nb.cells:
            attachments = cell.get("attachments") or {}
            if cell.cell_type == "markdown":
                cell.source = self._rewrite(cell.source, folder, attachments, markdown=True)
            for output in cell.get("outputs", []):
                for mime in ("text/markdown", "text/html"):
                    if mime in output.get("data", {}):
                        output.data[mime] = self._rewrite(_text(output.data[mime]), folder, {},
                                                          markdown=mime == "text/markdown")
        return nb, resources

    @staticmethod
    def _source(src: str, folder: Path, attachments) -> str | None:
        """The ``src`` to use instead, or None when the image cannot be shown offline."""
        if src.startswith("data:"):
            return src
        if src.startswith("attachment:"):
            return src if src[len("attachment:"):] in attachments else None
        if _REMOTE.match(src):
            return None
        local = folder / src.split("?")[0].split("#")[0]
        mime = mimetypes.guess_type(local.name)[0]
        if mime and mime.startswith("image/") and local.is_file():
            return f"data:{mime};base64,{base64.b64encode(local.read_bytes()).decode('ascii')}"
        return None

    def _rewrite(self, text: str, folder: Path, attachments, markdown: bool) -> str:
        def replacement(src: str, alt: str) -> str | None:
            new_src = self._source(src, folder, attachments)
            if new_src is not None:
                return new_src
            if _REMOTE.match(src):
                return _offline_span(alt or html.escape(src))
            return _offline_span(f"[image not found: {html.escape(src)}]")

        def markdown_image(match: re.Match) -> str:
            src, alt = match.group("src"), match.group("alt")
            new = replacement(src, alt)
            if new.startswith("<span"):
                return new
            return match.group(0).replace(src, new, 1)

        def html_image(match: re.Match) -> str:
            tag = match.group(0)
            src_match = _SRC_ATTRIBUTE.search(tag)
            if src_match is None:
                return tag
            alt_match = _ALT_ATTRIBUTE.search(tag)
            new = replacement(html.unescape(src_match.group(2).strip()), alt_match.group(2) if alt_match else "")
            if new.startswith("<span"):
                return new
            return tag[:src_match.start(2)] + new + tag[src_match.end(2):]

        if markdown:
            text = _MARKDOWN_IMAGE.sub(markdown_image, text)
        return _HTML_IMAGE.sub(html_image, text)


class TidyTables(Preprocessor):
    """Drops pandas' 0..N-1 index column from HTML tables; marks wide tables.

    The index goes only when every body row starts with ``<th>k</th>`` for
    k = 0, 1, ... and every header row with an empty ``<th>``: a named or
    meaningful index stays. A table of ``WIDE_TABLE_COLUMNS`` or more
    columns gets the class ``wide`` (a smaller font, so it fits the page).
    """

    def preprocess_cell(self, cell, resources, index):
        for output in cell.get("outputs", []):
            if "<table" in _text(output.get("data", {}).get("text/html", "")):
                output.data["text/html"] = self._tidy(_text(output.data["text/html"]))
        return cell, resources

    @staticmethod
    def _tidy(fragment: str) -> str:
        from bs4 import BeautifulSoup

        soup = BeautifulSoup(fragment, "html.parser")
        for table in soup.find_all("table"):
            head_rows = table.thead.find_all("tr") if table.thead else []
            body_rows = table.tbody.find_all("tr") if table.tbody else []
            firsts = [row.find(["th", "td"]) for row in head_rows + body_rows]
            if ("dataframe" in (table.get("class") or []) and head_rows and body_rows
                    and all(cell is not None and cell.name == "th" for cell in firsts)
                    and not any(cell.get_text(strip=True) for cell in firsts[:len(head_rows)])
                    and [cell.get_text(strip=True) for cell in firsts[len(head_rows):]]
                    == [str(number) for number in range(len(body_rows))]):
                for cell in firsts:
                    cell.decompose()
            first_row = table.find("tr")
            if first_row is not None and len(first_row.find_all(["th", "td"])) >= WIDE_TABLE_COLUMNS:
                table["class"] = ["wide", *(table.get("class") or [])]
        return str(soup)


class MarkStoppedCell(Preprocessor):
    """Marks the code cell where execution stopped (``metadata.cifar_lab.stopped``).

    The cell is found by ``notebook_execution.locate_failure``, the rule the
    report's failure summary uses; the template writes "Execution stopped
    here" under it. ``resources["notebook_failed"]`` (set by the report) says
    whether execution ended abnormally; without it, papermill's record does.
    """

    def preprocess(self, nb, resources):
        failed = resources.get("notebook_failed")
        if failed is None:
            failed = bool((nb.metadata.get("papermill") or {}).get("exception"))
        where = locate_failure(nb, stopped=failed)
        if where is None:
            return nb, resources
        number, _, error = where
        code_cells = [cell for cell in nb.cells
                      if cell.cell_type == "code" and INJECTED_TAG not in cell_tags(cell)]
        if 0 < number <= len(code_cells):
            reason = error.get("ename", "Error") if error else "the kernel died, timed out or was interrupted"
            code_cells[number - 1].metadata.setdefault("cifar_lab", {})["stopped"] = reason
        return nb, resources


_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]|$)")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_BARE_LABEL = re.compile(r"^\s*(\*\*|__)[^*_\n]*:\s*\1\s*$")


def _markdown_segments(source: str) -> list[tuple[int | None, list[str]]]:
    """A Markdown source as (heading level, lines) segments; level None for content.

    Only ATX headings ("## Title") outside fenced code count as headings.
    """
    segments: list[tuple[int | None, list[str]]] = [(None, [])]
    fence = None
    for line in source.split("\n"):
        if fence is not None:
            segments[-1][1].append(line)
            if re.match(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$", line):
                fence = None
            continue
        fence_match = _FENCE.match(line)
        heading = _ATX_HEADING.match(line)
        if fence_match:
            fence = fence_match.group(1)
            segments[-1][1].append(line)
        elif heading:
            segments.append((len(heading.group(1)), [line]))
            segments.append((None, []))
        else:
            segments[-1][1].append(line)
    return [(level, lines) for level, lines in segments if level is not None or lines]


def _without_bare_labels(lines: list[str]) -> list[str]:
    """Drops trailing paragraphs that are only a label such as "**Figures written:**"."""
    lines = list(lines)
    while True:
        while lines and not lines[-1].strip():
            lines.pop()
        if lines and _BARE_LABEL.match(lines[-1]) and (len(lines) == 1 or not lines[-2].strip()):
            lines.pop()
            continue
        return lines


class DropEmptyHeadings(Preprocessor):
    """Drops headings with nothing under them, and labels with nothing after them.

    A heading is empty when no content comes before the next heading of the
    same or a higher rank. Content is Markdown text, or a code cell that
    shows something: an output, or its code when inputs are shown. So in the
    printed variant (no inputs) "## Setup" over code without output goes,
    and in the page it heads the folded code. A paragraph that is only
    "**Label:**" goes when nothing follows it before a heading or the end of
    its cell. Runs last, after every output that will not show was dropped.
    """

    # nbconvert tells the template, not the preprocessors, whether inputs
    # show: :func:`exporter` sets this with ``exclude_input``.
    show_inputs = Bool(True, help="Whether code is shown (folded) on the page.").tag(config=True)

    def preprocess(self, nb, resources):
        show_inputs = self.show_inputs
        blocks = []  # (cell index, segment index or None, heading level or None, has content)
        segments_of: dict[int, list] = {}
        for cell_index, cell in enumerate(nb.cells):
            if cell.cell_type == "markdown":
                segments = [(level, lines if level is not None else _without_bare_labels(lines))
                            for level, lines in _markdown_segments(cell.source)]
                segments_of[cell_index] = segments
                for segment_index, (level, lines) in enumerate(segments):
                    blocks.append((cell_index, segment_index, level,
                                   level is None and any(line.strip() for line in lines)))
            elif cell.cell_type == "code":
                shows = ((show_inputs and bool(cell.source.strip()))
                         or any(not (output.output_type == "stream" and output.name == "stderr"
                                     and not show_inputs) for output in cell.get("outputs", [])))
                blocks.append((cell_index, None, None, shows))
        dropped = set()
        for position, (cell_index, segment_index, level, _) in enumerate(blocks):
            if level is None:
                continue
            for _, _, later_level, later_content in blocks[position + 1:]:
                if later_level is None and later_content:
                    break
                if later_level is not None and later_level <= level:
                    dropped.add((cell_index, segment_index))
                    break
            else:
                dropped.add((cell_index, segment_index))
        cells = []
        for cell_index, cell in enumerate(nb.cells):
            if cell_index in segments_of:
                kept = [lines for segment_index, (level, lines) in enumerate(segments_of[cell_index])
                        if (cell_index, segment_index) not in dropped]
                source = "\n".join(line for lines in kept for line in lines).strip()
                if not source:
                    continue
                cell.source = source
            cells.append(cell)
        nb.cells = cells
        return nb, resources


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------


def exporter(printable: bool = False, template_file: str = "section.html.j2") -> HTMLExporter:
    """nbconvert's HTMLExporter with the project template and its preprocessors.

    Args:
        printable: Leave out code, stderr and tracebacks (the PDF's variant).
        template_file: ``section.html.j2`` (a fragment) or ``index.html.j2``
            (a page of its own).
    """
    return HTMLExporter(config=Config({"DropEmptyHeadings": {"show_inputs": not printable}}),
                        template_name=TEMPLATE_NAME, template_file=template_file,
                        extra_template_basedirs=[str(TEMPLATE_BASEDIR)],
                        exclude_input=printable, exclude_input_prompt=True, exclude_output_prompt=True)


def export(nb, html_exporter: HTMLExporter, *, name: str, folder: str | Path,
           failed: bool | None = None, summary_moved: bool = False) -> str:
    """One notebook through ``html_exporter``; returns the HTML.

    Args:
        nb: The executed notebook (not modified: nbconvert works on a copy).
        name: Its stem, for the page title.
        folder: Where relative paths resolve when papermill recorded none.
        failed: Whether its execution ended abnormally (None: read papermill's record).
        summary_moved: Outputs of cells tagged ``summary-table`` are shown in
            the report's Summary: the section links there instead.
    """
    resources = {"metadata": {"name": name, "path": str(folder)}, "summary_moved": summary_moved}
    if failed is not None:
        resources["notebook_failed"] = failed
    body, _ = html_exporter.from_notebook_node(nb, resources=resources)
    return body


def notebook_page(path: str | Path) -> str:
    """One executed notebook as a self-contained page of its own (``index.html.j2``)."""
    import nbformat

    path = Path(path)
    return export(nbformat.read(path, as_version=4), exporter(template_file="index.html.j2"),
                  name=path.stem, folder=path.parent)


_CSS_LOAD = re.compile(r"""url\(\s*['"]?([^'")\s]+)|@import\s+['"]([^'"]+)""")


class _LoadCollector(HTMLParser):
    """Every URL a browser would fetch: src of any tag, href of <link>, CSS url() and @import."""

    def __init__(self):
        super().__init__()
        self.loads: list[str] = []
        self._in_style = False

    def _css(self, text: str) -> None:
        self.loads.extend(url or imported for url, imported in _CSS_LOAD.findall(text))

    def handle_starttag(self, tag, attrs):
        self._in_style = tag == "style"
        for name, value in attrs:
            if not value:
                continue
            if name in ("src", "srcset", "poster", "data") or (tag == "link" and name == "href"):
                self.loads.append(value)
            elif name == "style":
                self._css(value)

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self._css(data)


def external_references(page: str) -> list[str]:
    """URLs outside the page that a browser would fetch to show it (should be [])."""
    collector = _LoadCollector()
    collector.feed(page)
    return [url for url in collector.loads if not url.startswith(("data:", "#"))]
