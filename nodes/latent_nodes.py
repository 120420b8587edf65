"""Nodes between pictures and latents: encode, decode, mix."""
from ..models import codec
from ..models.latent_math import EASINGS, MIX_MODES, mix, walk
from . import bridge
from .schema import AUTOENCODER, CATEGORY, COMBO, FLOAT, INT, LINK


def with_samples(latent, samples):
    """A copy of ``latent`` with new samples, keeping its extra keys like ComfyUI's latent nodes do."""
    out = latent.copy()
    out["samples"] = samples
    return (out,)


class AtelierEncode:
    DESCRIPTION = ("Turns images into latents with your autoencoder: the compact code you can mix, blend, "
                   "upscale and decode. Works with ComfyUI's own latent nodes.")
    CATEGORY = CATEGORY
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
                         "with an error. Dense models need resize for images of another size."),
        }}

    def encode(self, autoencoder, images, fit="pad"):
        try:
            return (codec.encode(autoencoder, images, fit, bridge.torch_device()),)
        except codec.CodecError as e:
            raise ValueError(f"Atelier Encode: {e}") from None


class AtelierDecode:
    DESCRIPTION = "Turns latents back into images with your autoencoder."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("The decoded images.",)
    FUNCTION = "decode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "autoencoder": LINK(AUTOENCODER, "The autoencoder whose latents these are."),
            "latent": LINK("LATENT", "Latents made by Atelier Encode with the same autoencoder (mixed, blended "
                           "or otherwise edited as you like)."),
        }}

    def decode(self, autoencoder, latent):
        source = latent.get("atelier_model") if isinstance(latent, dict) else None
        if source and source != autoencoder.model_id:
            bridge.log.warning("Atelier Decode: this latent was made by a different autoencoder; decoding anyway")
        try:
            return (codec.decode(autoencoder, latent, bridge.torch_device()),)
        except codec.CodecError as e:
            raise ValueError(f"Atelier Decode: {e}") from None


class AtelierLatentMix:
    DESCRIPTION = ("Mixes two latents. lerp/slerp blend from A (factor 0) to B (factor 1); slerp keeps the "
                   "latent's strength in the middle. add/subtract add or remove B. difference-add adds what "
                   "makes B different from C (or B's details, if C is empty) to A.")
    CATEGORY = CATEGORY
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

    def mix(self, latent_a, latent_b, factor, mode, latent_c=None):
        try:
            samples = mix(latent_a["samples"], latent_b["samples"], factor, mode,
                          latent_c["samples"] if latent_c is not None else None)
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"Atelier Latent Mix: {e}") from None
        return with_samples(latent_a, samples)


class AtelierLatentWalk:
    DESCRIPTION = ("Makes a smooth journey through your latents: give it a batch of keyframe latents (e.g. several "
                   "artworks encoded at once) and it makes the in-between frames. Decode them and save as an "
                   "animation (Save Animated WEBP) or lay them out with Image Grid.")
    CATEGORY = CATEGORY
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

    def walk(self, keyframes, frames, method, easing, loop):
        try:
            samples = walk(keyframes["samples"], int(frames), method, easing, bool(loop))
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"Atelier Latent Walk: {e}") from None
        return with_samples(keyframes, samples)
