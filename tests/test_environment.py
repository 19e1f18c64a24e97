"""helpers.environment: the git stamp that every run record and the report carry."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from helpers import environment

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(root, *args):
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e.invalid", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@e.invalid", "HOME": str(root), "PATH": "/usr/bin:/bin"})


@pytest.fixture
def checkout(tmp_path):
    for folder in ("helpers", "figures", "report"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "file.txt").write_text("a\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "first")
    return tmp_path


def test_series_outputs_do_not_make_the_code_dirty(checkout):
    state = environment.git_state(checkout, exclude=environment.SERIES_OUTPUTS)
    assert state["dirty"] is False and len(state["revision"]) == 40
    (checkout / "figures" / "file.txt").write_text("redrawn\n")
    (checkout / "report" / "file.txt").write_text("re-rendered\n")
    assert environment.git_state(checkout, exclude=environment.SERIES_OUTPUTS)["dirty"] is False
    assert environment.git_state(checkout)["dirty"] is True  # without the exclusion it would count
    (checkout / "helpers" / "file.txt").write_text("edited code\n")
    assert environment.git_state(checkout, exclude=environment.SERIES_OUTPUTS)["dirty"] is True


def test_outside_a_checkout_the_stamp_says_unknown(tmp_path):
    assert environment.git_state(tmp_path) == {"revision": None, "dirty": None}


def test_run_records_use_the_same_exclusion(monkeypatch):
    seen = {}

    def fake_git_state(project_root=None, exclude=()):
        seen["exclude"] = tuple(exclude)
        return {"revision": "r", "dirty": False}

    monkeypatch.setattr(environment, "git_state", fake_git_state)
    assert environment.describe_environment()["git"] == {"revision": "r", "dirty": False}
    assert seen["exclude"] == environment.SERIES_OUTPUTS


@pytest.mark.parametrize("flags, widest, kept", [
    ("fpu sse sse2 avx avx2 fma", "AVX2", ["avx2", "fma"]),
    ("sse avx avx2 fma avx512f avx512bw avx512_bf16 amx_tile", "AVX-512", ["avx2", "fma", "avx512f", "avx512_bf16", "amx_tile"]),
    ("sse sse2", "SSE", []),
])
def test_instruction_set_names_the_widest_extension(tmp_path, flags, widest, kept):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\n")
    assert environment.instruction_set(cpuinfo) == {"widest": widest, "flags": kept}
    assert environment.instruction_set(tmp_path / "missing") == {"widest": "unknown", "flags": []}


def test_hardware_stamp_carries_the_instruction_set():
    assert "widest" in environment.hardware(gpus=[])["instruction_set"]
