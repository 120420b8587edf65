"""The shipped workflows in a real ComfyUI server (skipped unless COMFYUI_DIR is set).

    COMFYUI_DIR=/path/to/ComfyUI python -m pytest tests/integration -q

The server runs as a subprocess with --cpu; the pack is loaded through an
--extra-model-paths-config file (custom_nodes: key) from a temporary custom_nodes folder
that links to this checkout, and every folder it writes to is temporary. Python for the
server: $COMFYUI_PYTHON, else $COMFYUI_DIR/venv/bin/python, else this interpreter.

The browser tests drive ComfyUI's real frontend in Debian's chromium through Playwright.
    ATELIER_FRONTEND_ROOT=/path/to/comfyui_frontend_package/static   serve another frontend build
                                                                     (e.g. the newest from PyPI)
    ATELIER_SCREENSHOTS=docs/screenshots   keep the graph screenshots there (else a temp folder)
    ATELIER_SERVER_GPU=1                   start the server on its GPU (no --cpu): tools/gpu_check.sh

tests/integration/fake_card is loaded beside the pack: another "model" holding a large tensor through
ComfyUI's model management, and a simulated card size, to watch our nodes ask ComfyUI for room.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import quote
import zlib

import pytest
from PIL import Image

from autoencoder_atelier.headless import cli, workflow
from autoencoder_atelier.models import procedural
from autoencoder_atelier.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
import test_packaging

COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
FRONTEND_ROOT = os.environ.get("ATELIER_FRONTEND_ROOT")
SCREENSHOTS = os.environ.get("ATELIER_SCREENSHOTS")
ON_GPU = os.environ.get("ATELIER_SERVER_GPU") == "1"
START_S = int(os.environ.get("ATELIER_SERVER_START_S", "300"))   # a busy shared machine takes minutes to start it
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACK = "autoencoder-atelier"
WORKFLOWS = sorted(f[:-5] for f in os.listdir(os.path.join(ROOT, "workflows")) if f.endswith(".json"))

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not COMFYUI_DIR, reason="set COMFYUI_DIR to a ComfyUI checkout to run")]


def _python():
    for candidate in (os.environ.get("COMFYUI_PYTHON"), os.path.join(COMFYUI_DIR or "", "venv", "bin", "python")):
        if candidate and os.path.exists(candidate):
            return candidate
    return sys.executable


class Server:
    def __init__(self, base):
        self.base = base
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.dirs = {k: os.path.join(base, k) for k in ("custom_nodes", "models", "input", "output", "temp", "user")}
        for d in self.dirs.values():
            os.makedirs(d, exist_ok=True)
        os.symlink(ROOT, os.path.join(self.dirs["custom_nodes"], PACK))
        os.symlink(os.path.join(ROOT, "tests", "integration", "fake_card"),
                   os.path.join(self.dirs["custom_nodes"], "atelier_fake_card"))
        self.registered = os.path.join(base, "registered_art")   # a folder outside the input folder, registered
        config = os.path.join(base, "extra_model_paths.yaml")
        with open(config, "w") as f:
            f.write(f"atelier_test:\n  custom_nodes: {self.dirs['custom_nodes']}\n"
                    f"  autoencoders: {self.dirs['models']}\n  atelier_datasets: {self.registered}\n")
        self.log = open(os.path.join(base, "server.log"), "w")
        self.proc = subprocess.Popen(
            [_python(), "main.py", *([] if ON_GPU else ["--cpu"]), "--listen", "127.0.0.1", "--port", str(self.port),
             "--extra-model-paths-config", config, "--input-directory", self.dirs["input"],
             "--output-directory", self.dirs["output"], "--temp-directory", self.dirs["temp"],
             "--user-directory", self.dirs["user"], "--database-url", "sqlite:///:memory:"]
            + (["--front-end-root", os.path.abspath(FRONTEND_ROOT)] if FRONTEND_ROOT else []),
            cwd=COMFYUI_DIR, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + START_S
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited early; see {self.log.name}")
            try:
                self.get("/object_info/AtelierTrainAutoencoder")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        raise RuntimeError(f"ComfyUI did not come up within {START_S} s")

    def request(self, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
        return json.loads(text) if text else None

    get = request

    def queue(self, prompt):
        try:
            return self.request("/prompt", {"prompt": prompt, "client_id": "atelier-tests"})["prompt_id"]
        except urllib.error.HTTPError as e:
            raise AssertionError(f"/prompt refused the workflow: {e.read().decode()[:2000]}") from None

    def wait(self, prompt_id, timeout=600):
        deadline = time.time() + timeout
        while time.time() < deadline:
            entry = self.get(f"/history/{prompt_id}").get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None and \
                    entry["status"].get("status_str") in ("success", "error"):
                return entry
            time.sleep(0.2)
        raise AssertionError(f"prompt {prompt_id} did not finish in {timeout}s")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(str(tmp_path_factory.mktemp("comfyui")))
    procedural.write_folder(os.path.join(s.dirs["input"], "my_artworks"), count=16, size=96)
    procedural.write_digits(os.path.join(s.dirs["input"], "mnist_digits"), count=300)
    yield s
    s.stop()


def api_prompt(server, name, overrides):
    """The workflow as the API prompt ComfyUI's frontend would post, converted with the server's node specs."""
    info = server.get("/object_info")
    wf = workflow.load(os.path.join(ROOT, "workflows", f"{name}.json"))
    prompt = workflow.to_api(wf, lambda t: info[t]["input"] if t in info else None)
    return cli.apply_overrides(prompt, overrides)


def run_ok(server, prompt, timeout=600):
    entry = server.wait(server.queue(prompt), timeout)
    msgs = entry["status"].get("messages", [])
    assert entry["status"]["status_str"] == "success", json.dumps(msgs)[-3000:]
    return entry["outputs"]


def written(server, outputs):
    base = {"output": server.dirs["output"], "temp": os.path.join(server.dirs["temp"], "temp")}  # as ComfyUI's main.py
    return [os.path.join(base[im.get("type", "output")], im["subfolder"], im["filename"])
            for out in outputs.values() for im in out.get("images", [])]


def test_object_info_lists_every_node_with_tooltips(server):
    info = server.get("/object_info")
    for node_id in NODE_CLASS_MAPPINGS:
        assert node_id in info, f"{node_id} missing from /object_info (see the server log)"
        d = info[node_id]
        assert d["category"].startswith("Autoencoder Atelier") and d["description"]
        for section in ("required", "optional"):
            for name, spec in d["input"].get(section, {}).items():
                assert spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
        assert len(d["output_tooltips"]) == len(d["output"]) and all(d["output_tooltips"])


def test_workflow_templates_are_listed_and_served(server):
    listed = server.get("/api/workflow_templates")
    assert sorted(listed[PACK]) == WORKFLOWS
    for name in WORKFLOWS:
        wf = server.get(f"/api/workflow_templates/{PACK}/{quote(name)}.json")
        assert workflow.is_ui_format(wf)


def test_train_on_a_folder_then_mix_then_mnist(server):
    out = run_ok(server, api_prompt(server, "Atelier - Train on a folder", ["steps=40", "size=64", "crop_size=32"]))
    files = written(server, out)
    assert {os.path.basename(os.path.dirname(f)) for f in files} == {"atelier"}
    assert any("walk_strip" in f for f in files) and all(os.path.getsize(f) > 0 for f in files)
    model = os.path.join(server.dirs["models"], "atelier", "my_style_00001.safetensors")
    assert os.path.exists(model)

    # The loader's combo now lists the saved model; mix two input images with it.
    names = server.get("/object_info/AtelierLoadAutoencoder")["AtelierLoadAutoencoder"]["input"]["required"]
    assert "atelier/my_style_00001.safetensors" in names["ae_name"][0]
    for i, size in enumerate((96, 80)):
        procedural.make_image(100 + i, size).save(os.path.join(server.dirs["input"], f"mix_{i}.png"))
    out = run_ok(server, api_prompt(server, "Atelier - Mix two works",
                                    ["2.image=mix_0.png", "3.image=mix_1.png"]))
    (mix,) = written(server, out)
    assert Image.open(mix).size == (96, 96)   # padded to 96 for downscale 8 and cropped back

    out = run_ok(server, api_prompt(server, "Atelier - Explore latents",
                                    ["Image A (content).image=mix_0.png", "Image B (style).image=mix_1.png",
                                     "width=64", "height=64"]))
    names = sorted(os.path.basename(f).rsplit("_", 2)[0] for f in written(server, out))
    assert names == ["direction_chart", "direction_edit", "latent_view", "samples", "style_mix"]

    out = run_ok(server, api_prompt(server, "Atelier - Dense model on digits",
                                    ["steps=30", "count=300", "batch_size=64"]))
    assert len(written(server, out)) == 2
    assert os.path.exists(os.path.join(server.dirs["models"], "atelier", "mnist_dense_00001.safetensors"))


def test_model_card_route(server):
    """What Load Autoencoder shows as soon as a model is picked (web/atelier.js asks this route)."""
    from autoencoder_atelier.models import storage
    from autoencoder_atelier.models.train import TrainSettings, train
    from helpers import procedural as images, tiny_ae
    # Its own model, so this test also runs alone (-k card).
    ae = train(tiny_ae("conv"), images(4, 32), TrainSettings(steps=3, batch_size=2))
    storage.save_autoencoder(ae, os.path.join(server.dirs["models"], "card_test.safetensors"))
    card = server.get("/atelier/model_card?name=card_test.safetensors")["text"]
    assert card.startswith("Autoencoder Atelier ") and "conv autoencoder" in card and "trained 3 steps" in card
    refusal = NODE_CLASS_MAPPINGS["AtelierLoadAutoencoder"].error_prefix() + ": "
    for bad in ("../../etc/passwd", "atelier/none.safetensors"):
        answer = server.get(f"/atelier/model_card?name={bad}")
        assert "text" not in answer and answer["error"].startswith(refusal)


@pytest.mark.parametrize("after", [0.3, 1.0, 3.0], ids=["during set-up", "late set-up", "mid-run"])
def test_interrupt_stops_training_within_one_second(server, after):
    """Cancel while Train sets up (precision measurement, PCA start, first step) and while it trains. Timed to
    ComfyUI's execution_interrupted message (the node has stopped): the history can show it half a second later on
    a busy machine, when ComfyUI runs its gc.collect() after a prompt (at most every 10 s), which is not ours."""
    before = set(os.listdir(server.dirs["models"]))
    prompt = api_prompt(server, "Atelier - Train on a folder", ["steps=100000", "filename_prefix=interrupted"])
    pid = server.queue(prompt)
    deadline = time.time() + 120
    while time.time() < deadline:   # wait until training is under way
        running = server.get("/queue")["queue_running"]
        if running and running[0][1] == pid:
            break
        time.sleep(0.2)
    time.sleep(after)
    t = time.time()
    server.request("/interrupt", {})
    entry = server.wait(pid, timeout=30)
    shown = time.time() - t
    assert entry["status"]["status_str"] == "error"
    stopped = next(m[1]["timestamp"] for m in entry["status"]["messages"] if m[0] == "execution_interrupted") / 1000 - t
    print(f"interrupt -> node stopped in {stopped:.2f}s, history shows it after {shown:.2f}s")
    assert stopped < 1.0, f"training took {stopped:.1f}s to stop"
    assert set(os.listdir(server.dirs["models"])) == before   # nothing saved


# -- GPU memory, datasets, folders, templates ------------------------------------------------

def widget_defaults(node_id, **changes):
    spec = NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()["required"]
    values = {k: (v[1]["default"] if "default" in v[1] else v[0][0]) for k, v in spec.items()
              if isinstance(v[0], list) or v[0] in ("INT", "FLOAT", "STRING", "BOOLEAN")}
    return {**values, **changes}


def training_prompt(source, source_inputs, train_changes, prefix):
    """Load (images or dataset) -> New Autoencoder (defaults) -> Train -> Save Autoencoder, as an API prompt."""
    slot = "images" if source == "AtelierLoadImageFolder" else "dataset"
    return {
        "1": {"class_type": source, "inputs": source_inputs},
        "2": {"class_type": "AtelierNewAutoencoder", "inputs": widget_defaults("AtelierNewAutoencoder")},
        "3": {"class_type": "AtelierTrainAutoencoder",
              "inputs": {**widget_defaults("AtelierTrainAutoencoder", **train_changes), "autoencoder": ["2", 0],
                         slot: ["1", 0]}},
        "4": {"class_type": "AtelierSaveAutoencoder", "inputs": {"autoencoder": ["3", 0], "filename_prefix": prefix}},
    }


def test_training_asks_comfyui_for_room_and_another_model_is_evicted(server):
    """Another model (a large tensor loaded through load_models_gpu) fills a simulated card: training asks
    model management for what it needs, which unloads that model. On the CPU the card is the CPU."""
    import torch
    from autoencoder_atelier.models.train import TrainSettings, memory_needed
    big_mb = 256
    run_ok(server, {"1": {"class_type": "FakeCardHoldModel", "inputs": {"megabytes": big_mb}}})
    state = server.get("/fake_card/state")
    other = state["held"][-1]
    assert other["loaded"] and other["device"].split(":")[0] == state["device"].split(":")[0]
    train = dict(steps=4, batch_size=4, crop_size=32, size=64)
    (ae,) = NODE_CLASS_MAPPINGS["AtelierNewAutoencoder"]().create(**widget_defaults("AtelierNewAutoencoder"))
    settings = TrainSettings(steps=4, batch_size=4, crop_size=32)
    need = memory_needed(ae, torch.zeros(16, 64, 64, 3), settings) + state["reserve"]
    prompt = training_prompt("AtelierLoadImageFolder", widget_defaults(
        "AtelierLoadImageFolder", folder="my_artworks", size=64, count=16), {k: train[k] for k in
                                                                              ("steps", "batch_size", "crop_size")},
        "atelier/roomy")
    try:
        # Room to spare beside the other model: it stays.
        server.request("/fake_card/total", {"bytes": other["bytes"] + need + (64 << 20)})
        run_ok(server, prompt)
        assert server.get("/fake_card/state")["held"][-1]["loaded"]
        # A card too small for both: ComfyUI unloads the other model for our training.
        server.request("/fake_card/total", {"bytes": other["bytes"] + need - (1 << 20)})
        prompt["4"]["inputs"]["filename_prefix"] = "atelier/evicting"
        prompt["3"]["inputs"]["seed"] = 1   # not ComfyUI's cached result
        run_ok(server, prompt)
        after = server.get("/fake_card/state")["held"][-1]
        assert not after["loaded"], after
        print(f"evicted {big_mb} MB from {state['device']} for training that asked {need / 2 ** 20:.0f} MB")
    finally:
        server.request("/fake_card/total", {"bytes": None})


def test_dataset_node_trains_on_crops_of_works_of_any_size(server):
    folder = os.path.join(server.dirs["input"], "big_works")
    os.makedirs(folder, exist_ok=True)
    for i, (w, h) in enumerate([(160, 96), (64, 200), (120, 120), (90, 70)]):
        procedural.make_image(200 + i, max(w, h)).resize((w, h)).save(os.path.join(folder, f"{i}.png"))
    info = server.get("/object_info/AtelierLoadDataset")["AtelierLoadDataset"]
    assert "big_works" in info["input"]["required"]["folder"][0] and info["output"] == ["ATELIER_DATASET"]
    assert "dataset" in server.get("/object_info/AtelierTrainAutoencoder")["AtelierTrainAutoencoder"]["input"][
        "optional"]
    source = widget_defaults("AtelierLoadDataset", folder="big_works")
    out = run_ok(server, training_prompt("AtelierLoadDataset", source,
                                         {"steps": 4, "batch_size": 4, "crop_size": 48}, "atelier/from_dataset"))
    (path,) = [t for o in out.values() for t in o.get("text", [])]
    card = server.get(f"/atelier/model_card?name=atelier/{os.path.basename(path)}")["text"]
    assert "trained 4 steps" in card, card


def test_image_folders_are_confined_to_the_input_folder_and_registered_folders(server, tmp_path):
    outside = tmp_path / "private_art"
    procedural.write_folder(str(outside), count=2, size=32)
    procedural.write_folder(server.registered, count=2, size=32)
    choices = server.get("/object_info/AtelierLoadImageFolder")["AtelierLoadImageFolder"]["input"]["required"][
        "folder"][0]
    assert "my_artworks" in choices and server.registered in choices and str(outside) not in choices

    def preview(folder):
        return {"1": {"class_type": "AtelierLoadImageFolder",
                      "inputs": widget_defaults("AtelierLoadImageFolder", folder=folder, size=32)},
                "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}

    with pytest.raises(urllib.error.HTTPError) as refused:
        server.request("/prompt", {"prompt": preview(str(outside))})
    body = refused.value.read().decode()
    assert "outside ComfyUI's input folder" in body and "extra_model_paths.yaml" in body and "atelier_datasets" in body
    with pytest.raises(urllib.error.HTTPError):
        server.request("/prompt", {"prompt": preview("../user")})   # out of the input folder by a relative name
    assert written(server, run_ok(server, preview(server.registered)))   # registered: read and previewed
    assert written(server, run_ok(server, preview("my_artworks")))        # a typed name inside the input folder


def test_every_template_has_its_thumbnail_served(server):
    for name in WORKFLOWS:
        with urllib.request.urlopen(f"{server.url}/api/workflow_templates/{PACK}/{quote(name)}.jpg", timeout=30) as r:
            assert r.status == 200 and r.read(3) == b"\xff\xd8\xff", name   # a JPEG


# -- the real frontend ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def page(server):
    """One page of ComfyUI's frontend in Debian's chromium (Playwright), or a skip when either is missing."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (uses the system chromium)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    # No first-run template browser over the graph; a plain canvas for the screenshots.
    for key, value in {"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False, "Comfy.Graph.CanvasInfo": False,
                       "Comfy.Graph.CanvasMenu": False, "Comfy.NodeBadge.NodeSourceBadgeMode": "None"}.items():
        server.request(f"/settings/{key}", value)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.console = []
        page.on("console", lambda m: page.console.append(f"{m.type}: {m.text}"))
        page.on("response", lambda r: r.status >= 400 and page.console.append(f"http {r.status}: {r.url}"))
        page.goto(server.url)
        # The graph exists before node definitions arrive: wait until ours are registered.
        page.wait_for_function("() => window.LiteGraph?.registered_node_types?.AtelierTrainAutoencoder",
                               timeout=60_000)
        page.frontend_version = page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__ ?? '?'")
        print(f"frontend {page.frontend_version}")
        yield page
        browser.close()


