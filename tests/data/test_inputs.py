import os

import numpy as np
import pytest

from helpers import write_fits
from galcnn.data.inputs import expand_inputs, group_bands, sources_from_files, strip_fits_suffix


@pytest.fixture
def tree(tmp_path):
    for name in ("a/one.fits", "a/two.fits.gz", "b/three.fits.fz", "b/notes.txt", ".hidden.fits"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return tmp_path


def test_directory_is_searched_recursively_for_fits_names_only(tree):
    files = [os.path.relpath(p, tree) for p, _ in expand_inputs([str(tree)])]
    assert files == ["a/one.fits", "a/two.fits.gz", "b/three.fits.fz"]


def test_glob_list_file_and_duplicates(tree):
    listing = tree / "list.txt"
    listing.write_text("# comment\na/one.fits\n\nb/three.fits.fz  # inline\n")
    pairs = expand_inputs([f"@{listing}", str(tree / "a" / "*.fits*")])
    names = [os.path.basename(p) for p, _ in pairs]
    assert names == ["one.fits", "three.fits.fz", "two.fits.gz"]


def test_missing_named_file_is_kept_for_its_own_error(tmp_path):
    assert expand_inputs([str(tmp_path / "gone.fits")])[0][0].endswith("gone.fits")
    with pytest.raises(ValueError, match="matches no file"):
        expand_inputs([str(tmp_path / "*.fits")])
    with pytest.raises(ValueError, match="holds no FITS"):
        expand_inputs([str(tmp_path)])


def test_ids_are_names_and_relative_names_are_paths_below_the_root(tree):
    sources = sources_from_files(expand_inputs([str(tree)]))
    assert [s.id for s in sources] == ["one", "two", "three"]
    assert [s.relative for s in sources] == ["a/one", "a/two", "b/three"]
    assert strip_fits_suffix("x.FITS.fz") == "x"


def test_band_grouping(tmp_path):
    for obj in ("g1", "g2"):
        for band in ("r", "g", "i"):
            write_fits(tmp_path / f"{obj}_{band}.fits", np.zeros((4, 4), np.float32))
    write_fits(tmp_path / "g3_r.fits", np.zeros((4, 4), np.float32))
    write_fits(tmp_path / "odd.fits", np.zeros((4, 4), np.float32))
    sources, bands, problems = group_bands(expand_inputs([str(tmp_path)]), "{id}_{band}.fits",
                                           ["g", "r", "i"])
    assert bands == ["g", "r", "i"]
    assert [s.id for s in sources] == ["g1", "g2"]
    assert [os.path.basename(p) for p in sources[0].paths] == ["g1_g.fits", "g1_r.fits",
                                                                "g1_i.fits"]
    messages = dict((os.path.basename(p), m) for p, m in problems)
    assert "missing band(s) g,i" in messages["g3_r.fits"]
    assert "does not match" in messages["odd.fits"]
    with pytest.raises(ValueError, match="must contain"):
        group_bands([], "{id}.fits", None)


def test_link_loops_and_links_to_one_folder_are_walked_once(tmp_path):
    data = tmp_path / "data"
    write_fits(data / "sub" / "a.fits", np.ones((4, 4)))
    write_fits(data / "b.fits", np.ones((4, 4)))
    os.symlink(data, data / "sub" / "loop")  # a link back up: a loop
    os.symlink(data / "sub", data / "again")  # a second way into one folder
    os.symlink(data / "b.fits", data / "b-link.fits")  # a second name of one file
    files = [os.path.realpath(p) for p, _ in expand_inputs([str(data)])]
    assert sorted(files) == sorted(os.path.realpath(p) for p in (data / "sub" / "a.fits",
                                                                  data / "b.fits"))
    spelled = expand_inputs([str(data / "b.fits"), f"{tmp_path}/./data/b.fits"])
    assert len(spelled) == 1


def test_a_directory_named_like_a_fits_file_is_named(tmp_path):
    (tmp_path / "image.fits").mkdir()
    with pytest.raises(ValueError, match=r"image.fits is a directory, not a FITS file"):
        expand_inputs([str(tmp_path / "image.fits")])
    with pytest.raises(ValueError, match=r"image.fits is a directory, not a FITS file"):
        expand_inputs([str(tmp_path / "*.fits")])
