"""Training's set-up: the checks and choices made before the model is copied and the first step runs.

The Trainer (train.py) calls these phases in order, with a Cancel check between them (each can take
seconds on a busy machine): the settings, the works on the device with the held-back ones split off, the
training crop and the memory a step of it needs, and the precision. ``memory_needed`` answers the same
questions ahead of training, for ComfyUI's model management. Running out of memory is recognised here for
the whole of training.
"""
import logging

import torch

from . import formats, memory, validation
from .adversary import PatchDiscriminator
from .corruption import CORRUPTIONS
from .dataset import WorkFolder
from .errors import AtelierError
from .losses import LOSSES
from .networks import build_network
from .precision import autocast_dtype, resumed_precision, slowdown

log = logging.getLogger(__name__)

AUTO_CROP = 2 / 3     # crop_size 0 ("auto"): this fraction of the shorter image side ...
AUTO_CROP_MAX = 128   # ... at most this (big paintings train on many small crops, not a few huge ones)
MAX_LEARNING_RATE = 10.0  # far beyond useful; keeps AdamW's float32 arithmetic from overflowing
OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)  # torch < 2.5 has only the latter
# The CPU allocator's failures arrive as plain RuntimeErrors (or MemoryError from numpy and Python).
CPU_OUT_OF_MEMORY = ("DefaultCPUAllocator: can't allocate memory", "DefaultCPUAllocator: not enough memory",
                     "not enough memory")


class TrainingError(AtelierError):
    """Settings or data that training cannot use; the message says how to fix it."""


def out_of_memory(e):
    """"GPU memory" or "memory" when ``e`` is running out of it (on a GPU or on the CPU), else None."""
    if isinstance(e, OUT_OF_MEMORY):
        return "GPU memory"
    if isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and any(t in str(e) for t in CPU_OUT_OF_MEMORY)):
        return "memory"
    return None


def check_settings(s, net):
    """Refuse settings training cannot use (``s``: TrainSettings) before any work; warn about weak ones."""
    if s.loss not in LOSSES:
        raise TrainingError(f"unknown loss {s.loss!r}; choose one of {', '.join(LOSSES)}")
    if s.corruption not in CORRUPTIONS or not 0 <= s.corruption_strength <= 1:
        raise TrainingError(f"corruption must be one of {', '.join(CORRUPTIONS)} with a strength in 0..1")
    if s.steps < 0 or s.batch_size < 1 or not 0 < s.learning_rate <= MAX_LEARNING_RATE:
        raise TrainingError(f"steps must be >= 0, batch_size >= 1 and learning_rate between 0 and "
                            f"{MAX_LEARNING_RATE:g} (got {s.steps}, {s.batch_size}, {s.learning_rate})")
    if s.loss == "sharp" and type(net).fixed_size:
        raise TrainingError("loss sharp is for conv models: its discriminator judges patches of texture, and a "
                            "dense model's small fixed-size pictures have none to judge; use mse for dense models")
    if s.loss == "sharp" and s.batch_size == 1:
        log.warning("loss sharp with batch_size 1: the discriminator sees one crop per step and learns slowly "
                    "and noisily; batch_size 8 or more works better")


def training_images(images, s, device, free_memory):
    """(works to train on, held-back works or None) of an IMAGE batch, as [N,C,H,W] float32 on ``device`` in
    a copy autograd can use; (None, None) for a dataset, whose works are read per step. The held-back works
    (validation.py) are never trained on; they pick the weights that are kept."""
    if isinstance(images, WorkFolder):
        return None, None
    data, kind = None, None
    try:
        with torch.inference_mode(False):   # ComfyUI runs prompts in inference mode
            data = formats.image_to_bchw(images, "refuse", TrainingError).to(device)
    except (OUT_OF_MEMORY, RuntimeError, MemoryError) as e:
        kind = out_of_memory(e)
        if not kind:
            raise
    if kind:   # answered here, once the exception and the tensors its traceback holds are gone
        free_memory()
        raise TrainingError(f"ran out of {kind} putting the training images on the "
                            f"{'GPU' if kind == 'GPU memory' else 'device'}; load fewer or smaller images "
                            "(Load Image Folder's count and size), or use Load Dataset Folder")
    keep, held = validation.split(data.shape[0], s.seed) if s.validation else (None, [])
    if not len(held):
        return data, None
    return data[keep.to(device)], data[held.to(device)]


