"""The lint configuration in pyproject.toml ([tool.ruff]) holds for the whole tree."""
import shutil
import subprocess
import sys

from helpers import ROOT


def test_ruff_passes():
    # ruff is in requirements-dev.txt: its absence is a broken setup, not a reason to skip.
    ruff = shutil.which("ruff") or [sys.executable, "-m", "ruff"]
    cmd = ([ruff] if isinstance(ruff, str) else ruff) + ["check", "--no-cache", "."]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
