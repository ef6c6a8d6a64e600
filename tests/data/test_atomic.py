"""Outputs that appear only when complete."""

import json
import os

import pytest

from galcnn.data.atomic import (atomic_output, make_parent, replace_directory, temporary_path,
                                write_csv, write_json)
from galcnn.errors import GalcnnError


def test_a_failed_write_leaves_the_previous_output(tmp_path):
    path = str(tmp_path / "out.txt")
    with atomic_output(path) as tmp:
        open(tmp, "w").write("first")
    with pytest.raises(RuntimeError):
        with atomic_output(path) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("killed")
    assert open(path).read() == "first" and os.listdir(tmp_path) == ["out.txt"]
    assert os.path.basename(temporary_path(path)) == f".out.txt.tmp-{os.getpid()}"


def test_writers_and_parents(tmp_path):
    write_json(str(tmp_path / "a" / "b" / "m.json"), {"x": 1})
    assert json.load(open(tmp_path / "a" / "b" / "m.json")) == {"x": 1}
    write_csv(str(tmp_path / "t.csv"), ["k", "v"], [{"k": 1, "v": 2}, [3, 4]])
    assert open(tmp_path / "t.csv").read().splitlines() == ["k,v", "1,2", "3,4"]
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError) as raised:
        make_parent(str(tmp_path / "file" / "sub" / "x"))
    assert raised.value.filename == str(tmp_path / "file")


def test_replace_directory_needs_overwrite(tmp_path):
    out, new = tmp_path / "out", tmp_path / "new"
    out.mkdir()
    (out / "old").write_text("")
    new.mkdir()
    (new / "fresh").write_text("")
    with pytest.raises(GalcnnError, match="use --overwrite"):
        replace_directory(str(new), str(out), overwrite=False)
    replace_directory(str(new), str(out), overwrite=True)
    assert os.listdir(out) == ["fresh"] and sorted(os.listdir(tmp_path)) == ["out"]
