"""Shared fixtures: an isolated cache per test session, no network, small data."""

import os
import socket
import tempfile

import pytest
import torch

os.environ.setdefault("HELPERS_CACHE", tempfile.mkdtemp(prefix="helpers-test-cache-"))
os.environ.setdefault("HELPERS_PROFILE", "smoke")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

_connect = socket.socket.connect


def _loopback_only(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and not (host.startswith("127.") or host in ("localhost", "::1")
                                      or self.family == socket.AF_UNIX):
        raise OSError(f"tests must not touch the network (tried {address})")
    return _connect(self, address)


socket.socket.connect = _loopback_only


@pytest.fixture(scope="session")
def mnist():
    from helpers import data

    return data.mnist5k()


@pytest.fixture
def small_set(mnist):
    from helpers import data

    return data.per_class(mnist, 12, seed=0)
