"""Command line: run workflow files without ComfyUI.

    python atelier.py demo
    python atelier.py run "workflows/Atelier - Train on a folder.json" --set folder=/path/to/art --set steps=2000
    python atelier.py widgets "workflows/Atelier - Train on a folder.json"   # what --set can change
    python atelier.py convert "workflows/Atelier - Train on a folder.json"   # UI -> API JSON
    python atelier.py make-data art ./input/my_art                       # procedural images to play with
    python atelier.py bench --quick                                      # speed figures (bench/RESULTS.md)
"""
import argparse
import difflib
import json
import logging
import math
import os
import sys
import time

from ..models import procedural
from ..nodes import bridge
from . import runner, workflow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_WORKFLOW = os.path.join(ROOT, "workflows", "Atelier - Train on a folder.json")
log = logging.getLogger("autoencoder_atelier")


def parse_value(text, spec):
    """A --set value as the widget's type: text stays text for STRING and combo widgets ('2024' is a folder
    name, not a number); numbers must be finite; nothing parses into a list, so --set never makes a link."""
    kind = spec[0]
    if kind in ("INT", "FLOAT"):
        try:
            value = int(text) if kind == "INT" and text.strip().lstrip("+-").isdigit() else float(text)
        except ValueError:
            raise workflow.WorkflowError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise workflow.WorkflowError(f"expected a finite number, got {text!r}")
        return value
    if kind == "BOOLEAN":
        if text.lower() not in ("true", "false"):
            raise workflow.WorkflowError(f"expected true or false, got {text!r}")
        return text.lower() == "true"
    if len(text) >= 2 and text[0] == text[-1] == '"':  # a quoted JSON string, as in --set 'folder="my art"'
        try:
            text = json.loads(text)
        except ValueError:
            pass
    if isinstance(kind, list):  # a combo: the option whose text matches (options may be numbers)
        return next((o for o in kind if str(o) == text), text)
    return text


def widgets_of(prompt):
    """{node_id: (label, {widget name: (spec, current value)})} of a prompt's nodes."""
    out = {}
    for node_id, node in prompt.items():
        spec = runner.input_types_of(node["class_type"]) or {}
        title = (node.get("_meta") or {}).get("title") or node["class_type"]
        out[node_id] = (f"{node_id} ({title})", {name: (s, node["inputs"].get(name))
                                                  for name, s in workflow.widget_inputs(spec)
                                                  if not runner.is_link(node["inputs"].get(name))})
    return out


def apply_overrides(prompt, overrides):
    """``input=value`` sets that widget on every node that has it; ``NODE.input=value`` on one node
    (NODE = node id, title or class type). Only widgets: a linked input cannot be overridden or made."""
    widgets = widgets_of(prompt)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise workflow.WorkflowError(f"--set {item!r}: expected input=value or NODE.input=value")
        target, _, name = key.rpartition(".")
        hits = 0
        for node_id, node in prompt.items():
            names = {node_id, node["class_type"], (node.get("_meta") or {}).get("title")}
            if target and target not in names or name not in widgets[node_id][1]:
                continue
            try:
                node["inputs"][name] = parse_value(text, widgets[node_id][1][name][0])
            except workflow.WorkflowError as e:
                raise workflow.WorkflowError(f"--set {item!r}: {e}") from None
            hits += 1
        if not hits:
            known = sorted({w for _, ws in widgets.values() for w in ws})
            close = difflib.get_close_matches(name, known, n=3)
            raise workflow.WorkflowError(f"--set {item!r}: no node has a widget input named {name!r}"
                                         + (f" (looked in {target!r})" if target else "")
                                         + (f"; did you mean {' or '.join(close)}?" if close else "")
                                         + " List them with: python atelier.py widgets WORKFLOW")
    return prompt


def load_prompt(path, overrides=()):
    prompt = workflow.to_api(workflow.load(path), runner.input_types_of)
    runner.check_prompt(prompt)
    return apply_overrides(prompt, overrides)


def print_outputs(prompt, ui):
    """What each output node made: files written, and the card of each model loaded."""
    for node_id, out in ui.items():
        for item in out.get("images", []):
            print(f"image  {item['path']}")
        for text in out.get("text", []):
            if prompt[node_id]["class_type"] == "AtelierLoadAutoencoder":
                name = prompt[node_id]["inputs"]["ae_name"]
                print(f"model card of {name}:\n" + "\n".join("  " + line for line in text.splitlines()))
            else:
                print(f"saved  {text}")


def run_prompt(prompt, args):
    print_outputs(prompt, runner.run(prompt, progress=not args.quiet))


def cmd_run(args):
    run_prompt(load_prompt(args.workflow, args.set), args)


