"""Splitting inputs among N batch jobs without overlap: ``--shard K/N`` or a Slurm array.

The rule depends on each input's canonical path alone (CRC-32 modulo N of
:attr:`galcnn.data.inputs.Source.key`), so jobs that list the same inputs in different orders
or spellings still take disjoint parts that together cover every input.
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
    """The shard of a Slurm array task, from its place in the array, or None outside one.

    ``--array=0-4:2`` runs tasks 0, 2, 4: shards 1/3, 2/3, 3/3, from
    ``(SLURM_ARRAY_TASK_ID - _MIN) / _STEP + 1`` of ``_COUNT``. An array whose tasks are not
    evenly spaced (``--array=1,4,9``) or a single task (a resubmitted ``--array=7``) cannot
    tell its shard: ValueError, asking for ``--shard K/N``."""
    env = os.environ if environ is None else environ
    if "SLURM_ARRAY_TASK_ID" not in env:
        return None
    try:
        task = int(env["SLURM_ARRAY_TASK_ID"])
        first = int(env.get("SLURM_ARRAY_TASK_MIN", task))
        step = int(env.get("SLURM_ARRAY_TASK_STEP", 1) or 1)
        count = int(env.get("SLURM_ARRAY_TASK_COUNT", 1))
        last = int(env.get("SLURM_ARRAY_TASK_MAX", first + (count - 1) * step))
    except ValueError:
        raise ValueError("the SLURM_ARRAY_TASK_* variables are not numbers; give the shard "
                         "with --shard K/N") from None
    if count == 1:
        raise ValueError(f"Slurm array task {task} is the only task of its array (a "
                         "resubmitted task?), so its shard is unknown; give it with --shard "
                         "K/N, K = its place in the original array, N = that array's size")
    if step < 1 or (task - first) % step or (last - first) // step + 1 != count:
        raise ValueError(f"Slurm array task {task}: the array ({first}-{last}:{step}, "
                         f"{count} tasks) is not evenly spaced, so the task's shard is "
                         "unknown; give it with --shard K/N")
    return (task - first) // step + 1, count


def in_shard(key: str, shard: tuple[int, int] | None) -> bool:
    """Whether the input named ``key`` belongs to ``shard`` (every input when None)."""
    if shard is None:
        return True
    k, n = shard
    return zlib.crc32(key.encode("utf-8")) % n == k - 1
