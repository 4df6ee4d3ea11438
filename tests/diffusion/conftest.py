"""Shared fixtures of the diffusion tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """The meshes here are small (≤ 8k nodes, ≤ 300 modes): intra-op threads gain little, and on a busy 2-core machine
    spinning OpenMP threads slow the matrix exponentials and sparse solves down many times; run on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
