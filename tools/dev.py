#!/usr/bin/env python3
"""Developer bootstrap: the README's two commands, on a fresh clone with nothing but Python 3.10+.

    python tools/dev.py demo [options]      # python atelier.py demo, inside the project's .venv
    python tools/dev.py test [pytest args]  # python -m pytest -q tests (or the args given), inside .venv

The first call makes ./.venv and installs requirements-dev.txt into it, plus a CPU build of torch
(PyTorch's CPU-only index where it answers, else the pinned release from the default index, whose
Linux wheel pulls gigabytes of CUDA). Later calls reuse it, and reinstall only when a requirements
file changed. It never touches another environment (ComfyUI's included): for a CUDA torch, install
one into .venv yourself (README). This file is a developer tool and is left out of the published
pack: the pack's own code never installs anything.
"""
import hashlib
import os
import subprocess
import sys
import tempfile
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".venv")
TORCH = "2.13.0"                       # the release the pack is tested with; any torch >= 2.1 works
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
REQUIREMENTS = ("requirements.txt", "requirements-dev.txt")
STAMP = os.path.join(VENV, "atelier-dev.stamp")   # hash of the requirements last installed


def venv_python():
    sub = ("Scripts", "python.exe") if os.name == "nt" else ("bin", "python")
    return os.path.join(VENV, *sub)


def say(msg):
    print(f"[dev] {msg}", file=sys.stderr, flush=True)


def pip(*args):
    subprocess.check_call([venv_python(), "-m", "pip", "install", "--disable-pip-version-check", *args])


def requirements_hash():
    h = hashlib.sha256()
    for name in REQUIREMENTS:
        with open(os.path.join(ROOT, name), "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def has_torch():   # find_spec, not import: a tenth of the time, on every call
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)"
    return subprocess.call([venv_python(), "-c", probe]) == 0


def reachable(url, seconds=5):
    try:
        urllib.request.urlopen(url, timeout=seconds).close()
        return True
    except OSError:
        return False


def install_torch():
    if reachable(CPU_INDEX + "/torch/"):
        say(f"installing torch {TORCH} (CPU build) from {CPU_INDEX}")
        try:
            return pip("--timeout", "30", "--index-url", CPU_INDEX, f"torch=={TORCH}")
        except subprocess.CalledProcessError:
            say("the CPU index failed; trying the default index")
    say(f"installing torch=={TORCH} from the default package index")
    pip(f"torch=={TORCH}")


def ensure_venv():
    """Make .venv and install what it lacks; returns its Python."""
    if not os.path.exists(venv_python()):
        say(f"creating {VENV} (first run only)")
        try:
            subprocess.check_call([sys.executable, "-m", "venv", VENV])
        except subprocess.CalledProcessError:
            sys.exit("[dev] could not create .venv; on Debian/Ubuntu install the venv module first "
                     "(apt-get install python3-venv), then run this again")
    wanted = requirements_hash()
    current = open(STAMP).read() if os.path.exists(STAMP) else None
    if current == wanted and has_torch():
        return venv_python()
    if not has_torch():
        install_torch()
    # Pin the torch that is there (CPU or a CUDA build the developer put in) so nothing swaps it. Its version from
    # the package metadata: importing torch before numpy is in warns "Failed to initialize NumPy".
    probe = "import importlib.metadata as m; print(m.version('torch'))"
    version = subprocess.check_output([venv_python(), "-c", probe], text=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(f"torch=={version.strip()}\n")
    try:
        say("installing requirements-dev.txt")
        pip("-c", f.name, "-r", os.path.join(ROOT, "requirements-dev.txt"))
    finally:
        os.unlink(f.name)
    with open(STAMP, "w") as f:
        f.write(wanted)
    return venv_python()


def main(argv):
    if not argv or argv[0] not in ("demo", "test"):
        sys.exit(__doc__)
    if sys.version_info < (3, 10):
        sys.exit(f"[dev] Python 3.10 or newer is needed; this is {sys.version.split()[0]}")
    python = ensure_venv()
    if argv[0] == "demo":
        return subprocess.call([python, os.path.join(ROOT, "atelier.py"), "demo", *argv[1:]])
    # From the repository root, where pytest finds its settings and tests/.
    code = subprocess.call([python, "-m", "pytest", "-q", *(argv[1:] or ["tests"])], cwd=ROOT)
    if code == 5:   # pytest collected no test, which must not look like a pass
        say("no tests ran")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