# Pairs of nodes whose boxes overlap as the frontend sizes them, the title bar LiteGraph draws above pos included.
OVERLAPS = """() => {
    const th = window.LiteGraph.NODE_TITLE_HEIGHT, nodes = window.comfyAPI.app.app.graph._nodes, overlaps = [];
    const box = n => [n.pos[0], n.pos[1] - th, n.pos[0] + n.size[0], n.pos[1] + n.size[1]];
    for (const a of nodes) for (const b of nodes) {
        const [p, q] = [box(a), box(b)];
        if (a.id < b.id && p[0] < q[2] && q[0] < p[2] && p[1] < q[3] && q[1] < p[3])
            overlaps.push(`${a.title} / ${b.title}`);
    }
    return overlaps;
}"""


def open_in_frontend(page, wf):
    """Load a workflow like the user opening it; returns what the frontend made of it."""
    return page.evaluate("""async (wf) => {
        const app = window.comfyAPI.app.app;
        await app.loadGraphData(wf);
        await new Promise(r => setTimeout(r, 300));
        const overlaps = (""" + OVERLAPS + """)();
        const saved = Object.fromEntries(app.graph.serialize().nodes.map(n => [n.id, n.widgets_values ?? []]));
        return {
            missing: app.graph._nodes.map(n => n.type).filter(t => !window.LiteGraph.registered_node_types[t]),
            // what the frontend would save again: differs from the file when a widget is missing or extra
            widgets: Object.fromEntries(wf.nodes.map(n => [n.id, saved[n.id]])),
            overlaps,
            dialogs: [...document.querySelectorAll('.p-dialog')].map(d => d.innerText.slice(0, 300)),
            prompt: (await app.graphToPrompt()).output,
        };
    }""", wf)