def cmd_widgets(args):
    """Every widget --set can change, per node, with its type and current value."""
    prompt = load_prompt(args.workflow)
    for node_id, (label, ws) in widgets_of(prompt).items():
        if ws:
            print(label)
        typed = runner.validated_by_node(runner.NODES.get(prompt[node_id]["class_type"]))
        for name, (spec, value) in ws.items():
            print(f"  {name} = {json.dumps(value)}  ({describe(spec, name in typed)})")


def describe(spec, typed):
    """A widget's type for the widgets command. Folder lists (``typed``: the node checks the name itself) and image
    lists show what the input folder holds now, not all a --set may name."""
    kind, opts = spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
    if not isinstance(kind, list):
        return kind
    listed = ", ".join(map(str, kind[:8])) + (" ..." if len(kind) > 8 else "") or "none yet"
    if typed or opts.get("image_upload"):
        return f"a name in the input folder{' or a full path' if typed else ''}; there now: {listed}"
    return f"choice of {listed}"


def cmd_convert(args):
    json.dump(load_prompt(args.workflow, args.set), sys.stdout, indent=2)
    print()


def cmd_make_data(args):
    if args.from_npz:  # e.g. MNIST as uint8 [N,28,28] under the key "data"
        import numpy as np
        from PIL import Image
        data = np.load(args.from_npz)["data"][:args.count]
        os.makedirs(args.folder, exist_ok=True)
        for i, a in enumerate(data):
            Image.fromarray(a).save(os.path.join(args.folder, f"digit_{i:05d}.png"))
        args.count = len(data)
    elif args.kind == "art":
        procedural.write_folder(args.folder, count=args.count, size=args.size or 128, seed=args.seed)
    else:
        procedural.write_digits(args.folder, count=args.count, size=args.size or 28, seed=args.seed)
    print(f"wrote {args.count} images to {os.path.abspath(args.folder)}")


def cmd_demo(args):
    art = os.path.join(bridge.input_dir(), "atelier_demo_art")
    procedural.write_folder(art, count=48, size=128, seed=0)
    log.info("wrote 48 procedural artworks to %s", art)
    t = time.perf_counter()
    run_prompt(load_prompt(DEMO_WORKFLOW, [f"folder={art}"] + list(args.set)), args)
    print(f"demo finished in {time.perf_counter() - t:.0f}s; outputs in {bridge.output_dir()}")


def cmd_bench(args):
    # bench/ sits beside the pack's code in a clone and is not imported by ComfyUI; its scripts import
    # each other by plain name, as when run as `python bench/suite.py`.
    folder = os.path.join(ROOT, "bench")
    if not os.path.isfile(os.path.join(folder, "suite.py")):
        raise ValueError(f"no benchmarks in {folder}; they come with a clone of the repository")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    import suite
    return suite.main(args.bench_args)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="atelier.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", help="model folder (default $ATELIER_MODELS_DIR or ./autoencoders)")
    ap.add_argument("--output-dir", help="output folder (default $ATELIER_OUTPUT_DIR or ./output)")
    ap.add_argument("--input-dir", help="input folder (default $ATELIER_INPUT_DIR or ./input)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bars or step logs")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run a workflow file (UI or API format)")
    p.add_argument("workflow")
    p.add_argument("--set", action="append", default=[], metavar="[NODE.]INPUT=VALUE",
                   help="override a widget value (repeatable); NODE is a node id, title or type")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("widgets", help="list the widgets of a workflow that --set can change")
    p.add_argument("workflow")
    p.set_defaults(func=cmd_widgets)
    p = sub.add_parser("convert", help="print a workflow in API format (for ComfyUI's /prompt)")
    p.add_argument("workflow")
    p.add_argument("--set", action="append", default=[], metavar="[NODE.]INPUT=VALUE")
    p.set_defaults(func=cmd_convert)
    p = sub.add_parser("demo", help="train on a generated art set and write a reconstruction grid, a latent "
                       "walk strip, a loss curve and the model")
    p.add_argument("--set", action="append", default=[], metavar="[NODE.]INPUT=VALUE")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("make-data", help="write a procedural image set (no download needed)")
    p.add_argument("kind", choices=["art", "digits"])
    p.add_argument("folder")
    p.add_argument("--count", type=int, default=48)
    p.add_argument("--size", type=int, default=None, help="image side (default 128 for art, 28 for digits)")
    p.add_argument("--from-npz", help="digits: write the images of this .npz (key 'data', uint8 [N,H,W]) instead")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_make_data)
    p = sub.add_parser("bench", help="speed benchmarks against same-run baselines (options: python atelier.py "
                       "bench --help)", add_help=False)
    p.set_defaults(func=cmd_bench)
    args, rest = ap.parse_known_args(argv)
    if args.command != "bench" and rest:
        ap.error(f"unrecognized arguments: {' '.join(rest)}")
    args.bench_args = rest
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    bridge.configure(args.models_dir, args.output_dir, args.input_dir)
    try:
        code = args.func(args)
    except (workflow.WorkflowError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was saved by the node that was running", file=sys.stderr)
        return 130
    return code or 0
