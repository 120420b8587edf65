"""Workflow files: ComfyUI's UI format (what the editor saves) and API format (what /prompt takes).

``to_api`` turns a UI workflow into an API prompt the way the frontend's graphToPrompt does for
the cases that matter here: widget values mapped to input names in declaration order (seed
widgets carry an extra "control after generate" value, image uploads an extra "upload"),
links resolved through Reroute nodes, bypassed nodes and Primitive nodes, notes and muted
nodes dropped.
"""
import json
import os

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SKIPPED_TYPES = {"Note", "MarkdownNote"}
MUTED, BYPASSED = 2, 4


class WorkflowError(ValueError):
    """A workflow that cannot be read or converted; the message names the node."""


MAX_FILE_BYTES = 64 * 2 ** 20
MAX_NODES = 100_000


def load(path):
    try:
        if os.path.getsize(path) > MAX_FILE_BYTES:
            raise WorkflowError(f"workflow {path} is over {MAX_FILE_BYTES // 2 ** 20} MB; that is not a workflow")
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise WorkflowError(f"cannot read workflow {path}: {e}") from None
    except RecursionError:
        raise WorkflowError(f"cannot read workflow {path}: its JSON is nested too deeply") from None


def is_ui_format(workflow):
    return isinstance(workflow, dict) and "nodes" in workflow and "links" in workflow


def is_link(value):
    """An API-format link: [source node id, output slot]."""
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int)) \
        and type(value[1]) is int


def node_label(node_id, node):
    """How messages name an API-format node: its id and title (or type)."""
    meta = node.get("_meta") if isinstance(node.get("_meta"), dict) else {}
    return f"node {node_id} ({meta.get('title') or node.get('class_type')})"


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
    links = workflow.get("links") or []
    if not isinstance(links, list):
        raise WorkflowError("the workflow's 'links' is not a list")
    for link in links:
        try:
            if isinstance(link, dict):
                link = [link["id"], link["origin_id"], link["origin_slot"], link["target_id"], link["target_slot"],
                        link.get("type")]
            if not isinstance(link, list) or len(link) < 5 or type(link[2]) is not int:
                raise TypeError
            table[link[0]] = link
        except (KeyError, TypeError):
            raise WorkflowError(f"link {str(link)[:80]} is malformed (expected [id, from node, from slot, to node, "
                                "to slot, type])") from None
    return table


def _check_nodes(workflow):
    nodes = workflow["nodes"]
    if not isinstance(nodes, list) or len(nodes) > MAX_NODES:
        raise WorkflowError(f"the workflow's 'nodes' is not a list of at most {MAX_NODES} nodes")
    for node in nodes:
        if not (isinstance(node, dict) and isinstance(node.get("type"), str) and "id" in node
                and isinstance(node.get("inputs") or [], list)
                and all(isinstance(i, dict) for i in node.get("inputs") or [])
                and isinstance(node.get("widgets_values") or [], (list, dict))):
            raise WorkflowError(f"node {str(node)[:80]} is malformed (expected id, type, inputs and widgets_values "
                                "as ComfyUI saves them)")
    return {n["id"]: n for n in nodes}


def to_api(workflow, input_types_of):
    """UI workflow -> API prompt. ``input_types_of(class_type)`` returns INPUT_TYPES or None if unknown."""
    if not is_ui_format(workflow):
        return workflow  # already API format
    nodes = _check_nodes(workflow)
    links = _links(workflow)

    def source(link_id):
        """Follow a link to (node_id, slot) of a real node, or ("value", v) for a Primitive node. A loop, not
        recursion: a chain of thousands of Reroutes is fine, and a cycle of them ends."""
        seen = set()
        while link_id is not None and isinstance(link_id, (int, str)) and link_id in links and link_id not in seen:
            seen.add(link_id)
            _, origin, slot, *_ = links[link_id]
            node = nodes.get(origin) if isinstance(origin, (int, str)) else None
            if node is None or node.get("mode") == MUTED:
                return None
            if node["type"] == "Reroute":
                link_id = ((node.get("inputs") or [{}])[0]).get("link")
            elif node["type"] == "PrimitiveNode":
                values = node.get("widgets_values") or [None]
                return ("value", values[0] if isinstance(values, list) else None)
            elif node.get("mode") == BYPASSED:  # pass through the first input of the same type
                outputs = node.get("outputs") or []
                kind = outputs[slot].get("type") if 0 <= slot < len(outputs) and isinstance(outputs[slot], dict) \
                    else None
                link_id = next((i["link"] for i in node.get("inputs") or []
                                if i.get("type") == kind and i.get("link") is not None), None)
            else:
                return (str(origin), slot)
        return None

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
        linked = {i.get("name"): i.get("link") for i in node.get("inputs") or []}
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