def check_opens_cleanly(name, wf, theirs):
    assert theirs["missing"] == [], f"{name}: frontend does not know {theirs['missing']}"
    assert theirs["dialogs"] == [], f"{name}: the frontend showed {theirs['dialogs']}"
    for n in wf["nodes"]:
        assert theirs["widgets"][str(n["id"])] == n.get("widgets_values", []), \
            f"{name}: node {n['id']} ({n['type']}) widgets read back differently"


def test_frontend_opens_and_converts_every_workflow_like_our_converter(server, page):
    """The real frontend loads each workflow cleanly and its graphToPrompt() gives the prompt our converter gives."""
    info = server.get("/object_info")
    extensions = page.evaluate("() => window.comfyAPI.app.app.extensions.map(e => e.name)")
    assert "AutoencoderAtelier.ShowText" in extensions
    for name in WORKFLOWS:
        wf = workflow.load(os.path.join(ROOT, "workflows", f"{name}.json"))
        ensure_inputs(server, wf)
        theirs = open_in_frontend(page, wf)
        check_opens_cleanly(name, wf, theirs)
        assert theirs["overlaps"] == [], f"{name}: nodes overlap as the frontend sizes them: {theirs['overlaps']}"
        ours = workflow.to_api(wf, lambda t: info[t]["input"] if t in info else None)
        strip = lambda pr: {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in pr.items()}
        assert strip(theirs["prompt"]) == strip(ours), name


