"""Nodes for the latent prior: learn it from the artist's works, and make variations of a work with it."""
import torch

from ..models import codec, memory
from ..models.errors import AtelierError
from ..models.formats import check_mask_batch, image_to_pil
from ..models.latent_math import LatentError, fit_mask
from ..models.latent_prior import WORKING_COPIES
from ..models.plots import image_grid
from ..models.prior_training import learn_prior
from . import bridge
from .base import AtelierNode, works_of
from .latent_nodes import PASSES, STEPS, check_steps, sampling_steps, with_samples
from .schema import AUTOENCODER, DATASET, FLOAT, INT, LINK, SEED

class AtelierTrainLatentPrior(AtelierNode):
    DISPLAY_NAME = "Train Latent Prior (Atelier)"
    SEARCH_ALIASES = ["prior", "generate", "new works", "train", "learn my style", "autoencoder"]
    DESCRIPTION = ("Learns your works' latents as a prior, so Sample Latent paints new works in your style, at any "
                   "size, instead of colour noise (new compositions quilted from blocks of your works' latents), and "
                   "Latent Variations can re-imagine a work. Works from one painting up to hundreds of full-resolution "
                   "works (connect Load Dataset Folder); no long training: it encodes the works at a few scales "
                   "(progress bar, Cancel). Run it on a model that already has a prior to add more works to it.")
    RETURN_TYPES = (AUTOENCODER, "IMAGE")
    RETURN_NAMES = ("autoencoder", "samples")
    OUTPUT_TOOLTIPS = ("A new autoencoder carrying the prior (the input is left as it was); save it to keep both.",
                       "Four samples from the prior at the works' size, decoded.")
    FUNCTION = "train"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "autoencoder": LINK(AUTOENCODER, "A trained conv or conv-vae autoencoder (Train Autoencoder first)."),
            "steps": STEPS("Quilting passes for the preview samples (saved with the prior; "
                           "Sample Latent and Latent Variations have their own steps): 2 is clean, 1 is faster."),
            "seed": SEED("Seed for the preview samples, and for where a dataset's squares are taken."),
        }, "optional": {
            "images": LINK("IMAGE", "Your works (the same ones the autoencoder learned, or more): one painting up "
                           "to hundreds of works, all one size (Load Image Folder makes them so); or connect a "
                           "dataset."),
            "dataset": LINK(DATASET, "Hundreds of full-resolution works of any size, from Load Dataset Folder; used "
                            "instead of images when connected. Each work is read once: scaled to crop_size (its "
                            "composition; a centre square) and one random crop_size square at each larger scale "
                            "(its brushwork), so memory stays small however large the works."),
            "crop_size": INT(128, 16, 4096, "Pixel size of a composition: works this size or smaller are used "
                             "whole; of larger works (a painting) the prior learns the layout at a few smaller "
                             "scales too, so big samples are pictures, not textures.", step=8),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, steps=PASSES):
        return check_steps(steps)

    def train(self, autoencoder, steps, seed, images=None, dataset=None, crop_size=128):
        steps = sampling_steps(steps)
        pbar = bridge.progress_bar(1)   # the length is known once the scales are
        done = [0]

        def on_progress():
            done[0] += 1
            pbar.update_absolute(done[0], max(done[0] + 1, 2))
            bridge.check_interrupted()

        ae = learn_prior(autoencoder, works_of(images, dataset), int(crop_size), steps, bridge.torch_device(),
                         on_progress, int(seed))
        p = ae.prior
        z = p.sample((4, p.channels, p.crop, p.crop), torch.Generator().manual_seed(int(seed)))
        samples = codec.decode(ae, codec.latent_of(ae, z), bridge.torch_device())
        pbar.update_absolute(done[0] + 1, done[0] + 1, ("JPEG", image_to_pil(image_grid(samples, columns=4)), 512))
        bridge.log.info("latent prior: %d works, %dx%d-cell compositions", p.summary["works"], p.crop, p.crop)
        return (ae, samples)


class AtelierLatentVariations(AtelierNode):
    DISPLAY_NAME = "Latent Variations (Atelier)"
    SEARCH_ALIASES = ["variations", "img2img", "inpaint", "regenerate", "remix", "autoencoder"]
    DESCRIPTION = ("Re-imagines encoded works: a share 'strength' of each work's places is re-laid with pieces of "
                   "the work itself that fit what is around them (the quilting Sample Latent uses with the latent "
                   "prior), so variations stay as crisp as the work: low strengths change a few places, 1 re-lays "
                   "all of it. With a mask only the painted region changes.")
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("batch_size variations of each input latent (work 1's first, then work 2's ...).",)
    FUNCTION = "vary"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "autoencoder": LINK(AUTOENCODER, "An autoencoder with a latent prior (Train Latent Prior)."),
            "latent": LINK("LATENT", "One or more works encoded with this autoencoder."),
            "strength": FLOAT(0.5, 0.0, 1.0, "How far to wander: the share of the work's places re-laid. 0 returns "
                              "the latent unchanged, 0.25 changes a few places, 1 re-lays all of it."),
            "seed": SEED("Seed for the places and pieces picked; the same seed gives the same variations."),
            "batch_size": INT(4, 1, 64, "Variations per work."),
        }, "optional": {
            "mask": LINK("MASK", "Only change where the mask is 1 (paint it in Load Image's mask editor); the rest "
                         "of the latent is returned exactly."),
            "steps": STEPS("Quilting passes: 2 re-fits every re-laid piece to its neighbours (clean), 1 is faster."),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, strength=0.5, steps=PASSES):
        if isinstance(strength, (int, float)) and not 0 <= strength <= 1:
            return "strength must be 0..1 (0 returns the latent unchanged)"
        return check_steps(steps)

    @classmethod
    def batch_sizes(cls, latent, batch_size, mask=1, **_):
        check_mask_batch(mask, latent, "a latent", LatentError)
        return (None if None in (latent, batch_size) else latent * batch_size,)

    def vary(self, autoencoder, latent, strength, seed, batch_size, mask=None, steps=PASSES):
        prior = autoencoder.prior
        if prior is None:
            raise AtelierError("this autoencoder has no latent prior; train one with Train Latent Prior")
        z = codec.check_latent(autoencoder, latent)
        if not 0 <= float(strength) <= 1:
            raise AtelierError(f"strength is {strength}; use 0..1")
        steps = sampling_steps(steps)
        per_work = z[0].numel() * memory.FLOAT_BYTES * WORKING_COPIES   # quilting's working set for each variation
        memory.check("batch_size", int(batch_size), lambda b: z.shape[0] * b * per_work,
                     advice="vary fewer or smaller latents")
        m = None
        if mask is not None:   # one mask for all works, or one per work
            m = fit_mask(mask, z)
            m = m.repeat_interleave(int(batch_size), 0) if m.shape[0] > 1 else m
        z = z.repeat_interleave(int(batch_size), 0)
        z = prior.vary(z, float(strength), torch.Generator().manual_seed(int(seed)), steps, m,
                       report=bridge.progress_bar(1).update_absolute)
        return with_samples(latent, z)
