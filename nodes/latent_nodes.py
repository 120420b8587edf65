"""Nodes between pictures and latents: encode, decode, and the latent maths artists wire between them."""
import math

import torch

from ..models import codec, memory, tiling
from ..models.errors import AtelierError
from ..models.formats import check_mask_batch, latent_labels, latent_samples
from ..models.grain import MAX_AMOUNT
from ..models.latent_prior import WORKING_COPIES
from ..models.latent_math import (EASINGS, MIX_MODES, SPLITS, LatentError, check_keyframes, collage, fit_mask, mix,
                                  paired_batch, sample_latents, split_mask, style_mix, walk)
from . import bridge
from .base import AtelierNode
from .schema import AUTOENCODER, COMBO, FLOAT, INT, LINK, SEED


def with_samples(latent, samples):
    """A copy of ``latent`` with new samples, keeping its extra keys like ComfyUI's latent nodes do. ComfyUI's
    per-latent keys must line up with the batch: when its size changes (a walk's frames, variations, one latent
    mixed with a batch) batch_index goes (its sampler would draw noise for the old count and fail) and so does a
    noise_mask other than one mask for all (which latent each belonged to is gone)."""
    out = latent.copy()
    if latent["samples"].shape[0] != samples.shape[0]:
        out.pop("batch_index", None)
        mask = out.get("noise_mask")
        if not (isinstance(mask, torch.Tensor) and mask.ndim >= 3 and mask.shape[0] == 1):
            out.pop("noise_mask", None)
    out["samples"] = samples
    return (out,)


# Sampling with a latent prior (prior_nodes.py)
PASSES = 2      # quilting or patch-matching passes: 2 is clean, 1 faster
MAX_PASSES = 16


def sampling_steps(steps):
    """``steps`` as a pass count, refused with what to use when out of range (headless prompts skip widgets)."""
    if not 1 <= int(steps) <= MAX_PASSES:
        raise AtelierError(f"steps is {steps}; use 1..{MAX_PASSES} passes "
                           f"({PASSES} is a good start)")
    return int(steps)


def check_steps(steps):
    """VALIDATE_INPUTS' answer for a steps widget (a linked value is checked when the node runs)."""
    return True if not isinstance(steps, int) or 1 <= steps <= MAX_PASSES else \
        f"steps must be 1..{MAX_PASSES} ({PASSES} is a good start)"


def STEPS(tooltip):
    return INT(PASSES, 1, MAX_PASSES, tooltip)


class AtelierEncode(AtelierNode):
    DISPLAY_NAME = "Encode to Latent with Autoencoder (Atelier)"
    SEARCH_ALIASES = ["latent", "vae encode", "image to latent", "compress"]
    DESCRIPTION = ("Turns images into latents with your autoencoder: the compact code you can mix, blend, "
                   "upscale and decode. Works with ComfyUI's own latent nodes.")
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("The images' latents (a batch, one per image).",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "autoencoder": LINK(AUTOENCODER, "The autoencoder that makes the latents."),
            "images": LINK("IMAGE", "Images to encode."),
        }, "optional": {
            "fit": COMBO(list(codec.FITS), "When the size is not a multiple of the model's downscale: pad "
                         "(mirror the edges, removed again on decode), crop the edges, resize slightly, or stop "
                         "with an error. Dense models need resize for images of another size.", advanced=True),
            "refine_steps": INT(0, 0, 1000, "After encoding, fit each latent to its image through the decoder for "
                                "this many steps: a closer reconstruction for more time (30 steps take about as "
                                "long as 30 training steps on one image). Each image keeps the best latent found, "
                                "so it never gets worse. 0 = plain encoding.", advanced=True),
        }}

    @classmethod
    def batch_sizes(cls, images, **_):
        return (images,)

    def encode(self, autoencoder, images, fit="pad", refine_steps=0):
        device = bridge.compute_device(codec.memory_needed(autoencoder))
        pbar = bridge.progress_bar(1)   # per pass or tile (large paintings take a while), then per refine step
        steps, done = int(refine_steps), [0]
        total = steps * (images.shape[0] if isinstance(images, torch.Tensor) and images.ndim == 4 else 1)

        def refined():   # before every refinement step (refine.py checks Cancel itself)
            done[0] += 1
            pbar.update_absolute(min(done[0], total), total)

        return (codec.encode(autoencoder, images, fit, device, pbar.update_absolute, steps, refined),)


