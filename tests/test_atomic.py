"""helpers.atomic: a write either lands whole or leaves the old file."""

from __future__ import annotations

import pytest

from helpers import atomic


def test_replacing_writes_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "record.json"
    with atomic.replacing(path) as handle:
        handle.write('{"a": 1}')
    assert path.read_text() == '{"a": 1}'
    assert [p.name for p in path.parent.iterdir()] == ["record.json"]


def test_an_error_keeps_the_old_content(tmp_path):
    path = tmp_path / "record.json"
    atomic.write_text(path, "old")
    with pytest.raises(RuntimeError):
        with atomic.replacing(path) as handle:
            handle.write("half of the new")
            raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_replacing_path_keeps_the_suffix_for_writers_that_choose_by_it(tmp_path):
    path = tmp_path / "figure.png"
    with atomic.replacing_path(path) as temporary:
        assert temporary.suffix == ".png" and temporary.parent == tmp_path and temporary.name.startswith(".")
        temporary.write_bytes(b"png")
    assert path.read_bytes() == b"png"
