"""Cancel for long work inside models/: nodes/bridge.py installs ComfyUI's check, and every loop that can
run for more than a fraction of a second calls ``check()`` between pieces of work (training set-up and
steps, latent statistics, tiles of a big encode/decode, walks). models/ itself never imports ComfyUI.

A new long phase (the latent prior's training, for example) calls ``check()`` once per iteration or
batch; the exception it raises is ComfyUI's own, so it must not be caught on the way out.
"""
_hook = None


def install(check_fn):
    """Make ``check()`` call ``check_fn`` (which raises when the user pressed Cancel)."""
    global _hook
    _hook = check_fn


def check():
    if _hook is not None:
        _hook()