# Upper bounds on widget values (by input name) that keep every run short on two CPU cores; a
# workflow not listed in SHORT_RUN gets the defaults, so new workflows are covered as they come.
SHORT_RUN_DEFAULTS = {"steps": 20, "size": 64, "crop_size": 32, "batch_size": 16, "count": 300,
                      "width": 64, "height": 64, "frames": 12, "image_size": 64}
SHORT_RUN = {"Atelier - Dense model on digits": {"steps": 30, "batch_size": 64}}


def ensure_inputs(server, wf):
    """Create the images and folders a workflow reads (LoadImage files, Load Image Folder folders)."""
    for n in wf["nodes"]:
        values = n.get("widgets_values") or []
        if n["type"] == "LoadImage" and values:
            path = os.path.join(server.dirs["input"], values[0])
            if not os.path.exists(path):
                procedural.make_image(zlib.crc32(values[0].encode()) % 1000, 96).save(path)
        elif n["type"] == "AtelierLoadImageFolder" and values and not os.path.isabs(values[0]):
            path = os.path.join(server.dirs["input"], values[0])
            if not os.path.isdir(path):
                procedural.write_folder(path, count=16, size=96)


def models_needed(wf):
    return [n["widgets_values"][0] for n in wf["nodes"] if n["type"] == "AtelierLoadAutoencoder"]


