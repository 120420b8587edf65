"""The pack's own error type: an input, setting or file it cannot use.

Its message says what was wrong and what to do. Nodes show it to the artist, prefixed with the node's
name (nodes/base.py); any other exception is a bug and reaches ComfyUI unchanged, traceback included.
"""


class AtelierError(ValueError):
    """Something the artist can fix; subclasses say which part of the pack refused it."""
