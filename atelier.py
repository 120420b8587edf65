#!/usr/bin/env python3
"""Headless entry point: run Autoencoder Atelier workflows without ComfyUI.

    python atelier.py demo                      # the README's main job
    python atelier.py run WORKFLOW.json [--set input=value ...]

The pack is a ComfyUI custom-node folder (relative imports only), so this launcher loads
it as a package under a fixed name instead of putting its folder on sys.path.
"""
import importlib.util
import os
import sys

PACKAGE = "autoencoder_atelier"
ROOT = os.path.dirname(os.path.abspath(__file__))


def load_pack():
    if PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_file_location(PACKAGE, os.path.join(ROOT, "__init__.py"),
                                                      submodule_search_locations=[ROOT])
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACKAGE] = module
        spec.loader.exec_module(module)
    return sys.modules[PACKAGE]


if __name__ == "__main__":
    try:
        load_pack()
    except ModuleNotFoundError as e:   # no torch: the pack's one-line advice, not a traceback
        if e.name != "torch":
            raise
        sys.exit(f"error: {e}")
    from autoencoder_atelier.headless.cli import main
    sys.exit(main())
