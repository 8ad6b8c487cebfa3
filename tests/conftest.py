"""Fixtures: a per-test directory and the common stack (sshd + nx-27017 with sample data + helpers)."""

import pytest

from support import Stack


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): per-test timeout (pytest-timeout)")


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path)
    yield s
    s.close()


@pytest.fixture(scope="module")
def shared_stack(tmp_path_factory):
    """One stack for a module's read-only tests (faster); tests must not break it."""
    s = Stack(tmp_path_factory.mktemp("shared"))
    yield s
    s.close()


@pytest.fixture(scope="module")
def mongo(shared_stack):
    """pymongo straight to the shared stack's MongoDB-wire peer, to check what the tools answer."""
    with shared_stack.mongo.client() as c:
        yield c
