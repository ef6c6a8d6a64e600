"""Splitting inputs among batch jobs."""

import pytest

from galcnn.data.shards import in_shard, parse_shard, shard_from_env


def test_shard_rule_is_disjoint_complete_and_balanced():
    keys = [f"dir/file{i}.fits" for i in range(1000)]
    counts = [sum(in_shard(key, (k, 4)) for key in keys) for k in range(1, 5)]
    assert sum(counts) == 1000 and min(counts) > 200
    assert all(in_shard(key, None) for key in keys)


def test_parse_shard_and_slurm_variables():
    assert parse_shard("3/10") == (3, 10)
    for bad in ("0/3", "4/3", "x"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)
    env = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "8", "SLURM_ARRAY_TASK_MIN": "0"}
    assert shard_from_env(env) == (6, 8)
    assert shard_from_env({}) is None


def test_a_stepped_slurm_array_covers_every_shard_once():
    def task(i, first=0, last=4, step=2, count=3):
        return shard_from_env({"SLURM_ARRAY_TASK_ID": str(i), "SLURM_ARRAY_TASK_MIN": str(first),
                               "SLURM_ARRAY_TASK_MAX": str(last),
                               "SLURM_ARRAY_TASK_STEP": str(step),
                               "SLURM_ARRAY_TASK_COUNT": str(count)})

    assert [task(i) for i in (0, 2, 4)] == [(1, 3), (2, 3), (3, 3)]  # --array=0-4:2
    assert [task(i, 1, 3, 1, 3) for i in (1, 2, 3)] == [(1, 3), (2, 3), (3, 3)]
    with pytest.raises(ValueError, match="only task of its array.*--shard"):
        task(1, 1, 1, 1, 1)  # a resubmitted --array=1
    with pytest.raises(ValueError, match="not evenly spaced.*--shard"):
        task(4, 1, 9, 1, 3)  # --array=1,4,9
