"""Load the pack for bench scripts (the repo root is a ComfyUI custom-node folder, not on sys.path)."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data")
sys.path.insert(0, ROOT)
import atelier  # noqa: E402

pack = atelier.load_pack()
