"""Printing the report's HTML to PDF with headless Chromium.

The PDF is the browser's own print of the page (A4, the page's ``@media
print`` rules), so the HTML and the PDF cannot drift apart. Chromium runs
with a throw-away profile and every network feature off; the page needs
nothing from the network anyway (``helpers.notebook_html``).

This module imports nothing heavy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from helpers import atomic

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Seconds Chromium may take to print the PDF; a few MB of inline images print
# in seconds, so this only catches a hung browser.
PDF_TIMEOUT_SECONDS = 180

NO_CHROMIUM = (
    "No Chromium found on PATH (looked for " + ", ".join(CHROMIUM_NAMES) + "); it prints "
    "report/report.pdf. Install it (Debian/Ubuntu: 'apt-get install chromium') or pass --no-pdf."
)


def find_chromium() -> str | None:
    """Path of a Chromium or Chrome executable on PATH, or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def chromium_command(chromium: str, profile_dir: str | os.PathLike, *arguments: str) -> list[str]:
    """A headless Chromium command line that touches no network and no user profile.

    ``--no-sandbox`` because CI and containers run as root, where Chromium's
    sandbox refuses to start.
    """
    return [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-quic", "--no-first-run", "--no-default-browser-check",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", f"--user-data-dir={profile_dir}", *arguments]


def render_pdf(html_path: str | os.PathLike, pdf_path: str | os.PathLike,
               chromium: str | None = None, timeout: float = PDF_TIMEOUT_SECONDS) -> Path:
    """Prints ``html_path`` to ``pdf_path`` with headless Chromium.

    The PDF appears whole or not at all: Chromium prints beside it and the
    file is renamed into place (``helpers.atomic.replacing_path``).

    Raises:
        RuntimeError: when Chromium is missing, fails, times out or writes no
            PDF; an earlier ``pdf_path`` is then left as it was.

    Used in: the ``report`` command.
    """
    chromium = chromium or find_chromium()
    if chromium is None:
        raise RuntimeError(NO_CHROMIUM)
    source = Path(html_path).resolve()
    target = Path(pdf_path).resolve()
    with atomic.replacing_path(target) as temporary, \
            tempfile.TemporaryDirectory(prefix="cifar-lab-chromium-") as profile_dir:
        temporary.unlink(missing_ok=True)
        command = chromium_command(chromium, profile_dir, f"--print-to-pdf={temporary}",
                                   "--no-pdf-header-footer", source.as_uri())
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as error:
            raise RuntimeError(f"Chromium did not finish printing {source} within {timeout:.0f} s. "
                               f"Received: {' '.join(command)}") from error
        if result.returncode != 0 or not temporary.is_file() or temporary.stat().st_size == 0:
            errors = "\n".join([line for line in result.stderr.splitlines() if line.strip()][:5])
            raise RuntimeError(f"Chromium could not print {source} (exit {result.returncode}): "
                               f"{errors}. Received: {' '.join(command)}")
    return target
