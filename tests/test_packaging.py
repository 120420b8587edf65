"""The pack as users meet it: registry metadata, licence, changelog, requirements, node search, model card."""
import os
import re
import subprocess
import sys
import urllib.parse

import pytest
from PIL import Image

from safetensors import safe_open
from safetensors.torch import save_file

import autoencoder_atelier
from autoencoder_atelier.models import storage
from autoencoder_atelier.models.train import TrainSettings, train
from autoencoder_atelier.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from autoencoder_atelier.nodes.model_nodes import model_card
from helpers import ROOT, procedural, tiny_ae

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

PYPROJECT = os.path.join(ROOT, "pyproject.toml")
REPO_URL = "https://github.com/autoencoder-atelier/autoencoder-atelier"


@pytest.fixture(scope="module")
def pyproject():
    with open(PYPROJECT, "rb") as f:
        return tomllib.load(f)


def read(name):
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
        return f.read()


# -- registry metadata, checked with the rules of https://docs.comfy.org/registry/specifications --------

def test_project_table_has_what_the_registry_needs(pyproject):
    p = pyproject["project"]
    name = p["name"]
    # < 100 chars; letters, digits, - _ . ; no doubled separators; starts with a letter; no "ComfyUI"
    assert len(name) < 100 and re.fullmatch(r"[A-Za-z](?:[A-Za-z0-9]|[-_.](?=[A-Za-z0-9]))*", name), name
    assert "comfyui" not in name.lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", p["version"]) and p["version"] == autoencoder_atelier.__version__
    assert len(p["description"]) > 20 and p["requires-python"].startswith(">=3.")
    assert p["license"] == {"file": "LICENSE"}   # the registry refuses a bare string such as "MIT"
    urls = p["urls"]
    assert urls["Repository"] == REPO_URL and all(u.startswith("https://") for u in urls.values())


def test_dependencies_never_pin_torch_and_match_requirements(pyproject):
    deps = pyproject["project"]["dependencies"]
    torch_deps = [d for d in deps if re.match(r"torch\b", d)]
    assert torch_deps == ["torch"], "torch must stay unpinned: ComfyUI's own (often CUDA) build is the one to use"
    reqs = [line.split("#")[0].strip() for line in read("requirements.txt").splitlines()]
    reqs = [r for r in reqs if r]
    assert not any(re.match(r"torch", r) for r in reqs), "requirements.txt must not install torch"
    assert sorted(reqs) == sorted(d for d in deps if d != "torch")
    assert not any(re.match(r"torch", r) for r in read("requirements-dev.txt").splitlines())


def test_tool_comfy_table_and_icon(pyproject):
    comfy = pyproject["tool"]["comfy"]
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", comfy["PublisherId"])
    assert comfy["DisplayName"] == "Autoencoder Atelier"
    # The icon is a URL (the registry takes URLs) to a file this repository ships.
    prefix = f"https://raw.githubusercontent.com/{REPO_URL.split('github.com/')[1]}/main/"
    assert comfy["Icon"].startswith(prefix)
    icon = Image.open(os.path.join(ROOT, comfy["Icon"][len(prefix):]))
    assert icon.format in ("PNG", "JPEG", "GIF") and icon.width == icon.height and icon.width <= 400
    assert comfy["Banner"].startswith(prefix)
    banner = Image.open(os.path.join(ROOT, comfy["Banner"][len(prefix):]))
    assert banner.format in ("PNG", "JPEG", "GIF") and banner.width > 2 * banner.height
    assert re.fullmatch(r">=\d+\.\d+\.\d+", comfy["requires-comfyui"])
    assert f"ComfyUI {comfy['requires-comfyui'][2:]}" in read("README.md"), "README must say which versions were tested"


def test_registry_archive_leaves_out_what_comfyui_never_loads():
    """.comfyignore keeps tests, benches, tools, CI and screenshots out of the published archive (and away from
    registry scanners), but never anything the pack imports or serves."""
    ignored = {line.strip() for line in read(".comfyignore").splitlines() if line.strip() and not line.startswith("#")}
    assert {"tests/", "bench/", "tools/", ".ci/", "docs/screenshots/"} <= ignored
    for shipped in ("__init__.py", "models/", "nodes/", "headless/", "web/", "workflows/", "docs/icon.png"):
        assert not any(shipped.startswith(i) for i in ignored), shipped


