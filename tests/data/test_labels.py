import os

import numpy as np
import pytest
from astropy.table import Table

from galcnn.data.inputs import Source
from galcnn.data.labels import (choose_classes, find_label_file, labels_from_directories,
                           match_labels, read_label_table)


def _source(root, rel):
    path = os.path.join(root, rel)
    return Source(id=rel.split(".")[0], paths=(path,), root=root)


def test_csv_auto_columns_and_all_matching_rules(tmp_path):
    root = str(tmp_path / "data")
    sources = [_source(root, "cutouts/a1.fits"), _source(root, "cutouts/b2.fits.fz"),
               _source(root, "cutouts/c3.fits"), _source(root, "cutouts/d4.fits")]
    table_path = tmp_path / "data" / "labels.csv"
    table_path.parent.mkdir()
    table_path.write_text("objid,file,label\n1,cutouts/a1.fits,x\n2,b2.fits.fz,y\n3,c3,x\n"
                          "4,gone.fits,y\n")
    table = read_label_table(str(table_path))
    assert (table.id_column, table.label_column) == ("file", "label")
    labels, unlabelled, missing = match_labels(sources, table)
    assert [labels[s] for s in sources[:3]] == ["x", "y", "x"]
    assert unlabelled == [sources[3]] and missing == ["gone.fits"]


def test_absolute_paths_in_a_table_match_however_they_are_spelt(tmp_path):
    """A table elsewhere naming files by absolute path, with '..' in it, still matches."""
    root = str(tmp_path / "data")
    sources = [_source(root, "cutouts/a1.fits"), _source(root, "cutouts/b2.fits")]
    table_path = tmp_path / "tables" / "labels.csv"
    table_path.parent.mkdir()
    spelt = os.path.join(str(tmp_path), "tables", "..", "data", "cutouts", "a1.fits")
    table_path.write_text(f"file,label\n{spelt},x\n{sources[1].paths[0]},y\n")
    labels, unlabelled, missing = match_labels(sources, read_label_table(str(table_path)))
    assert [labels[s] for s in sources] == ["x", "y"] and not unlabelled and not missing


def test_fits_table_where_filter_and_named_columns(tmp_path):
    path = str(tmp_path / "cat.fits")
    Table({"name": ["a", "b", "c"], "morph": ["FRI", "FRII", "FRI"],
           "confident": np.array([1, 0, 1])}).write(path)
    table = read_label_table(path, id_column="NAME", label_column="morph",
                             where={"confident": "1"})
    assert table.labels == {"a": "FRI", "c": "FRI"} and table.n_filtered == 1
    with pytest.raises(ValueError, match="no label column 'kind'"):
        read_label_table(path, label_column="kind")


def test_conflicting_duplicate_ids_are_reported_and_dropped(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("id,label\na,x\na,y\nb,x\nb,x\nc,\n")
    table = read_label_table(str(path))
    assert table.labels == {"b": "x"} and table.conflicts == ["a"] and table.n_empty == 1


def test_unknown_columns_need_naming(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("foo,bar\n1,2\n")
    with pytest.raises(ValueError, match="--id-column"):
        read_label_table(str(path))


def test_find_label_file_and_directories(tmp_path):
    (tmp_path / "labels.csv").write_text("file,label\n")
    assert find_label_file([str(tmp_path)]).endswith("labels.csv")
    assert find_label_file([str(tmp_path), str(tmp_path)]) is None
    root = str(tmp_path)
    sources = [_source(root, "spiral/a.fits"), _source(root, "elliptical/b.fits")]
    assert labels_from_directories(sources) == {sources[0]: "spiral", sources[1]: "elliptical"}
    assert labels_from_directories([_source(root, "a.fits")]) is None
    assert labels_from_directories(sources[:1]) == {sources[0]: "spiral"}  # one class, said


def test_choose_classes_orders_and_drops():
    labels = {f"s{i}": lab for i, lab in enumerate(["FRII", "FRI", "hybrid", "FRI"])}
    order, kept, dropped = choose_classes(labels, ["FRI", "FRII"])
    assert order == ["FRI", "FRII"] and len(kept) == 3 and dropped == {"hybrid": 1}
    assert choose_classes(labels, None)[0] == ["FRI", "FRII", "hybrid"]
    with pytest.raises(ValueError, match="not found among the labels"):
        choose_classes(labels, ["FRIII"])


def test_a_weight_column_gives_each_id_its_loss_weight(tmp_path):
    from galcnn.data.labels import resolve_labels, weight_of

    assert [weight_of(v) for v in ("1", "0", "0.25", "", "yes", "False")] == \
        [1.0, 0.0, 0.25, 1.0, 1.0, 0.0]
    assert weight_of("0", {"0": 0.5}) == 0.5 and weight_of("1", {"0": 0.5}) == 1.0
    for bad in ("maybe", "-1", "nan", "inf"):
        with pytest.raises(ValueError):
            weight_of(bad)
    root = str(tmp_path / "data")
    sources = [_source(root, "a1.fits"), _source(root, "b2.fits"), _source(root, "c3.fits")]
    os.makedirs(root)
    table = os.path.join(root, "labels.csv")
    with open(table, "w") as handle:
        handle.write("file,label,confident\na1.fits,x,1\nb2.fits,y,0\nc3.fits,x,\n")
    found = resolve_labels(sources, [root], weight_column="confident", weight_map={"0": 0.5})
    assert [found.weights[s] for s in sources] == [1.0, 0.5, 1.0]
    assert found.info["weights"] == {"column": "confident", "map": {"0": 0.5},
                                     "mean": pytest.approx(2.5 / 3)}
    assert resolve_labels(sources, [root]).weights is None
    with open(table, "a") as handle:
        handle.write("d4.fits,y,perhaps\n")
    with pytest.raises(ValueError, match=r"labels.csv: column 'confident' of id 'd4.fits': "
                                         r"'perhaps' is not a weight"):
        resolve_labels(sources, [root], weight_column="confident")
    with pytest.raises(ValueError, match="--weight-column w needs a label table"):
        resolve_labels(sources, [root, str(tmp_path)], weight_column="w")