class AtelierDecode(AtelierNode):
    DISPLAY_NAME = "Decode Latent with Autoencoder (Atelier)"
    SEARCH_ALIASES = ["latent", "vae decode", "latent to image", "reconstruct"]
    DESCRIPTION = "Turns latents back into images with your autoencoder."
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("The decoded images.",)
    FUNCTION = "decode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "autoencoder": LINK(AUTOENCODER, "The autoencoder whose latents these are."),
            "latent": LINK("LATENT", "Latents that Encode to Latent with Autoencoder made with this same "
                           "autoencoder (mixed, blended or otherwise edited as you like)."),
        }, "optional": {
            "grain": FLOAT(1.0, 0.0, MAX_AMOUNT, "Models trained with loss sharp paint back the fine brushwork their "
                           "latents cannot hold as grain, where the picture is busy (measured on your works when "
                           "training ended). 1 = that amount, 0 = off (the smoothest picture, closest to the "
                           "original pixel for pixel), 2 = twice. No effect on models trained with another loss.",
                           step=0.05, advanced=True),
        }}

    @classmethod
    def batch_sizes(cls, latent, **_):
        return (latent,)

    def decode(self, autoencoder, latent, grain=1.0):
        source = latent_labels(latent)[0]
        if source and source != autoencoder.model_id:
            bridge.log.warning("%s: this latent was made by a different autoencoder; decoding anyway",
                               self.error_prefix())
        z = codec.check_latent(autoencoder, latent)
        memory.check("the latent's batch size", z.shape[0],
                     lambda b: codec.decoded_bytes(autoencoder, z[:1]) * b + tiling.MEMORY_BUDGET,
                     advice="decode smaller latents (a smaller size or fewer frames upstream)")
        device = bridge.compute_device(codec.memory_needed(autoencoder))
        progress = bridge.progress_bar(1).update_absolute
        return (codec.decode(autoencoder, latent, device, progress, grain),)


class AtelierLatentMix(AtelierNode):
    DISPLAY_NAME = "Latent Mix (Atelier)"
    SEARCH_ALIASES = ["mix", "blend", "interpolate", "slerp", "lerp", "combine", "latent math"]
    DESCRIPTION = ("Mixes two latents. lerp/slerp blend from A (factor 0) to B (factor 1); slerp keeps the "
                   "latent's strength in the middle. add/subtract add or remove B. difference-add adds what "
                   "makes B different from C (or B's details, if C is empty) to A.")
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("The mixed latent (keeps latent A's extra settings).",)
    FUNCTION = "mix"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "latent_a": LINK("LATENT", "The base latent."),
            "latent_b": LINK("LATENT", "The latent mixed in. Resized to A's size if needed; a single latent "
                             "is mixed into every latent of A's batch."),
            "factor": FLOAT(0.5, -4.0, 4.0, "How much of B: 0 = only A, 1 = only B (lerp/slerp); beyond 0..1 "
                            "extrapolates. For add/subtract/difference-add, B's scale."),
            "mode": COMBO(list(MIX_MODES), "How to combine A and B (see the node description)."),
        }, "optional": {
            "latent_c": LINK("LATENT", "difference-add only: the reference subtracted from B."),
        }}

    @classmethod
    def batch_sizes(cls, latent_a, latent_b, latent_c=1, **_):   # no latent_c: pairs with anything, as a single one
        return (paired_batch(latent_a, latent_b, latent_c),)

    def mix(self, latent_a, latent_b, factor, mode, latent_c=None):
        samples = mix(latent_samples(latent_a, "latent_a"), latent_samples(latent_b, "latent_b"), factor, mode,
                      latent_samples(latent_c, "latent_c") if latent_c is not None else None)
        return with_samples(latent_a, samples)


