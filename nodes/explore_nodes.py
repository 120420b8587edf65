"""Nodes for looking into latent space: its main directions, moving along them, and seeing latents."""
import math

import torch
import torch.nn.functional as F

from ..models import memory
from ..models.formats import latent_samples
from ..models.latent_math import (LatentError, check_direction_batch, edit_along, latent_channel_grid,
                                  latent_directions, latent_rgb)
from ..models.plots import bar_chart, grid_shape, image_grid
from .base import AtelierNode
from .latent_nodes import with_samples
from .schema import COMBO, FLOAT, INT, LINK

DIRECTIONS = "DIRECTIONS"
VIEWS = ("pca-rgb", "channels")   # Visualize Latent's modes


class AtelierLatentDirections(AtelierNode):
    DISPLAY_NAME = "Latent Directions (Atelier)"
    SEARCH_ALIASES = ["pca", "principal components", "latent space", "variance", "analysis"]
    DESCRIPTION = ("Finds the main ways your works differ from each other (principal directions of their latents), "
                   "strongest first. Feed a batch of your encoded works; use Latent Edit to push any latent along "
                   "a direction.")
    RETURN_TYPES = (DIRECTIONS, "IMAGE")
    RETURN_NAMES = ("directions", "variance_chart")
    OUTPUT_TOOLTIPS = ("The directions (mean, unit directions, variance along each) for Latent Edit.",
                       "How much of the variation among your works each direction explains.")
    FUNCTION = "find"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "latents": LINK("LATENT", "A batch of 2 or more latents of the same size (your works, encoded)."),
            "max_directions": INT(8, 1, 64, "How many directions to keep (at most one fewer than the latents)."),
        }}

    @classmethod
    def batch_sizes(cls, latents, **_):
        check_direction_batch(latents)
        return (None, 1)

    def find(self, latents, max_directions):
        d = latent_directions(latent_samples(latents, "latents"), int(max_directions))
        share = d["variance"] / max(d["total_variance"], 1e-12)
        return (d, bar_chart(share.tolist(), title="share of variation explained by each direction"))


class AtelierLatentEdit(AtelierNode):
    DISPLAY_NAME = "Latent Edit (Atelier)"
    SEARCH_ALIASES = ["direction", "slider", "attribute", "latent arithmetic"]
    DESCRIPTION = ("Moves latents along directions found by Latent Directions, e.g. direction 0 by +2 makes a work "
                   "more like the 'strongest difference' among your works. Negative strengths go the other way.")
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("The moved latents.",)
    FUNCTION = "edit"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "latent": LINK("LATENT", "Latents to move (made by the same autoencoder)."),
            "directions": LINK(DIRECTIONS, "From Latent Directions."),
            "index": INT(0, 0, 63, "Which direction (0 = the strongest)."),
            "strength": FLOAT(1.0, -10.0, 10.0, "How far, in standard deviations of your works along it."),
        }, "optional": {
            "index_2": INT(1, 0, 63, "A second direction to move along at the same time."),
            "strength_2": FLOAT(0.0, -10.0, 10.0, "How far along the second direction (0 = not at all)."),
        }}

    @classmethod
    def batch_sizes(cls, latent, **_):
        return (latent,)

    def edit(self, latent, directions, index, strength, index_2=1, strength_2=0.0):
        moves = [(int(index), float(strength))] + ([(int(index_2), float(strength_2))] if strength_2 else [])
        return with_samples(latent, edit_along(latent_samples(latent), directions, moves))


class AtelierVisualizeLatent(AtelierNode):
    DISPLAY_NAME = "Visualize Latent (Atelier)"
    SEARCH_ALIASES = ["latent preview", "preview latent", "pca", "channels"]
    DESCRIPTION = ("Shows what the model 'sees': a latent's first three principal components as colours, or every "
                   "channel as a grey image.")
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The picture of the latent (enlarged so cells are visible).",)
    FUNCTION = "show"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "latent": LINK("LATENT", "Any latent."),
            "mode": COMBO(list(VIEWS), "pca-rgb: the three strongest patterns as red, green and blue. "
                          "channels: one grey tile per channel."),
            "scale": INT(8, 1, 64, "Enlargement: each latent cell becomes scale x scale pixels."),
        }}

    def show(self, latent, mode, scale):
        if mode not in VIEWS:   # headless prompts skip the dropdown's check
            raise LatentError(f"unknown mode {mode!r}; choose one of {', '.join(VIEWS)}")
        z = latent_samples(latent)
        b, c, h, w = z.shape
        # The working memory beside the picture, measured (peak RSS): pca-rgb holds a float64 copy of every value
        # and its centred copy, 16.1 bytes per value on a [1,256,512,512] latent (1.0 GB; 16 GB at 2048x2048), and
        # with few channels up to 96 bytes per cell for the projection and its quantiles; channels holds a
        # normalised float copy of the first latent beside its grid. Plus the float copy of a half-precision latent.
        if mode == "pca-rgb":
            shown, cells, work = z, b * h * w, b * h * w * (16 * c + 96)
        else:
            shown, cells, work = z[:1], math.prod(grid_shape(c, h, w, min(8, c), 1)[2:]), c * h * w * memory.FLOAT_BYTES
        work += 0 if z.dtype == torch.float32 else shown.numel() * memory.FLOAT_BYTES
        memory.check("scale", int(scale), lambda s: work + cells * s * s * 3 * memory.FLOAT_BYTES * 2,
                     advice="show fewer or smaller latents")
        if mode == "pca-rgb":
            img = latent_rgb(shown.float())
        else:
            tiles = latent_channel_grid(shown.float())
            img = image_grid(tiles, columns=min(8, tiles.shape[0]), padding=1)
        img = F.interpolate(img.movedim(-1, 1), scale_factor=int(scale), mode="nearest").movedim(1, -1)
        return (img.contiguous().to(torch.float32),)
