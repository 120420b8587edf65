"""Restore a damaged picture with a model trained to undo that damage."""
from ..models import codec
from ..models.codec import CodecError
from ..models.formats import check_mask_batch
from ..models.restore import restore
from . import bridge
from .base import AtelierNode
from .schema import AUTOENCODER, INT, LINK


class AtelierRestore(AtelierNode):
    DISPLAY_NAME = "Restore Damaged Image (Atelier)"
    SEARCH_ALIASES = ["restore", "repair", "denoise", "inpaint", "fix damage", "autoencoder"]
    DESCRIPTION = ("Repairs damaged pictures with an autoencoder trained with a corruption (Train Autoencoder's "
                   "corruption input: noise, holes, blocks, blur). Connect a mask of the damage (paint it in the "
                   "mask editor of Load Image) to re-make only those pixels and keep the rest exactly; without a "
                   "mask the whole picture is cleaned.")
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("restored",)
    OUTPUT_TOOLTIPS = ("The repaired pictures, the same size as the input.",)
    FUNCTION = "restore"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "autoencoder": LINK(AUTOENCODER, "A model trained with a corruption that matches the damage (holes "
                                "for missing areas, noise for grain, ...)."),
            "images": LINK("IMAGE", "The damaged pictures."),
            "passes": INT(2, 1, 16, "With a mask: how often the guess for the damaged area is fed back in. "
                          "More passes fill large holes more smoothly."),
        }, "optional": {
            "mask": LINK("MASK", "Where the damage is (white = missing or damaged). Load Image gives the painted or "
                         "transparent areas as this mask; an empty one (nothing painted) counts as no mask."),
        }}

    @classmethod
    def batch_sizes(cls, images, mask=1, **_):
        check_mask_batch(mask, images, "an image", CodecError)
        return (images,)

    def restore(self, autoencoder, images, passes, mask=None):
        device = bridge.compute_device(codec.memory_needed(autoencoder))
        return (restore(autoencoder, images, mask, int(passes), device,
                        bridge.progress_bar(1).update_absolute),)
