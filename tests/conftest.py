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
    parser.addoption("--runheavy", action="store_true", help="also run tests marked heavy (not run by CI)")


def pytest_collection_modifyitems(config, items):
    heavy = pytest.mark.skip(
        reason="heavy test: longer than CI's budget on 2 cores, or not yet run end to end there; run with --runheavy"
    )
    slow = pytest.mark.skip(reason="slow test: runs in CI (./dev test with CI set) or with --runslow")
    for item in items:
        if "heavy" in item.keywords and not config.getoption("--runheavy"):
            item.add_marker(heavy)
        elif {"slow", "slurm", "tfcompat"} & set(item.keywords) and not config.getoption("--runslow"):
            item.add_marker(slow)


@pytest.fixture(autouse=True)
def _restore_torch_globals():
    """Training code sets torch's thread count and deterministic mode; no test leaks them into the next."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is in the dev venv
        yield
        return
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(det)


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


def copy_repo_ignore(folder: str, names: list[str]) -> set[str]:
    """What a working copy of the repo for a workflow test leaves out: VCS, venvs, results, caches, reports."""
    skip = {".git", ".snakemake", "results", "__pycache__", ".pytest_cache", ".ruff_cache", "report.html", "report.zip"}
    return {n for n in names if n in skip or n.startswith(".venv") or n.endswith(".out")}


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, shared):
    """The shipped demo config (config/demo.yaml) run end to end once, in a copy of the repo, plus
    `snakemake --report report.zip`, both with no config argument. Only the cascade comes from ../shared.
    Shared by the slow end-to-end tests so CI runs the demo once."""
    import shutil
    import subprocess
    import sys

    import yaml

    work = tmp_path_factory.mktemp("demo") / "wf"
    shutil.copytree(REPO, work, ignore=copy_repo_ignore)
    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    # The cascade is put where fetch_cascade would (no download); the demo itself runs with NO config argument,
    # as a user's first `snakemake --cores N` does. test-config.yaml (the same demo + a local cascade_path) is
    # for tests that rerun parts of this run.
    (work / "resources").mkdir(exist_ok=True)
    shutil.copy(shared / "cascade" / "lbpcascade_animeface.xml", work / "resources" / "lbpcascade_animeface.xml")
    test_cfg = {
        **cfg,
        "crop": {**cfg.get("crop", {}), "cascade_path": str(shared / "cascade" / "lbpcascade_animeface.xml")},
    }
    (work / "test-config.yaml").write_text(yaml.safe_dump(test_cfg))
    venv_bin = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    base = [str(venv_bin / "snakemake")]
    for extra in (["--cores", "2"], ["--report", "report.zip"]):
        run = subprocess.run([*base, *extra], cwd=work, capture_output=True, text=True, env=env, timeout=2400)
        assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]
    return {"work": work, "config": cfg, "results": work / "results" / cfg["dataset"]["name"]}
