"""Rank helpers: who owns the run folder before and after the process group exists; no-ops alone."""

from __future__ import annotations

import numpy as np
import pytest

from spol.runtime.distributed import all_reduce_sum, barrier, gather_objects, is_distributed, is_global_zero

LAUNCH_VARIABLES = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("variables", "zero"),
    [
        ({}, True),
        ({"LOCAL_RANK": "0", "NODE_RANK": "0"}, True),
        ({"LOCAL_RANK": "1"}, False),  # Lightning's launcher starting local rank 1
        ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, False),  # first process of the second node
        ({"RANK": "3", "LOCAL_RANK": "0"}, False),  # torchrun: the global rank decides
        ({"SLURM_PROCID": "0"}, True),
        ({"SLURM_PROCID": "2"}, False),
    ],
)
def test_global_zero_from_the_launcher_environment(clean_env, variables, zero):
    for name, value in variables.items():
        clean_env.setenv(name, value)
    assert is_global_zero() is zero


def test_collectives_are_identities_in_a_single_process(clean_env):
    assert not is_distributed()
    barrier()
    counts = np.array([3, 0, 7], dtype=np.int64)
    np.testing.assert_array_equal(all_reduce_sum(counts), counts)
    assert gather_objects({"written": 2}) == [{"written": 2}]
