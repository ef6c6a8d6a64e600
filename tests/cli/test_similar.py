"""``galcnn embed`` then ``galcnn similar`` on the command line."""

from __future__ import annotations

from click.testing import CliRunner

from galcnn.cli import cli

from helpers import csv_rows


def test_embed_then_search_and_an_unknown_query_is_named(classifier, cutouts, tmp_path):
    (cutouts / "notfits.fits").write_text("hello")
    table = str(tmp_path / "emb.fits")
    result = CliRunner().invoke(cli, ["embed", classifier, str(cutouts), "-o", table])
    assert result.exit_code == 3 and "12 embedded, 1 failed" in result.output, result.output
    assert "notfits.fits" in result.output and "Traceback" not in result.output
    out = str(tmp_path / "near.csv")
    result = CliRunner().invoke(cli, ["similar", table, "elliptical_000", "nothing", "-k", "3",
                                      "-o", out])
    assert result.exit_code == 3, result.output
    assert "galcnn similar: nothing: not in" in result.output
    rows = csv_rows(out)
    assert [r["rank"] for r in rows] == ["1", "2", "3"]
    assert all(r["query"] == "elliptical_000" and r["id"] != "elliptical_000" for r in rows)
    assert (tmp_path / "near.png").exists()


def test_k_larger_than_the_table_says_how_many_it_wrote(classifier, cutouts, tmp_path):
    """-k 1000 said 'Wrote the 1000 nearest' and wrote 119."""
    table = str(tmp_path / "emb.fits")
    assert CliRunner().invoke(cli, ["embed", classifier, str(cutouts), "-o", table]).exit_code == 0
    out = tmp_path / "near.csv"
    result = CliRunner().invoke(cli, ["similar", table, "elliptical_000", "-k", "1000", "-o",
                                      str(out), "--no-mosaic"])
    assert result.exit_code == 0, result.output
    assert ("Wrote the 11 nearest of 1 query (-k 1000: the table has only 11 other embedded "
            f"rows) to {out}") in " ".join(result.output.split())
    assert len(csv_rows(str(out))) == 11
