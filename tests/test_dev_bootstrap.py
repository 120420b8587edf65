"""The developer bootstrap (tools/dev.py) and what a Python without torch is told."""
import importlib.util
import os
import subprocess
import sys

from helpers import ROOT

spec = importlib.util.spec_from_file_location("dev", os.path.join(ROOT, "tools", "dev.py"))
dev = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dev)


def test_without_torch_the_launcher_says_in_one_line_how_to_install_it():
    hide_torch = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = ['atelier.py', 'demo']; "
                  f"runpy.run_path({os.path.join(ROOT, 'atelier.py')!r}, run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", hide_torch], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert "needs PyTorch" in line and "tools/dev.py demo" in line and "pip install torch" in line


def test_the_test_command_fails_when_no_test_ran(monkeypatch):
    monkeypatch.setattr(dev, "ensure_venv", lambda: sys.executable)
    assert dev.main(["test", "-k", "no_test_has_this_name", "tests/test_config.py"]) == 5


def test_ci_runs_the_readme_test_command():
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        assert "tools/dev.py test" in f.read()
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    assert "python tools/dev.py demo" in readme and "python tools/dev.py test" in readme