class AtelierLatentWalk(AtelierNode):
    DISPLAY_NAME = "Latent Walk (Atelier)"
    SEARCH_ALIASES = ["animation", "morph", "interpolate", "in-between", "tween", "frames", "loop"]
    DESCRIPTION = ("Makes a smooth journey through your latents: give it a batch of keyframe latents (e.g. several "
                   "artworks encoded at once) and it makes the in-between frames. Decode them and save as an "
                   "animation (Save Animated WEBP) or lay them out with Image Grid.")
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("All frames as one latent batch, keyframes included.",)
    FUNCTION = "walk"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "keyframes": LINK("LATENT", "A batch of 2 or more latents to travel through, in order."),
            "frames": INT(16, 2, 4096, "Total number of frames to make."),
            "method": COMBO(["slerp", "lerp"], "slerp keeps the latent's strength between keyframes (no washed-out "
                            "middle); lerp is a straight cross-fade."),
            "easing": COMBO(list(EASINGS), "Pacing between keyframes: linear is constant speed; ease-in-out and "
                            "cosine linger on each keyframe."),
            "loop": ("BOOLEAN", {"default": False, "tooltip": "Travel back to the first keyframe at the end, for "
                                 "seamless looping animations."}),
        }}

    @classmethod
    def batch_sizes(cls, keyframes, frames, **_):
        check_keyframes(keyframes)
        return (frames,)

    def walk(self, keyframes, frames, method, easing, loop):
        keys = latent_samples(keyframes, "keyframes")
        per_frame = keys[0].numel() * memory.FLOAT_BYTES * 2   # the frames, then joined into one batch
        memory.check("frames", int(frames), lambda f: f * per_frame, lowest=2, advice="walk through smaller latents")
        return with_samples(keyframes, walk(keys, int(frames), method, easing, bool(loop)))


class AtelierLatentStyleMix(AtelierNode):
    DISPLAY_NAME = "Latent Style Mix (Atelier)"
    SEARCH_ALIASES = ["style transfer", "adain", "colour transfer", "color transfer", "texture", "mix"]
    DESCRIPTION = ("Re-styles one work with another: gives the content latent the colour and texture statistics "
                   "(per-channel mean and spread, as in AdaIN) of the style latent, keeping its layout. A mask "
                   "limits where it applies.")
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("The re-styled content latent.",)
    FUNCTION = "style"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "content": LINK("LATENT", "The latent whose composition is kept."),
            "style": LINK("LATENT", "The latent whose colour and texture statistics are taken."),
            "strength": FLOAT(1.0, 0.0, 2.0, "0 = unchanged, 1 = the style's statistics exactly; above 1 "
                              "exaggerates."),
        }, "optional": {
            "mask": LINK("MASK", "Where to apply the style (white = fully); resized to the latent grid."),
        }}

    @classmethod
    def batch_sizes(cls, content, style, mask=1, **_):
        check_mask_batch(mask, content, "a latent", LatentError)
        return (paired_batch(content, style),)

    def style(self, content, style, strength, mask=None):
        z = latent_samples(content, "content")
        m = fit_mask(mask, z) if mask is not None else None
        return with_samples(content, style_mix(z, latent_samples(style, "style"), float(strength), m))