def test_license_changelog_and_readme_agree_with_the_version(pyproject):
    assert read("LICENSE").startswith("MIT License\n\nCopyright (c) 2026 Autoencoder Atelier contributors")
    version = pyproject["project"]["version"]
    changelog = read("CHANGELOG.md")
    assert re.search(rf"^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.M), \
        f"CHANGELOG.md has no entry for {version}"
    readme = read("README.md")
    for section in ("## Install into ComfyUI", "## Troubleshooting", "## Nodes"):
        assert section in readme
    for picture in re.findall(r"\]\((docs/[^)]+\.png)\)", readme):   # links: spaces are %20
        assert os.path.exists(os.path.join(ROOT, urllib.parse.unquote(picture))), picture


# -- the same checks through comfy-cli's own parser (pip install comfy-cli; not in requirements-dev) ------

def test_comfy_cli_parses_the_pyproject_without_warnings(capsys):
    parser = pytest.importorskip("comfy_cli.registry.config_parser", reason="pip install comfy-cli to run")
    config = parser.extract_node_configuration(PYPROJECT)
    out = capsys.readouterr().out
    assert config is not None and "Warning" not in out, out
    assert config.project.name == "autoencoder-atelier" and config.project.version == autoencoder_atelier.__version__
    assert config.project.license.file == "LICENSE" and config.project.urls.repository == REPO_URL
    assert config.project.supported_os == ["OS Independent"]
    assert config.tool_comfy.publisher_id and config.tool_comfy.display_name and config.tool_comfy.icon


# -- node search ---------------------------------------------------------------------------------------

def searchable(node_id):
    """What the frontend's node search matches: type name, display name and (newer servers) search aliases."""
    cls = NODE_CLASS_MAPPINGS[node_id]
    return " ".join([node_id, NODE_DISPLAY_NAME_MAPPINGS[node_id], *getattr(cls, "SEARCH_ALIASES", [])]).lower()


def sockets(cls):
    spec = cls.INPUT_TYPES()
    ins = {s[0] for sec in ("required", "optional") for s in spec.get(sec, {}).values() if isinstance(s[0], str)}
    return ins | set(cls.RETURN_TYPES)


def expected_finds(word):
    """Nodes an artist typing ``word`` should find."""
    rules = {"autoencoder": lambda i, c: "AUTOENCODER" in sockets(c),
             "latent": lambda i, c: "LATENT" in sockets(c),
             "train": lambda i, c: i in ("AtelierTrainAutoencoder", "AtelierNewAutoencoder", "AtelierLoadImageFolder"),
             "mix": lambda i, c: i in ("AtelierLatentMix", "AtelierLatentStyleMix", "AtelierLatentCollage")}
    return {i for i, c in NODE_CLASS_MAPPINGS.items() if rules[word](i, c)}


@pytest.mark.parametrize("word", ["autoencoder", "latent", "train", "mix"])
def test_every_node_is_found_by_the_words_an_artist_types(word):
    expected = expected_finds(word)
    assert expected
    missed = sorted(i for i in expected if word not in searchable(i))
    assert not missed, f"searching '{word}' would not find {missed}"


def test_search_aliases_are_plain_lowercase_words():
    for node_id, cls in NODE_CLASS_MAPPINGS.items():
        aliases = cls.SEARCH_ALIASES
        assert isinstance(aliases, list) and aliases, node_id
        assert all(isinstance(a, str) and a == a.lower().strip() and a for a in aliases), node_id
        assert len(set(aliases)) == len(aliases), node_id


def test_output_names_read_well_on_the_canvas():
    for node_id, cls in NODE_CLASS_MAPPINGS.items():
        names = cls.RETURN_NAMES
        assert len(names) == len(cls.RETURN_TYPES) == len(set(names)), node_id
        assert all(re.fullmatch(r"[a-z][a-z_0-9]{1,20}", n) for n in names), (node_id, names)


# -- the model card --------------------------------------------------------------------------------------

def test_model_card_in_the_file_and_on_the_load_node(tmp_dirs):
    ae = train(tiny_ae("conv", latent_channels=4), procedural(5, 32), TrainSettings(steps=3, batch_size=2))
    path = storage.save_autoencoder(ae, tmp_dirs.models / "carded.safetensors")
    _config, card, meta = storage.read_info(path)
    lines = card.splitlines()
    assert lines[0] == f"Autoencoder Atelier {autoencoder_atelier.__version__} model"
    assert lines[1].startswith("conv autoencoder, ") and "parameters" in lines[1]
    assert "trained 3 steps on 5 images" in card
    assert lines[-1] == f"saved {meta['saved'][:10]} {meta['saved'][11:16]} UTC"

    out = NODE_CLASS_MAPPINGS["AtelierLoadAutoencoder"]().load("carded.safetensors")
    assert out["result"][1] == card and out["ui"]["text"] == [card]   # STRING output and the text on the node
    assert model_card("carded.safetensors") == card   # what the UI shows as soon as the model is picked
    with pytest.raises(ValueError, match="was not found"):
        model_card("missing.safetensors")


def test_model_card_shows_only_plausible_dates_and_versions(tmp_dirs):
    """Metadata is hostile: a forged date or version never reaches the card."""
    path = storage.save_autoencoder(tiny_ae("conv"), tmp_dirs.models / "m.safetensors")
    with safe_open(path, "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors, path, {**meta, "saved": "<img src=x onerror=alert(1)>", "pack_version": "9" * 500})
    card = NODE_CLASS_MAPPINGS["AtelierLoadAutoencoder"]().load("m.safetensors")["result"][1]
    assert "<img" not in card and "999" not in card and "saved" not in card
    assert card.startswith("Autoencoder Atelier (unknown version) model\nconv autoencoder")


def test_every_node_has_a_current_help_page():
    """web/docs/<NodeId>.md is what newer frontends show as the node's help; tools/build_node_docs.py writes it
    from DESCRIPTION and the tooltips."""
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build_node_docs.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(os.listdir(os.path.join(ROOT, "web", "docs"))) == sorted(f"{n}.md" for n in NODE_CLASS_MAPPINGS)


def test_attributes_newer_servers_read():
    """What ComfyUI's newer server.py sends to the frontend beside the V1 basics (checked against its source):
    search aliases, advanced inputs folded away, and flags for nodes that show something on the node."""
    for node_id, cls in NODE_CLASS_MAPPINGS.items():
        assert cls.SEARCH_ALIASES and all(isinstance(a, str) for a in cls.SEARCH_ALIASES), node_id
    optional = NODE_CLASS_MAPPINGS["AtelierTrainAutoencoder"].INPUT_TYPES()["optional"]
    assert optional["precision"][1]["advanced"] and optional["kl_weight"][1]["advanced"]
    assert "advanced" not in optional["crop_size"][1]   # changed often: stays in view
    assert NODE_CLASS_MAPPINGS["AtelierSaveAutoencoder"].OUTPUT_NODE is True
    assert NODE_CLASS_MAPPINGS["AtelierLoadAutoencoder"].HAS_INTERMEDIATE_OUTPUT is True
