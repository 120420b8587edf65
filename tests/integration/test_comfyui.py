"""The shipped workflows in a real ComfyUI server (skipped unless COMFYUI_DIR is set).

    COMFYUI_DIR=/path/to/ComfyUI python -m pytest tests/integration -q

The server runs as a subprocess with --cpu; the pack is loaded through an
--extra-model-paths-config file (custom_nodes: key) from a temporary custom_nodes folder
that links to this checkout, and every folder it writes to is temporary. Python for the
server: $COMFYUI_PYTHON, else $COMFYUI_DIR/venv/bin/python, else this interpreter.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from autoencoder_atelier.headless import cli, workflow
from autoencoder_atelier.models import procedural
from autoencoder_atelier.nodes import NODE_CLASS_MAPPINGS

COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
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
        config = os.path.join(base, "extra_model_paths.yaml")
        with open(config, "w") as f:
            f.write(f"atelier_test:\n  custom_nodes: {self.dirs['custom_nodes']}\n"
                    f"  autoencoders: {self.dirs['models']}\n")
        self.log = open(os.path.join(base, "server.log"), "w")
        self.proc = subprocess.Popen(
            [_python(), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
             "--extra-model-paths-config", config, "--input-directory", self.dirs["input"],
             "--output-directory", self.dirs["output"], "--temp-directory", self.dirs["temp"],
             "--user-directory", self.dirs["user"], "--database-url", "sqlite:///:memory:"],
            cwd=COMFYUI_DIR, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited early; see {self.log.name}")
            try:
                self.get("/object_info/AtelierTrainAutoencoder")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        raise RuntimeError("ComfyUI did not come up within 120 s")

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
    return [os.path.join(server.dirs["output"], im["subfolder"], im["filename"])
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
        wf = server.get(f"/api/workflow_templates/{PACK}/{name}.json")
        assert workflow.is_ui_format(wf)


def test_train_on_a_folder_then_mix_then_mnist(server):
    out = run_ok(server, api_prompt(server, "atelier_train_on_a_folder", ["steps=40", "size=64", "crop_size=32"]))
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
    out = run_ok(server, api_prompt(server, "atelier_load_encode_mix_decode",
                                    ["2.image=mix_0.png", "3.image=mix_1.png"]))
    (mix,) = written(server, out)
    from PIL import Image
    assert Image.open(mix).size == (96, 96)   # padded to 96 for downscale 8 and cropped back

    out = run_ok(server, api_prompt(server, "atelier_explore_latents",
                                    ["Image A (content).image=mix_0.png", "Image B (style).image=mix_1.png",
                                     "width=64", "height=64"]))
    names = sorted(os.path.basename(f).rsplit("_", 2)[0] for f in written(server, out))
    assert names == ["direction_chart", "direction_edit", "latent_view", "samples", "style_mix"]

    out = run_ok(server, api_prompt(server, "atelier_mnist_dense", ["steps=30", "count=300", "batch_size=64"]))
    assert len(written(server, out)) == 2
    assert os.path.exists(os.path.join(server.dirs["models"], "atelier", "mnist_dense_00001.safetensors"))


def test_interrupt_stops_training_within_two_seconds(server):
    before = set(os.listdir(server.dirs["models"]))
    prompt = api_prompt(server, "atelier_train_on_a_folder", ["steps=100000", "filename_prefix=interrupted"])
    pid = server.queue(prompt)
    deadline = time.time() + 120
    while time.time() < deadline:   # wait until training is under way
        running = server.get("/queue")["queue_running"]
        if running and running[0][1] == pid:
            break
        time.sleep(0.2)
    time.sleep(3)
    t = time.time()
    server.request("/interrupt", {})
    entry = server.wait(pid, timeout=30)
    elapsed = time.time() - t
    print(f"interrupt -> prompt finished in {elapsed:.2f}s")
    assert elapsed < 2.0, f"training took {elapsed:.1f}s to stop"
    assert entry["status"]["status_str"] == "error"
    assert any(m[0] == "execution_interrupted" for m in entry["status"]["messages"])
    assert set(os.listdir(server.dirs["models"])) == before   # nothing saved


def _browser():
    """Debian's chromium driven by Playwright, or a skip when either is missing."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (uses the system chromium)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    return sync_api, chromium


def test_frontend_opens_and_converts_every_workflow_like_our_converter(server, tmp_path):
    """The real frontend loads each workflow and its graphToPrompt() gives the prompt our converter gives."""
    sync_api, chromium = _browser()
    info = server.get("/object_info")
    server.request("/settings/Comfy.TutorialCompleted", True)   # no first-run template browser over the graph
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(server.url)
        # The graph exists before node definitions arrive: wait until ours are registered.
        page.wait_for_function("() => window.LiteGraph?.registered_node_types?.AtelierTrainAutoencoder",
                               timeout=60_000)
        extensions = page.evaluate("() => window.comfyAPI.app.app.extensions.map(e => e.name)")
        assert "AutoencoderAtelier.ShowText" in extensions
        for name in WORKFLOWS:
            wf = workflow.load(os.path.join(ROOT, "workflows", f"{name}.json"))
            theirs = page.evaluate("""async (wf) => {
                const app = window.comfyAPI.app.app;
                await app.loadGraphData(wf);
                const missing = app.graph._nodes.map(n => n.type)
                                                .filter(t => !window.LiteGraph.registered_node_types[t]);
                return {missing, prompt: (await app.graphToPrompt()).output};
            }""", wf)
            assert theirs["missing"] == [], f"{name}: frontend does not know {theirs['missing']}"
            ours = workflow.to_api(wf, lambda t: info[t]["input"] if t in info else None)
            strip = lambda pr: {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in pr.items()}
            assert strip(theirs["prompt"]) == strip(ours), name
            page.wait_for_timeout(500)
            page.screenshot(path=str(tmp_path / f"{name}.png"))
        browser.close()
