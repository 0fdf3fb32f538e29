"""The workflow and the code stay lint-clean: `snakemake --lint`, snakefmt, ruff (check and format)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / cmd[0]), *cmd[1:]], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_snakemake_lint_is_clean():
    out = run("snakemake", "--lint")
    assert "Congratulations, your workflow is in a good condition!" in out.stdout + out.stderr, out.stdout[-3000:]


@pytest.mark.parametrize(
    "cmd",
    [
        ("snakefmt", "--check", "Snakefile", "workflow/rules"),
        ("ruff", "check", "."),
        ("ruff", "format", "--check", "."),
    ],
    ids=["snakefmt", "ruff-check", "ruff-format"],
)
def test_formatters_and_linters_are_clean(cmd):
    out = run(*cmd)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