def run_order(names):
    """Workflows that make models before those that load them."""
    return sorted(names, key=lambda n: (bool(models_needed(workflow.load(os.path.join(ROOT, "workflows",
                                                                                      f"{n}.json")))), n))


def test_every_workflow_runs_from_the_frontend(server, page, tmp_path):
    """Each workflow as a user runs it: open it, press Queue (app.queuePrompt, so the frontend's own
    graphToPrompt builds the prompt), wait for success, and keep a screenshot of the finished graph."""
    shots = os.path.abspath(SCREENSHOTS) if SCREENSHOTS else str(tmp_path)
    os.makedirs(shots, exist_ok=True)
    page.evaluate("() => window.comfyAPI.app.app.extensionManager.command.execute('Workspace.ToggleFocusMode')")
    for name in run_order(WORKFLOWS):
        wf = workflow.load(os.path.join(ROOT, "workflows", f"{name}.json"))
        ensure_inputs(server, wf)
        for model in models_needed(wf):
            assert os.path.exists(os.path.join(server.dirs["models"], model)), \
                f"{name} loads {model}, which no workflow before it saved"
        page.evaluate("() => window.comfyAPI.app.app.refreshComboInNodes()")   # list the models saved so far
        check_opens_cleanly(name, wf, open_in_frontend(page, wf))
        caps = {**SHORT_RUN_DEFAULTS, **SHORT_RUN.get(name, {})}
        changed = page.evaluate("""(caps) => {
            const changed = [];
            for (const node of window.comfyAPI.app.app.graph._nodes)
                for (const w of node.widgets ?? [])
                    if (w.name in caps && typeof w.value === "number" && w.value > caps[w.name]) {
                        changed.push(`${node.id}.${w.name}=${caps[w.name]}`);
                        w.value = caps[w.name];
                    }
            return changed;
        }""", caps)
        with page.expect_response(lambda r: r.url.endswith("/prompt") and r.request.method == "POST") as posted:
            page.evaluate("() => window.comfyAPI.app.app.queuePrompt(0)")
        response = posted.value
        assert response.ok, f"{name}: /prompt refused the frontend's prompt: {response.text()[:2000]}"
        t = time.time()
        entry = server.wait(response.json()["prompt_id"], timeout=600)
        assert entry["status"]["status_str"] == "success", f"{name}: {json.dumps(entry['status'])[-3000:]}"
        files = written(server, entry["outputs"])
        assert files and all(os.path.getsize(f) > 0 for f in files), name
        print(f"{name}: ran in {time.time() - t:.1f}s from the frontend ({', '.join(changed)}), "
              f"{len(files)} files")
        page.wait_for_load_state("networkidle")
        # Nodes that show pictures or text grow when they get them: still no title bar covered.
        overlaps = page.evaluate(OVERLAPS)
        assert overlaps == [], f"{name}: nodes overlap after the run: {overlaps}"
        # The web extension shows the model card on Load Autoencoder and the written file on Save Autoencoder.
        shown = page.evaluate("""() => window.comfyAPI.app.app.graph._nodes
            .filter(n => n.type === "AtelierLoadAutoencoder" || n.type === "AtelierSaveAutoencoder")
            .map(n => [n.type, n.widgets.find(w => w.name === "model_info" || w.name === "saved_to")?.value ?? ""])""")
        for node_type, text in shown:
            if node_type == "AtelierLoadAutoencoder":
                assert re.match(r"Autoencoder Atelier \S+ model\n", text) and "trained" in text and "saved 2" in text, \
                    f"{name}: the model card is not shown: {text!r}"
            else:
                assert text.endswith(".safetensors"), f"{name}: the saved path is not shown: {text!r}"
        page.evaluate("() => window.comfyAPI.app.app.extensionManager.command.execute('Comfy.Canvas.FitView')")
        page.wait_for_timeout(800)
        # The graph's bounding box on screen (canvas coordinates through the view's offset and scale).
        clip = page.evaluate("""() => {
            const app = window.comfyAPI.app.app, ds = app.canvas.ds, th = window.LiteGraph.NODE_TITLE_HEIGHT;
            const xs = [], ys = [];
            for (const n of app.graph._nodes) {
                xs.push(n.pos[0], n.pos[0] + n.size[0]);
                ys.push(n.pos[1] - th, n.pos[1] + n.size[1]);
            }
            const sx = x => (x + ds.offset[0]) * ds.scale, sy = y => (y + ds.offset[1]) * ds.scale;
            const x = Math.max(0, sx(Math.min(...xs)) - 16), y = Math.max(0, sy(Math.min(...ys)) - 16);
            return {x, y, width: Math.min(innerWidth, sx(Math.max(...xs)) + 16) - x,
                    height: Math.min(innerHeight, sy(Math.max(...ys)) + 16) - y};
        }""")
        shot = os.path.join(shots, f"{name}.png")
        page.screenshot(path=shot, clip=clip)
        quiet = ("log:", "debug:", "info:")
        complaints = [m for m in page.console
                      if "atelier" in m.lower() and not m.startswith(quiet) or "internal module" in m]
        assert complaints == [], f"{name}: the browser complained about the pack: {complaints}"
        # 256 colours keep a screenshot of the UI under 100 kB for the README, with no visible loss.
        Image.open(shot).convert("RGB").quantize(256, dither=Image.Dither.NONE).save(shot, optimize=True)


