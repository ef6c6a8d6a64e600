"""``galcnn similar``: parse, call :func:`galcnn.stages.similar.similar`, report."""

from __future__ import annotations

import sys

import click

from galcnn.cli.main import EXIT_SOME_FAILED, report_failures, run, stdout


@click.command("similar")
@click.argument("table", type=click.Path(exists=True, dir_okay=False))
@click.argument("queries", nargs=-1, required=True)
@click.option("-k", "k", type=click.IntRange(1), default=10, show_default=True,
              help="Neighbours per query.")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Output CSV; the mosaic goes beside it as a PNG of the same name.")
@click.option("--no-mosaic", is_flag=True, help="The CSV only.")
def command(table, queries, k, out_path, no_mosaic):
    """The K cutouts nearest to each QUERY in an embedding TABLE (galcnn embed).

    \b
    A query is an id, a file, or a file's name in the table. Distances are cosine
    distances (0: the same direction). Written: OUT (query, rank, id, file, ra, dec,
    distance) and OUT's name with .png: a row per query, the query first. Exit status 0:
    every query found; 3: some were not in the table; 2: usage error; 1: nothing done.

    \b
    Example:
      galcnn similar embeddings.fits 587722952767439450 -k 10 -o like-it.csv
    """
    from galcnn.stages.similar import similar

    result = run(similar, table, list(queries), out_path, k=k, mosaic=not no_mosaic)
    report_failures("similar", result.failures + result.missing, out_path)
    per_query = result.n_neighbours // max(result.n_queries, 1)
    fewer = (f" (-k {k}: the table has only {result.n_searched - 1} other embedded rows)"
             if per_query < k else "")
    from galcnn.stages.similar import MOSAIC_NEIGHBOURS

    shown = (f" (the mosaic shows the nearest {MOSAIC_NEIGHBOURS})"
             if per_query > MOSAIC_NEIGHBOURS else "")
    mosaic = f" and {result.mosaic_path}{shown}" if result.mosaic_path else ""
    queries_said = "query" if result.n_queries == 1 else "queries"
    stdout().print(f"Wrote the {per_query} nearest of {result.n_queries} {queries_said}"
                   f"{fewer} to {result.out_path}{mosaic} ({result.elapsed_s:.1f} s)",
                   markup=False)
    if result.failures or result.missing:
        sys.exit(EXIT_SOME_FAILED)
