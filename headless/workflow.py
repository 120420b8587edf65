"""Workflow files: ComfyUI's UI format (what the editor saves) and API format (what /prompt takes).

``to_api`` turns a UI workflow into an API prompt the way the frontend's graphToPrompt does for
the cases that matter here: widget values mapped to input names in declaration order (seed
widgets carry an extra "control after generate" value, image uploads an extra "upload"),
links resolved through Reroute nodes, bypassed nodes and Primitive nodes, notes and muted
nodes dropped.
"""
import json

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SKIPPED_TYPES = {"Note", "MarkdownNote"}
MUTED, BYPASSED = 2, 4


class WorkflowError(ValueError):
    """A workflow that cannot be read or converted; the message names the node."""


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise WorkflowError(f"cannot read workflow {path}: {e}") from None


def is_ui_format(workflow):
    return isinstance(workflow, dict) and "nodes" in workflow and "links" in workflow


def is_widget(spec):
    kind = spec[0]
    return isinstance(kind, list) or kind in WIDGET_TYPES


def widget_inputs(input_types):
    """[(name, spec)] of widget inputs in the order the frontend lays them out."""
    out = []
    for section in ("required", "optional"):
        for name, spec in (input_types.get(section) or {}).items():
            spec = spec if isinstance(spec, (list, tuple)) else [spec]
            if is_widget(spec):
                out.append((name, spec))
    return out


SEED_NAMES = ("seed", "noise_seed")


def has_control_widget(name, spec):
    """Whether the frontend adds a "control after generate" value after this widget: when asked to,
    and for every INT named seed/noise_seed."""
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return bool(opts.get("control_after_generate")) or (spec[0] == "INT" and name in SEED_NAMES)


def extra_values(name, spec):
    """Hidden companion values the frontend stores after some widgets."""
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return int(has_control_widget(name, spec)) + int(bool(opts.get("image_upload")))


def _links(workflow):
    table = {}
    for link in workflow.get("links") or []:
        if isinstance(link, dict):
            link = [link["id"], link["origin_id"], link["origin_slot"], link["target_id"], link["target_slot"],
                    link.get("type")]
        table[link[0]] = link
    return table


def to_api(workflow, input_types_of):
    """UI workflow -> API prompt. ``input_types_of(class_type)`` returns INPUT_TYPES or None if unknown."""
    if not is_ui_format(workflow):
        return workflow  # already API format
    nodes = {n["id"]: n for n in workflow["nodes"]}
    links = _links(workflow)

    def source(link_id, seen=()):
        """Follow a link to (node_id, slot) of a real node, or ("value", v) for a Primitive node."""
        if link_id is None or link_id not in links:
            return None
        _, origin, slot, *_ = links[link_id]
        node = nodes.get(origin)
        if node is None or link_id in seen:
            return None
        seen = seen + (link_id,)
        if node["type"] == "Reroute":
            return source(node["inputs"][0].get("link"), seen)
        if node["type"] == "PrimitiveNode":
            return ("value", (node.get("widgets_values") or [None])[0])
        if node.get("mode") == MUTED:
            return None
        if node.get("mode") == BYPASSED:  # pass through the first input of the same type
            kind = (node.get("outputs") or [{}] * (slot + 1))[slot].get("type")
            for inp in node.get("inputs") or []:
                if inp.get("type") == kind and inp.get("link") is not None:
                    return source(inp["link"], seen)
            return None
        return (str(origin), slot)

    prompt = {}
    for node in workflow["nodes"]:
        kind = node["type"]
        if kind in SKIPPED_TYPES or kind in ("Reroute", "PrimitiveNode") or node.get("mode") in (MUTED, BYPASSED):
            continue
        spec = input_types_of(kind)
        if spec is None:
            raise WorkflowError(f"node {node['id']} ({node.get('title') or kind}): unknown node type {kind!r}; "
                                "install the node pack that provides it")
        inputs = {}
        linked = {i["name"]: i.get("link") for i in node.get("inputs") or []}
        values = node.get("widgets_values") or []
        if isinstance(values, dict):
            inputs.update({k: v for k, v in values.items() if k in dict(widget_inputs(spec))})
        else:
            pos = 0
            for name, wspec in widget_inputs(spec):
                if pos < len(values):
                    inputs[name] = values[pos]
                pos += 1 + extra_values(name, wspec)
        for name, link in linked.items():
            if link is None:
                continue
            src = source(link)
            if src is None:
                inputs.pop(name, None)
            elif src[0] == "value":
                inputs[name] = src[1]
            else:
                inputs[name] = [src[0], src[1]]
        prompt[str(node["id"])] = {"class_type": kind, "inputs": inputs,
                                   "_meta": {"title": node.get("title") or kind}}
    return prompt