def test_node_search_box_finds_our_nodes_by_the_words_artists_type(page):
    """Type into the frontend's own node search (double-click on the canvas) and read what it offers."""
    titles = {v: k for k, v in NODE_DISPLAY_NAME_MAPPINGS.items()}

    def search(word):
        page.evaluate("() => window.comfyAPI.app.app.extensionManager.command.execute('Workspace.SearchBox.Toggle')")
        page.wait_for_timeout(300)
        page.keyboard.type(word)   # the search box takes the focus when it opens
        page.wait_for_timeout(700)
        offered = page.locator("[role=option]").all_inner_texts()   # title, category, badges, description
        page.keyboard.press("Escape")
        page.wait_for_timeout(200)
        return {titles[line.strip()] for text in offered for line in text.split("\n") if line.strip() in titles}

    # Frontends that match search aliases (1.27 does not; 1.58 does, also after the lists were refreshed, as
    # the workflow runs before this test did) find a node by a word only its aliases hold.
    with_aliases = search("montage") == {"AtelierImageGrid"}
    print(f"frontend {page.frontend_version} matches search aliases: {with_aliases}")
    version = tuple(int(v) for v in re.findall(r"\d+", page.frontend_version)[:2])
    assert with_aliases or version < (1, 58), "the search does not use the pack's aliases"
    for word in ("autoencoder", "latent", "train", "mix"):
        ours = search(word)
        print(f"'{word}' offers {sorted(ours)}")
        if with_aliases:
            expected = test_packaging.expected_finds(word)
        else:
            expected = {i for i, title in NODE_DISPLAY_NAME_MAPPINGS.items() if word in title.lower()}
        assert expected <= ours, f"'{word}' does not offer {sorted(expected - ours)}"