def step_bytes_per_image(config, crop):
    """Memory one training image of ``crop`` costs in a step: every layer's output, kept for the backward
    pass, counted on the meta device (nothing allocated). Measured on the CPU: 178 MB for 4 crops of 128
    (width 32) against 192 MB estimated; in-place activations make up for the gradients."""
    total = [0]

    def count(_module, _inputs, out):
        for t in out if isinstance(out, tuple) else (out,):
            if isinstance(t, torch.Tensor):
                total[0] += t.numel()

    with torch.device("meta"):
        net = build_network(config)
        hooks = [m.register_forward_hook(count) for m in net.modules() if not list(m.children())]
        try:
            net.reconstruct(torch.empty(1, config["channels"], *crop))
        except (RuntimeError, NotImplementedError):  # an operation without a meta kernel: a rough figure
            total[0] = 24 * config["width"] * crop[0] * crop[1]
        for h in hooks:
            h.remove()
    return total[0] * 4


def crop_of(net, crop_size, h, w):
    """The training crop (h, w) for images of h x w."""
    if net.fixed_size:
        side = net.image_size
        if h < side or w < side:
            raise TrainingError(f"this dense model needs {side}x{side} images but got {w}x{h}; set the "
                                f"image loader's size to {side} or make a new model with image_size {h}")
        return side, side
    f = net.downscale
    if crop_size == 0:  # auto: crops whose random placement keeps a small model from memorising the works
        crop_size = max(f, min(AUTO_CROP_MAX, int(min(h, w) * AUTO_CROP)))
    ch, cw = min(crop_size, h) // f * f, min(crop_size, w) // f * f
    if ch == 0 or cw == 0:
        raise TrainingError(f"images of {w}x{h} are smaller than the model's downscale of {f}; "
                            "use larger images or a smaller downscale")
    return ch, cw


def data_crop(net, images, crop_size):
    """The crop for an IMAGE batch or a dataset (whose works differ in size, so it needs a crop_size)."""
    if isinstance(images, WorkFolder):   # works of differing sizes: crop auto is AUTO_CROP_MAX
        side = net.image_size if net.fixed_size else crop_size or AUTO_CROP_MAX
        return crop_of(net, crop_size, side, side)
    return crop_of(net, crop_size, *images.shape[1:3])


def training_crop(autoencoder, images, s, device):
    """The training crop (h, w), once a step of ``s.batch_size`` such crops is known to fit the memory budget
    and to suit the loss."""
    crop = data_crop(autoencoder.model, images, s.crop_size)
    if s.loss == "sharp" and min(crop) < PatchDiscriminator.MIN_SIDE:
        raise TrainingError(f"loss sharp needs training crops of at least {PatchDiscriminator.MIN_SIDE}x"
                            f"{PatchDiscriminator.MIN_SIDE} pixels (its discriminator judges patches); these are "
                            f"{crop[1]}x{crop[0]}: use larger images or crop_size, or loss mse")
    per_image = step_bytes_per_image(autoencoder.config, crop)
    try:
        memory.check("batch_size", s.batch_size, lambda b: b * per_image, advice="lower crop_size", device=device)
    except memory.MemoryBudgetError as e:
        raise TrainingError(str(e)) from None
    return crop


def training_precision(autoencoder, s, device):
    """The autocast dtype (None: float32) for ``s.precision``; a resumed model keeps the precision it was
    trained in unless another is chosen (precision.py)."""
    try:
        recorded = autoencoder.state.summary.get("precision") if autoencoder.state.step else None
        setting = resumed_precision(s.precision, recorded, device)
        if setting != s.precision:
            log.info("resuming in %s, the precision this model was trained in (choose another to change it)",
                     setting)
        autocast = autocast_dtype(setting, device, autoencoder.config["architecture"])
    except ValueError as e:
        raise TrainingError(str(e)) from None
    slow = slowdown(autocast, device)
    if slow:
        log.warning("precision %s %s; precision auto picks the fastest", s.precision, slow)
    return autocast


def memory_needed(autoencoder, images, settings):
    """Device bytes training needs: weights, gradients and AdamW's two moments, the IMAGE batch (a dataset's
    works stay on the CPU), and a step's activations. Asked of ComfyUI before training (bridge.compute_device)."""
    if not isinstance(images, WorkFolder) and not (isinstance(images, torch.Tensor) and images.ndim == 4):
        return 0   # not images at all: the Trainer says what is wrong
    ch, cw = data_crop(autoencoder.model, images, settings.crop_size)
    resident = 0 if isinstance(images, WorkFolder) else images[..., :3].numel() * 4
    step = step_bytes_per_image(autoencoder.config, (ch, cw)) * settings.batch_size
    return int(4 * autoencoder.nbytes() + resident + step)
