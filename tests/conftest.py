"""Shared fixtures: the third-party test data in ../shared/data (never committed), slow-test switch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    return Path(os.environ.get("ANIMEFACES_SHARED", REPO.parent / "shared" / "data"))


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow/slurm/tfcompat")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow test: runs in CI (./dev test with CI set) or with --runslow")
    for item in items:
        if {"slow", "slurm", "tfcompat"} & set(item.keywords):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared() -> Path:
    """``../shared/data`` (or $ANIMEFACES_SHARED); tests that need it skip only if it is genuinely absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"third-party test data not found at {path} (set ANIMEFACES_SHARED to its location)")
    return path


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
