"""The one place that touches ComfyUI, with plain fallbacks when it is absent (tests, headless).

Headless folders come from ``configure()`` (the runner's options), then the environment
(ATELIER_MODELS_DIR, ATELIER_OUTPUT_DIR, ATELIER_INPUT_DIR), then ./autoencoders,
./output and ./input under the current directory.
"""
import contextlib
import gc
import logging
import os

import torch

from ..models import interrupt
from ..models.files import is_regular_file, list_files

log = logging.getLogger("autoencoder_atelier")

try:  # ComfyUI puts these on sys.path; nothing else should provide them.
    import comfy.model_management as _mm
    import comfy.utils as _cu
    import folder_paths as _fp
    IN_COMFYUI = True
except ImportError:
    _mm = _cu = _fp = None
    IN_COMFYUI = False

MODEL_FOLDER = "autoencoders"
# The extra_model_paths.yaml key under which users register image folders outside ComfyUI's input folder.
DATASET_FOLDER = "atelier_datasets"
MODEL_EXTENSIONS = {".safetensors"}
_overrides = {}


def configure(models_dir=None, output_dir=None, input_dir=None):
    """Headless folder overrides (None leaves a folder as it is)."""
    for key, value in (("models", models_dir), ("output", output_dir), ("input", input_dir)):
        if value is not None:
            _overrides[key] = os.path.abspath(value)


def reset():
    """Forget the headless folder overrides (back to the environment and ./autoencoders, ./output, ./input)."""
    _overrides.clear()


@contextlib.contextmanager
def folders(models_dir=None, output_dir=None, input_dir=None):
    """``configure()`` for one block (a test, one headless run); the previous overrides come back after it."""
    saved = dict(_overrides)
    configure(models_dir, output_dir, input_dir)
    try:
        yield
    finally:
        reset()
        _overrides.update(saved)


def _headless_dir(key, env, default):
    return _overrides.get(key) or os.path.abspath(os.environ.get(env) or default)


def register_model_folder():
    """Add ComfyUI's models/autoencoders (and keep any extra_model_paths entries)."""
    if not IN_COMFYUI:
        return
    default = os.path.join(_fp.models_dir, MODEL_FOLDER)
    paths = _fp.folder_names_and_paths.get(MODEL_FOLDER, ([], set()))[0]
    if default not in paths:
        paths = paths + [default]
    _fp.folder_names_and_paths[MODEL_FOLDER] = (paths, set(MODEL_EXTENSIONS))
    os.makedirs(default, exist_ok=True)


def model_dirs():
    if IN_COMFYUI:
        return _fp.get_folder_paths(MODEL_FOLDER)
    return [_headless_dir("models", "ATELIER_MODELS_DIR", MODEL_FOLDER)]


def list_models():
    """Model file names (relative to their folder) for the loader's combo: regular files only (ComfyUI's own
    list has FIFOs and devices too, and picking one would hang or never end the load)."""
    if IN_COMFYUI:
        return [n for n in _fp.get_filename_list(MODEL_FOLDER) if os.path.splitext(n)[1].lower() in MODEL_EXTENSIONS
                and is_regular_file(_fp.get_full_path(MODEL_FOLDER, n) or "")]
    return list_files(model_dirs()[0], MODEL_EXTENSIONS, recursive=True)


def add_json_route(path, answer):
    """Serve GET ``path`` on ComfyUI's server as JSON ``answer(query dict)``, or {"error": message} when it
    raises ValueError (a normal answer for the UI, e.g. a workflow naming a model you do not have, so no
    HTTP error in the browser console); computed off the event loop. Nothing happens outside ComfyUI."""
    try:
        import asyncio

        from aiohttp import web
        from server import PromptServer
        routes = PromptServer.instance.routes
    except (ImportError, AttributeError):
        return

    async def handler(request):
        try:
            body = await asyncio.get_running_loop().run_in_executor(None, answer, dict(request.query))
        except ValueError as e:
            return web.json_response({"error": str(e)})
        return web.json_response(body)

    routes.get(path)(handler)


