"""The headless runner against hostile or clumsy input: --set typing and names, link values, huge and
deeply nested graphs, malformed prompts. Every case is a WorkflowError naming what to fix."""
import json
import os

import pytest

from autoencoder_atelier.headless import cli, runner, workflow
from autoencoder_atelier.headless.workflow import WorkflowError

from helpers import ROOT, refusal

TRAIN = os.path.join(ROOT, "workflows", "Atelier - Train on a folder.json")


def prompt():
    return cli.load_prompt(TRAIN)


def inputs_with(name, p):
    return [n["inputs"][name] for n in p.values() if name in n["inputs"]]


def test_string_widgets_stay_strings():
    p = cli.apply_overrides(prompt(), ["folder=2024", "filename_prefix=2024", "steps=7"])
    assert set(inputs_with("folder", p)) == {"2024"} and set(inputs_with("filename_prefix", p)) == {"2024"}
    assert inputs_with("steps", p) == [7] and type(inputs_with("steps", p)[0]) is int
    p = cli.apply_overrides(prompt(), ['folder="my art"'])  # a quoted JSON string still works
    assert set(inputs_with("folder", p)) == {"my art"}


@pytest.mark.parametrize("item,fragment", [("steps=nan", "finite"), ("learning_rate=inf", "finite"),
                                           ("learning_rate=-Infinity", "finite"), ("steps=[1, 0]", "number"),
                                           ('steps={"a": 1}', "number"), ("steps=ten", "number")])
def test_non_finite_and_list_values_are_refused(item, fragment):
    with pytest.raises(WorkflowError, match=f"--set '{item[:5]}.*{fragment}"):
        cli.apply_overrides(prompt(), [item])


def test_set_cannot_make_or_replace_a_link():
    p = prompt()
    linked = next((nid, name) for nid, n in p.items() for name, v in n["inputs"].items() if runner.is_link(v))
    before = json.dumps(p, sort_keys=True)
    with pytest.raises(WorkflowError, match="no node has a widget input named"):
        cli.apply_overrides(p, [f"{linked[0]}.{linked[1]}=[\"1\", 0]"])
    assert json.dumps(p, sort_keys=True) == before
    p = cli.apply_overrides(prompt(), ['folder=["1", 0]'])  # text, not a link
    assert set(inputs_with("folder", p)) == {'["1", 0]'}


def test_a_misspelled_widget_gets_the_nearest_name():
    with pytest.raises(WorkflowError, match="did you mean steps\\?.*python atelier.py widgets"):
        cli.apply_overrides(prompt(), ["stepz=3"])


def test_the_widgets_command_lists_what_set_can_change(capsys):
    assert cli.main(["widgets", TRAIN]) == 0
    out = capsys.readouterr().out
    assert "  steps = " in out and "(INT)" in out and "  folder = " in out and "(STRING)" in out
    # the folder default is not among the folders there now: the listing says a name or path may be typed
    assert '  folder = "my_artworks"  (a name in the input folder or a full path; there now: ' in out


def test_list_and_nan_widget_values_in_a_prompt_are_refused():
    p = prompt()
    node_id = next(i for i, n in p.items() if "steps" in n["inputs"])
    for bad, fragment in (([1, 2, 3], "single value"), (float("nan"), "finite"), ({"x": 1}, "single value")):
        q = json.loads(json.dumps(p))
        q[node_id]["inputs"]["steps"] = bad
        with pytest.raises(WorkflowError, match=fragment):
            runner.plan(q)
    q = json.loads(json.dumps(p))
    q[node_id]["inputs"]["learning_rate"] = float("nan")
    with pytest.raises(WorkflowError, match="learning_rate must be a finite number"):
        runner.plan(q)


def test_a_link_to_an_output_that_does_not_exist():
    p = prompt()
    node_id, name = next((nid, name) for nid, n in p.items() for name, v in n["inputs"].items() if runner.is_link(v))
    p[node_id]["inputs"][name] = [p[node_id]["inputs"][name][0], 7]
    with pytest.raises(WorkflowError, match="links to output 7 of"):
        runner.plan(p)


