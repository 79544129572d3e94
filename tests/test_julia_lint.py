"""Every .jl file of the Julia engine is lint-clean and formatted (fatou), so that code nobody can run
here is at least parsed and checked here."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

JULIA = Path(__file__).resolve().parents[1] / "julia"
FATOU = shutil.which("fatou")
needs_fatou = pytest.mark.skipif(FATOU is None, reason="fatou is not installed (pip install fatou)")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [FATOU, "--no-config", "--color", "never", *args], capture_output=True, text=True, check=False, timeout=120
    )


@needs_fatou
def test_fatou_lint_reports_nothing():
    out = run("lint", str(JULIA))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "clean" in out.stdout + out.stderr, out.stdout + out.stderr


@needs_fatou
def test_fatou_format_check_passes():
    out = run("format", "--check", str(JULIA))
    assert out.returncode == 0, "run `fatou format julia/`:\n" + out.stdout + out.stderr


@needs_fatou
def test_the_linter_does_catch_a_broken_file(tmp_path):
    """Guards the two tests above against a linter that passes everything."""
    bad = tmp_path / "bad.jl"
    bad.write_text("function f(x)\n    return x +\n")
    assert run("lint", str(bad)).returncode != 0