def output_dir():
    return _fp.get_output_directory() if IN_COMFYUI else _headless_dir("output", "ATELIER_OUTPUT_DIR", "output")


def input_dir():
    return _fp.get_input_directory() if IN_COMFYUI else _headless_dir("input", "ATELIER_INPUT_DIR", "input")


def _registered_folders():
    if not IN_COMFYUI or DATASET_FOLDER not in _fp.folder_names_and_paths:
        return []
    return [os.path.abspath(p) for p in _fp.get_folder_paths(DATASET_FOLDER)]


def image_folder_choices():
    """The folder dropdown of the image-folder nodes: the input folder's subfolders (as ComfyUI's own dataset
    nodes list them), then the folders registered under DATASET_FOLDER."""
    root = input_dir()
    subs = []
    for folder, dirs, _ in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if folder != root:
            subs.append(os.path.relpath(folder, root).replace(os.sep, "/"))
    return subs + _registered_folders()


def image_folder(name):
    """The absolute folder a folder input names; relative names are inside the input folder. Inside ComfyUI only
    the input folder and registered folders may be read: on a shared server anyone who can queue a prompt could
    otherwise read, and see previewed, any image folder on the machine. Headless runs read any folder."""
    folder = os.path.expanduser((name or "").strip().strip('"'))
    path = os.path.abspath(folder if os.path.isabs(folder) else os.path.join(input_dir(), folder))
    if IN_COMFYUI:
        real = os.path.realpath(path)
        roots = [os.path.realpath(r) for r in [input_dir(), *_registered_folders()]]
        if not any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
            raise ValueError(f"{name!r} is outside ComfyUI's input folder ({input_dir()}). Put the images in a "
                             f"folder there, or register the folder in ComfyUI's extra_model_paths.yaml and restart "
                             f"ComfyUI:\n  my_art:\n    {DATASET_FOLDER}: {path}")
    return path


def torch_device():
    """ComfyUI's compute device when present (honours --cpu), else CUDA if available."""
    if IN_COMFYUI:
        return _mm.get_torch_device()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def compute_device(nbytes):
    """The device for a piece of work that needs ``nbytes`` there. Inside ComfyUI its model management is asked
    for the room first, as its own nodes do: it unloads or offloads other models (a checkpoint, a VAE) until
    that much is free, keeping its usual reserve. Our models are not registered with it: they stay on the CPU
    (its offload device) between uses and reach the GPU only as a copy for the work (Autoencoder.on).
    Headless runs own the device: nothing to ask."""
    device = torch_device()
    if IN_COMFYUI:
        _mm.free_memory(int(nbytes) + _mm.extra_reserved_memory(), device)
        log.debug("asked ComfyUI for %.0f MiB on %s", nbytes / 2 ** 20, device)
    return device


def free_memory():
    """Hand cached GPU memory back (after running out of it)."""
    gc.collect()
    if IN_COMFYUI:
        _mm.soft_empty_cache()
    elif torch.cuda.is_available():
        torch.cuda.empty_cache()


def check_interrupted():
    """Raise ComfyUI's interruption if the user pressed Cancel."""
    if IN_COMFYUI:
        _mm.throw_exception_if_processing_interrupted()


interrupt.install(lambda: check_interrupted())  # a lambda: tests replace check_interrupted to simulate Cancel


class HeadlessProgressBar:
    """Same interface as comfy.utils.ProgressBar; reports to ``hook`` (set by the runner)."""

    hook = None

    def __init__(self, total, node_id=None):
        self.total, self.current = total, 0

    def update_absolute(self, value, total=None, preview=None):
        self.total = total if total is not None else self.total
        self.current = min(value, self.total)
        if HeadlessProgressBar.hook is not None:
            HeadlessProgressBar.hook(self.current, self.total, preview)

    def update(self, value):
        self.update_absolute(self.current + value)


def progress_bar(total):
    return _cu.ProgressBar(total) if IN_COMFYUI else HeadlessProgressBar(total)
