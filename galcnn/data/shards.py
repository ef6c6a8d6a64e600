"""Splitting inputs among N batch jobs without overlap: ``--shard K/N`` or a Slurm array.

The rule depends on each input's path alone (CRC-32 modulo N), so jobs that list the same
inputs in different orders still take disjoint parts that together cover every input.
"""

from __future__ import annotations

import os
import zlib

__all__ = ["parse_shard", "shard_from_env", "in_shard"]


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` (1-based K) -> (K, N); ValueError with the fix in the message otherwise."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: write K/N, e.g. 3/10") from None
    if not 1 <= k <= n:
        raise ValueError(f"--shard {text!r}: K must be between 1 and N")
    return k, n


def shard_from_env(environ: dict | None = None) -> tuple[int, int] | None:
    """The shard of a Slurm array task: (task id - min + 1, task count), or None."""
    env = os.environ if environ is None else environ
    if "SLURM_ARRAY_TASK_ID" not in env or "SLURM_ARRAY_TASK_COUNT" not in env:
        return None
    task = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
    return task + 1, int(env["SLURM_ARRAY_TASK_COUNT"])


def in_shard(key: str, shard: tuple[int, int] | None) -> bool:
    """Whether the input named ``key`` belongs to ``shard`` (every input when None)."""
    if shard is None:
        return True
    k, n = shard
    return zlib.crc32(key.encode("utf-8")) % n == k - 1
