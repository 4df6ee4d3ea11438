"""Shared fixtures of the BMapEst tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors gain nothing from intra-op threads, and on a busy 2-core machine OpenMP's spinning threads
    slow these tests down by up to 100×; run them on one thread and restore the setting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
