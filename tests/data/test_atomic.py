"""Outputs that appear only when complete."""

import importlib
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
    assert os.path.basename(temporary_path(path)).startswith(f".out.txt.tmp-{os.getpid()}-")


def test_two_processes_with_one_pid_never_share_a_temporary_name(tmp_path, monkeypatch):
    """Each container's galcnn may be pid 1: a killed one's leftover is not the next one's."""
    from galcnn.data import atomic
    monkeypatch.setattr(os, "getpid", lambda: 1)
    out = str(tmp_path / "out")
    killed = atomic.temporary_path(out)
    os.makedirs(killed)
    open(os.path.join(killed, "stale.png"), "w").close()
    importlib.reload(atomic)  # a new process: a new token
    with atomic.atomic_output(out) as tmp:
        os.makedirs(tmp)
        open(os.path.join(tmp, "index.csv"), "w").close()
    assert atomic.temporary_path(out) != killed
    assert os.listdir(out) == ["index.csv"]


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


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_leftovers_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    from galcnn.data.atomic import remove_stale_temporaries

    out = tmp_path / "out"
    out.mkdir()
    dead, alive = _dead_pid(), os.getpid()
    stale = [tmp_path / f".out.tmp-{dead}", out / f".galcnn-scratch-{dead}-x1",
             out / f".x.cat.csv.tmp-{dead}"]
    kept = [tmp_path / f".out.tmp-{alive}", out / f".galcnn-scratch-{alive}-y",
            tmp_path / f".other.tmp-{dead}"]  # another output's: not ours to judge here
    for path in stale + kept:
        path.write_text("x")
    removed = remove_stale_temporaries(str(out))
    assert sorted(removed) == sorted(str(p) for p in stale)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)


def test_overwrite_keeps_one_output_in_place_and_a_moved_aside_one_comes_back(tmp_path):
    from galcnn.data.atomic import remove_stale_temporaries

    out, new = tmp_path / "out", tmp_path / "new"
    out.mkdir()
    (out / "old.txt").write_text("old")
    new.mkdir()
    (new / "new.txt").write_text("new")
    replace_directory(str(new), str(out), overwrite=True)
    assert os.listdir(out) == ["new.txt"] and not new.exists()
    assert [n for n in os.listdir(tmp_path) if n != "out"] == []
    # a process killed between the two renames of the fallback left only the old one aside
    os.rename(out, tmp_path / f".out.tmp-{_dead_pid()}.old")
    remove_stale_temporaries(str(out))
    assert os.listdir(out) == ["new.txt"]
