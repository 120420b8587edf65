#!/usr/bin/env python3
"""Writes web/docs/<NodeId>.md, the help page newer ComfyUI frontends show for a node (node library and the
node's "?" button; served from the pack's WEB_DIRECTORY), from each node's DESCRIPTION and tooltips, so the
pages always say what the nodes say:
    python tools/build_node_docs.py          # rewrite web/docs/*.md
    python tools/build_node_docs.py --check  # exit 1 if a page is out of date (used by the tests)
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import atelier  # noqa: E402

atelier.load_pack()
from autoencoder_atelier.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402
from generated import sync  # noqa: E402  (tools/, the folder this script runs from)

DOCS = os.path.join(ROOT, "web", "docs")


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def _kind(spec):
    return "choice" if isinstance(spec[0], list) else spec[0]


def page(node_id):
    cls = NODE_CLASS_MAPPINGS[node_id]
    lines = [f"# {NODE_DISPLAY_NAME_MAPPINGS[node_id]}", "", cls.DESCRIPTION, "", "## Inputs", "",
             "| Name | Type | Description |", "| --- | --- | --- |"]
    spec = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, s in spec.get(section, {}).items():
            options = s[1] if len(s) > 1 else {}
            note = options.get("tooltip", "")
            if section == "optional":
                note = f"(optional) {note}"
            lines.append(f"| `{name}` | {_cell(_kind(s))} | {_cell(note)} |")
    names = getattr(cls, "RETURN_NAMES", None) or [t.lower() for t in cls.RETURN_TYPES]
    if cls.RETURN_TYPES:
        lines += ["", "## Outputs", "", "| Name | Type | Description |", "| --- | --- | --- |"]
        for name, kind, tip in zip(names, cls.RETURN_TYPES, getattr(cls, "OUTPUT_TOOLTIPS", ())):
            lines.append(f"| `{name}` | {_cell(kind)} | {_cell(tip)} |")
    lines += ["", "Autoencoder Atelier: see the pack's README for examples and workflows.", ""]
    return "\n".join(lines)


def main():
    check = "--check" in sys.argv
    os.makedirs(DOCS, exist_ok=True)
    wanted = {f"{node_id}.md": page(node_id) for node_id in NODE_CLASS_MAPPINGS}
    extra = [n for n in sorted(os.listdir(DOCS)) if n.endswith(".md") and n not in wanted]
    stale = sync({os.path.join(DOCS, name): text for name, text in wanted.items()}, check,
                 "tools/build_node_docs.py")
    if check:
        if extra:
            print("pages of no node (run python tools/build_node_docs.py):", *extra, sep="\n  ")
        return 1 if stale or extra else 0
    for name in extra:
        os.remove(os.path.join(DOCS, name))
    print("\n".join(stale + extra) if stale or extra else "node docs up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