class AtelierLatentCollage(AtelierNode):
    DISPLAY_NAME = "Latent Collage (Atelier)"
    SEARCH_ALIASES = ["collage", "mix", "mask", "composite", "split", "combine"]
    DESCRIPTION = ("Cuts and joins two latents, so part of a picture comes from one work and part from another: "
                   "along a split (left/right, top/bottom, a circle, a diagonal) or through a mask you painted. "
                   "The seam is blended by feathering and then healed by the decoder.")
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("Latent A where the mask is white (or on A's side of the split), latent B elsewhere.",)
    FUNCTION = "collage"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "latent_a": LINK("LATENT", "Shown where the mask is white: left, top, inside the circle or before the "
                             "diagonal."),
            "latent_b": LINK("LATENT", "Shown on the other side (resized to A's size if needed)."),
            "split": COMBO(list(SPLITS), "Where to cut when no mask is connected."),
            "position": FLOAT(0.5, 0.0, 1.0, "Where the cut lies: 0..1 of the width (left-right), the height "
                              "(top-bottom), the circle's radius or along the diagonal."),
            "feather": FLOAT(1.0, 0.0, 16.0, "Softness of the seam, in latent cells (one cell = downscale "
                             "pixels)."),
        }, "optional": {
            "mask": LINK("MASK", "A painted cut (e.g. Load Image's mask from the mask editor); replaces split. Any "
                         "size, resized to the latent grid."),
        }}

    @classmethod
    def batch_sizes(cls, latent_a, latent_b, mask=1, **_):
        check_mask_batch(mask, latent_a, "a latent", LatentError)
        return (paired_batch(latent_a, latent_b),)

    def collage(self, latent_a, latent_b, split, position, feather, mask=None):
        a = latent_samples(latent_a, "latent_a")
        cut = mask if mask is not None else split_mask(split, float(position), *a.shape[-2:])
        b = latent_samples(latent_b, "latent_b")
        return with_samples(latent_a, collage(a, b, fit_mask(cut, a, float(feather))))


class AtelierSampleLatent(AtelierNode):
    DISPLAY_NAME = "Sample Latent (Atelier)"
    SEARCH_ALIASES = ["random", "generate", "noise", "prior", "new images", "sample the autoencoder"]
    DESCRIPTION = ("Invents new latents for an autoencoder. With a latent prior (Train Latent Prior) they are new "
                   "pictures in the style of your works, at any size; without one they come from random noise for a "
                   "conv-vae, and for other models from the statistics of the latents of the images it was trained "
                   "on. Decode them to see the pictures.")
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("New latents, ready for Decode or any latent node.",)
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "autoencoder": LINK(AUTOENCODER, "The (trained) autoencoder to sample latents for."),
            "batch_size": INT(4, 1, 256, "How many latents."),
            "width": INT(256, 8, 8192, "Width in pixels of the decoded images (conv models).", step=8),
            "height": INT(256, 8, 8192, "Height in pixels of the decoded images (conv models).", step=8),
            "seed": SEED("Seed for the random numbers; the same seed gives the same latents."),
            "temperature": FLOAT(1.0, 0.0, 3.0, "Spread: lower stays near your works (without a prior: near "
                                 "their average), higher is wilder. With a latent prior, 0 joins one work's pieces as "
                                 "they fit best, 1 (the default) a little more freely, and higher lets pieces that fit "
                                 "ever worse meet: a wilder patchwork."),
        }, "optional": {
            "steps": STEPS("With a latent prior: quilting passes (the second cleans the seams between blocks); 2 is "
                           "clean, 1 is faster."),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, steps=PASSES):
        return check_steps(steps)

    @classmethod
    def batch_sizes(cls, batch_size, **_):
        return (batch_size,)

    def sample(self, autoencoder, batch_size, width, height, seed, temperature, steps=PASSES):
        net, stats, prior = autoencoder.model, autoencoder.state.latent_stats, autoencoder.prior
        variational = net.variational
        if not variational and not stats and prior is None:
            raise AtelierError("this model has no latent statistics yet; train it with Train Autoencoder (which "
                               "records them) before sampling")
        shape = [int(batch_size)] + net.latent_shape(int(height), int(width))
        if 0 in shape:
            raise AtelierError(f"{width}x{height} is smaller than the model's downscale")
        # Without a prior: the noise and the scaled result; a prior's quilting and GPNN hold many more copies.
        copies = WORKING_COPIES if prior is not None else 2
        per_latent = math.prod(shape[1:]) * memory.FLOAT_BYTES * copies
        memory.check("batch_size", shape[0], lambda b: b * per_latent, advice="lower width and height")
        if not 0 <= float(temperature) <= 3:
            raise AtelierError(f"temperature is {temperature}; use 0..3")
        g = torch.Generator().manual_seed(int(seed))
        if prior is not None:
            z = prior.sample(shape, g, float(temperature), sampling_steps(steps),
                             report=bridge.progress_bar(1).update_absolute)
        else:
            z = sample_latents(stats, shape, g, float(temperature), variational)
        return (codec.latent_of(autoencoder, z),)
