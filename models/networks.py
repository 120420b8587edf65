"""The three architectures. Every model maps images [B,C,H,W] in 0..1 to latents and back.

``DenseAutoencoder`` is the seed's MLP (784-64-32-16 for MNIST) generalised to any size and
channel count; ``ConvAutoencoder`` is a TAESD-style fully convolutional autoencoder (residual 3x3
blocks, no norm layers) that starts with a pixel-unshuffle and ends with a pixel-shuffle, so no
convolution runs at full resolution; ``ConvVAE`` adds a mean/log-variance head. They are written
plainly; speedups.py swaps in the fast modules (Autoencoder does, for every network it holds).

Each class states the facts the rest of the pack asks of an architecture (class attributes and
methods below); ``ARCHITECTURES`` at the end is the one registry of their config names.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import interrupt
from .layers import blocks, conv3, reach, upsample
from .pca import principal_components


class AutoencoderNet(nn.Module):
    """Shared plumbing: channel conversion, the public encode/decode contract, and the architecture's facts."""

    variational = False       # new latents come from N(0, 1) (the VAE prior), not from training statistics
    fixed_size = False        # takes only image_size x image_size pictures (no downscale, no tiles)
    starts_from_pca = False   # training a fresh model first sets its linear path to PCA of the images
    autocast = True           # "auto" precision may run it in bf16/fp16 where the hardware is faster so
    memory_format = torch.channels_last   # the layout its batches and weights train in
    defaults = {}             # config values that differ from default_config's for this architecture

    def __init__(self, config):
        super().__init__()
        self.channels = config["channels"]
        self.latent_channels = config["latent_channels"]
        self.downscale = 1 if self.fixed_size else config["downscale"]
        self.image_size = config["image_size"]

    def latent_shape(self, height, width):
        """Shape [C, h, w] of the latent of one image of the given size."""
        return [self.latent_channels, height // self.downscale, width // self.downscale]

    def compression(self):
        """How many input values each latent value stands for (for display)."""
        return self.channels * self.downscale ** 2 / self.latent_channels

    def context_cells(self):
        """(encoder, decoder) receptive-field radius in latent cells: the context a tile needs."""
        enc, _ = reach(self.encoder)
        dec, _ = reach(self.decoder)
        return math.ceil(enc / self.downscale), math.ceil(dec)

    def to_model_channels(self, x):
        """RGB batch -> the model's own channel count (luma for grayscale models)."""
        if self.channels == 1 and x.shape[1] == 3:
            return (x * x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        return x

    def encode(self, x):
        """Images [B,3,H,W] in 0..1 -> latents (the mean, for a VAE)."""
        return self.encode_moments(self.to_model_channels(x))[0]

    def decode(self, z):
        """Latents -> RGB images [B,3,H,W] clamped to 0..1."""
        y = self.decode_raw(z)
        # decode_raw's result is fresh: without autograd, clamp it in place (one full-size copy fewer).
        y = y.clamp(0, 1) if torch.is_grad_enabled() else y.clamp_(0, 1)
        return y.expand(-1, 3, -1, -1) if y.shape[1] == 1 else y

    def reconstruct(self, x):
        """x in model channels -> clamped reconstruction in model channels (for metrics)."""
        return self.decode_raw(self.encode_moments(x)[0]).clamp(0, 1)

    def training_forward(self, x, generator=None):
        """x already in model channels. Returns (raw reconstruction, KL term or None)."""
        mean, logvar = self.encode_moments(x)
        if logvar is None:
            return self.decode_raw(mean), None
        noise = torch.randn(mean.shape, generator=generator, device="cpu").to(mean)
        z = mean + torch.exp(0.5 * logvar) * noise
        m, lv = mean.float(), logvar.float()   # KL in float32 even under bf16 autocast
        kl = 0.5 * (m.square() + lv.exp() - 1.0 - lv).mean()
        return self.decode_raw(z), kl


class DenseAutoencoder(AutoencoderNet):
    fixed_size = True
    autocast = False   # its small matrix products gain less from bf16 than the casts cost
    memory_format = torch.contiguous_format
    defaults = dict(latent_channels=16, downscale=1, width=64, image_size=28, linear_reach=0)

    def __init__(self, config):
        super().__init__(config)
        d, w, z = self.channels * self.image_size ** 2, config["width"], config["latent_channels"]
        self.encoder = nn.Sequential(nn.Linear(d, w), nn.ReLU(), nn.Linear(w, w // 2), nn.ReLU(),
                                     nn.Linear(w // 2, z))
        self.decoder = nn.Sequential(nn.Linear(z, w // 2), nn.ReLU(), nn.Linear(w // 2, w), nn.ReLU(),
                                     nn.Linear(w, d))

    def encode_moments(self, x):
        return self.encoder(x.flatten(1))[:, :, None, None], None

    def decode_raw(self, z):
        return self.decoder(z.flatten(1)).view(-1, self.channels, self.image_size, self.image_size)

    def latent_shape(self, height, width):
        return [self.latent_channels, 1, 1]

    def compression(self):
        return self.channels * self.image_size ** 2 / self.latent_channels


def full_precision(x):
    """Switch autocast off (for layers whose rounding to bf16 would show in the picture)."""
    return torch.autocast(x.device.type, enabled=False)


class ConvAutoencoder(AutoencoderNet):
    """Two paths from image to latent and back.

    A linear path (a 1x1 projection of each downscale x downscale pixel block; in the decoder, each
    block from the codes of its cell and the ``linear_reach`` cells around it) can be set to a linear
    code of the training images (``init_linear_from``), so a fresh model starts at least as good as
    PCA; a residual conv pyramid beside it, whose last layers start at zero, learns what linear coding
    cannot (context across blocks, nonlinearity). Reading the neighbours' codes is what lets the linear
    decoder blend a block into the next: decoded one cell at a time (``linear_reach`` 0, files from
    before it) every block edge shows, and training only ever hid part of that 8-pixel grid.
    """

    starts_from_pca = True

    @staticmethod
    def level_channels(config):
        """Channels at each scale: doubling with depth, capped at 4x width."""
        levels = max(1, int(math.log2(config["downscale"])))
        return [min(config["width"] * 2 ** i, config["width"] * 4) for i in range(levels)]

    def __init__(self, config):
        super().__init__(config)
        c, z, n = self.level_channels(config), self.latent_channels, config["blocks"]
        levels = int(math.log2(self.downscale))
        # Scale 0 works at 1/2 resolution (after pixel-unshuffle) unless downscale is 1.
        stem = 1 if levels == 0 else 2
        cin = self.channels * stem * stem
        enc = ([nn.PixelUnshuffle(2)] if stem == 2 else []) + [conv3(cin, c[0]), nn.ReLU(), *blocks(c[0], n)]
        for i in range(1, len(c)):
            enc += [conv3(c[i - 1], c[i], stride=2), nn.ReLU(), *blocks(c[i], n)]
        enc.append(conv3(c[-1], z * (2 if self.variational else 1)))
        dec = [conv3(z, c[-1]), nn.ReLU(), *blocks(c[-1], n)]
        for i in range(len(c) - 1, 0, -1):
            dec += [upsample(), conv3(c[i], c[i - 1]), nn.ReLU(), *blocks(c[i - 1], n)]
        dec.append(conv3(c[0], cin))
        if stem == 2:
            dec.append(nn.PixelShuffle(2))
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)
        block = self.channels * self.downscale ** 2
        r = config["linear_reach"]
        self.enc_linear, self.dec_linear = nn.Conv2d(block, z, 1), nn.Conv2d(z, block, 2 * r + 1, padding=r)
        for last in (enc[-1], dec[-2] if stem == 2 else dec[-1]):
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        if self.variational:  # start with small posterior noise: log-variance -6
            nn.init.constant_(enc[-1].bias[z:], -6.0)

    def context_cells(self):
        enc, dec = super().context_cells()
        return enc, max(dec, math.ceil(reach(self.dec_linear)[0]))   # the linear decoder reads neighbouring cells too

    def linear_codes(self, x):
        """The linear path's codes of images in -1..1: the 1x1 projection of pixel-unshuffled blocks, as one
        f x f stride-f convolution (no reshuffled copy)."""
        w = self.enc_linear.weight.view(self.latent_channels, -1, self.downscale, self.downscale)
        return F.conv2d(x.float(), w, self.enc_linear.bias, stride=self.downscale)

    def encode_moments(self, x):
        x = x.mul(2.0).sub_(1.0)
        h = self.encoder(x)
        with full_precision(x):  # the linear path carries most of the image: keep it out of bf16
            linear = self.linear_codes(x)
        if not self.variational:
            return h + linear, None
        mean, logvar = h.chunk(2, dim=1)
        return mean + linear, logvar.clamp(-30.0, 20.0)

    def decode_raw(self, z):
        with full_precision(z):
            linear = F.pixel_shuffle(self.dec_linear(z.float()), self.downscale)
        return linear.add_(self.decoder(z)).add_(0.5)   # in place: no more full-size float32 copies

    @torch.no_grad()
    def init_linear_from(self, images, max_rows=200_000):
        """Set the linear path to a linear code of the images ([N,C,H,W] in 0..1, H and W divisible by f): the
        encoder to PCA of their pixel blocks, the decoder to the least-squares map from each cell's code
        neighbourhood to its block (PCA's own mirror when it reads one cell: the least-squares answer then)."""
        x = self.to_model_channels(images).float() * 2.0 - 1.0
        u = F.pixel_unshuffle(x, self.downscale)
        rows = u.movedim(1, -1).reshape(-1, u.shape[1])
        if rows.shape[0] > max_rows:
            rows = rows[torch.randperm(rows.shape[0], generator=torch.Generator().manual_seed(0))[:max_rows]]
        mean, components, _ = principal_components(rows, self.latent_channels)
        basis = rows.new_zeros(self.latent_channels, rows.shape[1], dtype=torch.float64)
        basis[:len(components)] = components   # more latent channels than block values: the rest stay zero
        basis, mean = basis.float(), mean.float()
        self.enc_linear.weight.copy_(basis[:, :, None, None])
        self.enc_linear.bias.copy_(-(basis @ mean))
        if self.dec_linear.kernel_size[0] == 1:
            weight, bias = basis.T[:, :, None, None], mean
        else:
            weight, bias = lapped_fit(self.linear_codes(x), u, self.dec_linear.padding[0], max_rows)
        # The decoder works in 0..1 (offset 0.5 added in decode_raw): halve the [-1,1] reconstruction.
        self.dec_linear.weight.copy_(weight / 2.0)
        self.dec_linear.bias.copy_(bias / 2.0)


LAPPED_FLOPS = 1 << 37   # bound on a lapped fit's normal equations (seconds on 2 cores even at 256 latent channels)
LAPPED_RIDGE = 1e-4      # relative ridge: keeps channels PCA left empty (and near-empty ones) at zero weight


def lapped_fit(codes, blocks, reach, max_rows):
    """Least-squares weights [B, Z, k, k] and bias [B] of a k x k convolution (k = 2 * reach + 1, zero padding,
    as the decoder's) that maps latent codes [N,Z,h,w] to pixel blocks [N,B,h,w], from at most ``max_rows``
    cells drawn with a fixed seed (fewer for wide latents, so the normal equations stay within LAPPED_FLOPS)."""
    n, z, h, w = codes.shape
    k = 2 * reach + 1
    feats = z * k * k + 1
    count = min(n * h * w, max_rows, max(1, LAPPED_FLOPS // feats ** 2))
    picks = torch.randperm(n * h * w, generator=torch.Generator().manual_seed(0))[:count].to(codes.device)
    padded = F.pad(codes, (reach,) * 4)
    offsets = torch.arange(k, device=codes.device)
    xtx = codes.new_zeros(feats, feats, dtype=torch.float64)
    xty = codes.new_zeros(feats, blocks.shape[1], dtype=torch.float64)
    for part in picks.split(max(1, (1 << 22) // feats)):   # 32 MB of float64 rows at a time, Cancel between
        interrupt.check()
        i, yx = part // (h * w), part % (h * w)
        y, x = yx // w, yx % w
        near = padded[i[:, None, None], :, y[:, None, None] + offsets[:, None], x[:, None, None] + offsets]
        rows = torch.cat([near.permute(0, 3, 1, 2).reshape(len(part), -1), near.new_ones(len(part), 1)], 1).double()
        xtx.addmm_(rows.T, rows)
        xty.addmm_(rows.T, blocks[i, :, y, x].double())
    ridge = LAPPED_RIDGE * xtx.diagonal()[:-1].mean().clamp_min(1e-12)
    xtx[:-1, :-1] += ridge * torch.eye(feats - 1, dtype=xtx.dtype, device=xtx.device)
    solution = torch.linalg.solve(xtx, xty)   # [feats, B]
    weight = solution[:-1].T.reshape(-1, z, k, k)
    return weight.float(), solution[-1].float()


class ConvVAE(ConvAutoencoder):
    """The conv model with a log-variance head. No PCA start: PCA latents decode each cell to its own
    pixel block, so prior samples come out blocky."""

    variational = True
    starts_from_pca = False


# The one registry: config name -> network class, in the order the New Autoencoder node lists them.
ARCHITECTURES = {"conv": ConvAutoencoder, "conv-vae": ConvVAE, "dense": DenseAutoencoder}


def network_class(config):
    """The class of a validated config's network (its facts, without building it)."""
    return ARCHITECTURES[config["architecture"]]


def build_network(config):
    """A freshly initialised network for a validated config."""
    return network_class(config)(config)
