"""Shared fixtures for the Autoencoder Atelier test suite.

The pack is a ComfyUI custom-node folder that only uses relative imports, so it is loaded
as the package ``autoencoder_atelier`` through ``atelier.load_pack()`` (the headless
launcher does the same); tests import ``autoencoder_atelier.models...`` and
``autoencoder_atelier.nodes``.
"""
import os
import sys
import tempfile
from types import SimpleNamespace

import numpy as np
import pytest
import torch

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
# bench/ too: tests score with the bench's own measures (swd, seams) and check its suite, not copies of them.
for _p in (ROOT, TESTS, os.path.join(ROOT, "bench")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

# Hypothesis: no example database and no cache folder in the repository. "atelier" is the CI budget
# (tests/test_fuzz.py in well under a minute) and derandomized, so the README's test command gives
# the same result on every run and clone; "atelier-long" searches afresh each run (a fuzzing session):
#   python -m pytest -q tests/test_fuzz.py --hypothesis-profile=atelier-long --hypothesis-show-statistics
# Tests with their own max_examples keep it under both. Add what a long run finds as a test.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "atelier-tests-hypothesis"))
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("atelier", database=None, deadline=None, max_examples=25, derandomize=True)
_hypothesis_settings.register_profile("atelier-long", _hypothesis_settings.get_profile("atelier"), max_examples=1500,
                                      derandomize=False)
_hypothesis_settings.load_profile("atelier")

# Tests measure bf16 in their own process; the per-machine record (models/precision.py) is tested on its own.
os.environ["ATELIER_PRECISION_CACHE"] = "off"

import atelier  # noqa: E402

atelier.load_pack()

from autoencoder_atelier.nodes import bridge  # noqa: E402
from helpers import SHARED, procedural, shared_path  # noqa: E402,F401

# The models are tiny: one thread is as fast as two and does not thrash when another
# CPU-heavy process (a benchmark, a parallel CI job) shares the machine.
torch.set_num_threads(1)


@pytest.fixture
def art():
    """Factory for procedural IMAGE batches: ``art(n, size, seed)`` -> fresh [n,size,size,3] float32."""
    return procedural


@pytest.fixture
def images():
    """8 procedural 32x32 artworks as a ComfyUI IMAGE batch."""
    return procedural(8, 32)


@pytest.fixture
def shared():
    """The shared data folder; skips the test when this checkout has no ../shared."""
    return shared_path()


@pytest.fixture
def tmp_dirs(tmp_path):
    """Point the headless models/output/input folders at tmp_path; restore them afterwards."""
    dirs = SimpleNamespace(models=tmp_path / "models", output=tmp_path / "output", input=tmp_path / "input")
    for d in (dirs.models, dirs.output, dirs.input):
        d.mkdir()
    with bridge.folders(models_dir=dirs.models, output_dir=dirs.output, input_dir=dirs.input):
        yield dirs


@pytest.fixture(autouse=True)
def _seeded():
    """Tests that use the global RNG get the same numbers on every run."""
    torch.manual_seed(1234)
    np.random.seed(1234)