MALFORMED = {"not a map": [1, 2], "empty": {}, "node not a map": {"1": 5}, "no class": {"1": {"inputs": {}}},
             "inputs a list": {"1": {"class_type": "SaveImage", "inputs": [1]}},
             "class not text": {"1": {"class_type": ["x"], "inputs": {}}}}


@pytest.mark.parametrize("bad", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_prompts_are_clear_errors(bad):
    with pytest.raises(WorkflowError):
        runner.run(bad, progress=False)


def _chain(n, kind):
    """A UI workflow: New Autoencoder -> n Reroutes -> Save Autoencoder."""
    nodes = [{"id": 1, "type": "AtelierNewAutoencoder", "widgets_values": ["conv", 4, "4", 8, 64, 0, "fixed"],
              "outputs": [{"type": "AUTOENCODER"}]}]
    links = []
    for i in range(n):
        nodes.append({"id": 2 + i, "type": kind, "inputs": [{"name": "", "type": "*", "link": i + 1}]})
        links.append([i + 1, 1 + i, 0, 2 + i, 0, "*"])
    nodes.append({"id": n + 2, "type": "AtelierSaveAutoencoder", "widgets_values": ["chain"],
                  "inputs": [{"name": "autoencoder", "type": "AUTOENCODER", "link": n + 1}]})
    links.append([n + 1, n + 1, 0, n + 2, 0, "AUTOENCODER"])
    return {"nodes": nodes, "links": links}


def test_thousands_of_reroutes_convert_without_recursion():
    p = workflow.to_api(_chain(5000, "Reroute"), runner.input_types_of)
    assert p[str(5002)]["inputs"]["autoencoder"] == ["1", 0]
    assert runner.plan(p) == ["1", "5002"]


def test_a_cycle_of_reroutes_ends():
    wf = _chain(3, "Reroute")
    wf["links"][0] = [1, 4, 0, 2, 0, "*"]  # the first reroute fed by the last one
    p = workflow.to_api(wf, runner.input_types_of)
    assert "autoencoder" not in p["5"]["inputs"]


def test_a_long_chain_of_real_nodes_plans_without_recursion():
    p = {"0": {"class_type": "AtelierLoadImageFolder", "inputs": {"folder": "x", "size": 8, "mode": "resize",
                                                                  "count": 1}}}
    for i in range(1, 3000):
        p[str(i)] = {"class_type": "AtelierImageGrid", "inputs": {"images": [str(i - 1), 0], "columns": 0,
                                                                  "padding": 0}}
    p["9999"] = {"class_type": "PreviewImage", "inputs": {"images": ["2999", 0]}}
    order = runner.plan(p)
    assert order[0] == "0" and order[-1] == "9999" and len(order) == 3001


def test_deeply_nested_json_is_a_clear_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(WorkflowError, match="nested too deeply|cannot read workflow"):
        workflow.load(str(path))
    assert cli.main(["run", str(path)]) == 2


@pytest.mark.parametrize("wf", [{"nodes": "x", "links": []}, {"nodes": [5], "links": []},
                                {"nodes": [{"id": 1}], "links": []},
                                {"nodes": [{"id": 1, "type": "AtelierSaveAutoencoder", "inputs": 5}], "links": []},
                                {"nodes": [], "links": [[1, 2]]}, {"nodes": [], "links": 7}])
def test_malformed_ui_workflows_are_clear_errors(wf):
    with pytest.raises(WorkflowError, match="malformed|not a list"):
        workflow.to_api(wf, runner.input_types_of)


def test_nan_and_infinite_float_inputs_are_refused_at_every_node():
    """ComfyUI's range check lets NaN through and JSON prompts can carry it: each node refuses it itself."""
    from autoencoder_atelier.nodes import NODE_CLASS_MAPPINGS
    checked = 0
    for node_id, cls in NODE_CLASS_MAPPINGS.items():
        spec = cls.INPUT_TYPES()
        for part in ("required", "optional"):
            for name, s in (spec.get(part) or {}).items():
                if s[0] != "FLOAT":
                    continue
                for bad in (float("nan"), float("inf"), float("-inf")):
                    with pytest.raises(ValueError, match=refusal(node_id, f"{name} must be a finite number")):
                        getattr(cls(), cls.FUNCTION)(**{name: bad})
                checked += 1
    assert checked >= 10
