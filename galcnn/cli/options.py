"""Option parsing shared by the commands: sizes, lists, ``COL=VALUE`` filters."""

from __future__ import annotations

import click


def parse_size(ctx, param, value: str | None) -> tuple[int, int] | None:
    """``64`` -> (64, 64); ``48x64`` -> (48, 64) as (ny, nx)."""
    if value is None:
        return None
    text = value.lower().replace(" ", "")
    try:
        parts = [int(p) for p in text.split("x")] if "x" in text else [int(text)] * 2
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a size; give N or NYxNX, e.g. 64 or 48x64")
    if len(parts) != 2 or min(parts) < 4:
        raise click.BadParameter(f"{value!r}: sizes must be at least 4 pixels")
    return parts[0], parts[1]


def parse_list(ctx, param, value: str | None) -> list[str] | None:
    """``a,b,c`` -> ["a", "b", "c"]."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise click.BadParameter("give a comma-separated list")
    return items


def parse_where(ctx, param, values: tuple[str, ...]) -> dict[str, str]:
    """Repeated ``COL=VALUE`` -> {"COL": "VALUE"}."""
    where = {}
    for item in values:
        column, sep, wanted = item.partition("=")
        if not sep or not column.strip():
            raise click.BadParameter(f"{item!r}: write COLUMN=VALUE, e.g. confident=1")
        where[column.strip()] = wanted.strip()
    return where


def parse_percentiles(ctx, param, value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        low, high = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r}: give LOW,HIGH, e.g. 0.5,99.5")
    return low, high
