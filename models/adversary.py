"""The ``sharp`` loss's adversary: a small patch discriminator trained from scratch beside the autoencoder.

MSE averages every plausible detail into grey; a discriminator that judges local patches as "real
texture" or "reconstruction" pushes the decoder to paint detail instead (the recipe of VQGAN and
SD's VAE, without their pretrained perceptual network, which cannot ship in a node pack). With tens
of images a discriminator memorises them within a few hundred steps, so both its inputs pass
through the same kind of differentiable augmentation (DiffAugment, Zhao et al. 2020).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .optim import adamw, load_optimizer_state, optimizer_state

DISC_WIDTH = 32       # channels of the first layer (doubling twice)
DISC_LR_RATIO = 1.0   # the discriminator's learning rate relative to the autoencoder's
DISC_BETAS = (0.5, 0.9)  # Adam's usual GAN setting (DCGAN, VQGAN): short memory for a moving target
ADV_WEIGHT = 0.5      # scale of the adaptively weighted adversarial term (VQGAN: 0.5-0.8). 1.0 pushed the finest-level
                      # SWD further alone (0.54-0.75x mse's at 48x) but painted a diagonal hatch locked to the latent
                      # grid; at 0.5 the decoder stays clean and grain.py adds the texture (0.32-0.40x, RESULTS.md)
MAX_ADAPTIVE = 1e4    # VQGAN's clamp on the gradient-norm ratio


class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix, VQGAN) scaled down: three stride-2 4x4 convolutions and a 3x3 scoring layer, one
    score per ~34-pixel patch. No normalisation layers: with batches of a few crops, batch statistics
    would tell real from fake by themselves."""

    MIN_SIDE = 8   # each of the three stride-2 4x4 convolutions needs at least 2 pixels in

    def __init__(self, channels=3, width=DISC_WIDTH):
        super().__init__()
        c = [channels, width, 2 * width, 4 * width]
        layers = []
        for i in range(3):
            layers += [nn.Conv2d(c[i], c[i + 1], 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        layers.append(nn.Conv2d(c[-1], 1, 3, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        # channels_last, as the autoencoder trains: oneDNN's convolutions run ~25% faster so (bench/RESULTS.md)
        return self.net((x * 2.0 - 1.0).contiguous(memory_format=torch.channels_last))


def expected_shapes(channels):
    """Tensor shapes of a discriminator for a model with this many channels (no memory allocated)."""
    with torch.device("meta"):
        d = PatchDiscriminator(channels)
    return {k: tuple(v.shape) for k, v in d.state_dict().items()}, [tuple(p.shape) for p in d.parameters()]


def diff_augment(x, generator, cell=1):
    """DiffAugment's colour + translation + cutout, differentiable in x, random draws from ``generator``
    (CPU) so a run is repeatable. Real and fake batches each get their own draws.

    Translations are whole latent cells (``cell`` pixels): the discriminator's stride-8 features then
    always sit at the same phase of a reconstruction's cell grid, so edges painted at the cell period
    look fake to it. Shifted by any pixel count it never learned that, and the decoder painted its
    detail as 8-pixel cells (bench/RESULTS.md, "Lapped linear decoding")."""
    b, dev = x.shape[0], x.device

    def rand(*shape):
        return torch.rand(shape, generator=generator).to(dev, x.dtype)

    x = x + (rand(b, 1, 1, 1) - 0.5)                                           # brightness
    if x.shape[1] == 3:
        m = x.mean(1, keepdim=True)
        x = (x - m) * (rand(b, 1, 1, 1) * 2) + m                               # saturation
    m = x.mean((1, 2, 3), keepdim=True)
    x = (x - m) * (rand(b, 1, 1, 1) + 0.5) + m                                 # contrast
    h, w = x.shape[-2:]
    # Translation by up to 1/8 of the side in whole cells (none where a cell is more than that), zero-filled:
    # one gather per axis.
    sy, sx = max(1, h // 8) // cell, max(1, w // 8) // cell
    ty = ((rand(b) * (2 * sy + 1)).long() - sy) * cell
    tx = ((rand(b) * (2 * sx + 1)).long() - sx) * cell
    rows = (torch.arange(h, device=dev)[None] + ty.view(-1, 1) + 1).clamp(0, h + 1)   # +1: the zero border
    cols = (torch.arange(w, device=dev)[None] + tx.view(-1, 1) + 1).clamp(0, w + 1)
    p = F.pad(x, (1, 1, 1, 1))
    p = p.gather(2, rows[:, None, :, None].expand(-1, p.shape[1], -1, w + 2))
    x = p.gather(3, cols[:, None, None, :].expand(-1, p.shape[1], h, -1))
    # Cutout: one zeroed rectangle of half the side.
    ch, cw = max(1, h // 2), max(1, w // 2)
    y0, x0 = (rand(b) * (h - ch + 1)).long().view(-1, 1, 1), (rand(b) * (w - cw + 1)).long().view(-1, 1, 1)
    yy, xx = torch.arange(h, device=dev).view(1, h, 1), torch.arange(w, device=dev).view(1, 1, w)
    hole = (yy >= y0) & (yy < y0 + ch) & (xx >= x0) & (xx < x0 + cw)
    return x * (~hole).unsqueeze(1).to(x.dtype)


def discriminator_loss(real_scores, fake_scores):
    """Hinge loss (Geometric GAN; VQGAN's default)."""
    return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()


def generator_loss(fake_scores):
    return -fake_scores.mean()


def adaptive_weight(rec_loss, adv_grad, recon, last_layer):
    """VQGAN's balance: the adversarial term is scaled so its gradient at the decoder's last layer is as
    large as the reconstruction's (times ADV_WEIGHT); detached, so it is a weight, not a loss. ``adv_grad`` is
    the adversarial loss's gradient at the reconstruction ``recon``, taken once (generator_grad)."""
    g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_adv = torch.autograd.grad(recon, last_layer, adv_grad, retain_graph=True)[0]
    w = g_rec.norm() / (g_adv.norm() + 1e-4)
    return ADV_WEIGHT * w.clamp(0.0, MAX_ADAPTIVE).detach()


class Adversary:
    """The discriminator and its optimizer, and the state of both that travels in the model file
    (``TrainState.adversary``: {"weights": {name: tensor}, "optimizer": {index: moments}})."""

    def __init__(self, channels, saved=None, device="cpu", cell=1, seed=0):
        with torch.random.fork_rng(devices=[]):   # the run's seed, not whatever ran before, draws the start
            torch.manual_seed(seed)
            self.net = PatchDiscriminator(channels).to(device, memory_format=torch.channels_last)
        self.cell = cell   # the autoencoder's downscale: diff_augment shifts by whole cells
        self.opt = adamw(self.net.parameters(), 1e-4, DISC_BETAS)
        if saved:
            self.net.load_state_dict(saved["weights"])
            load_optimizer_state(self.opt, saved.get("optimizer"), "discriminator optimizer")

    def state(self, with_optimizer=True):
        return {"weights": {k: v.detach().to("cpu").clone() for k, v in self.net.state_dict().items()},
                "optimizer": optimizer_state(self.opt) if with_optimizer else None}

    def load(self, state):
        self.net.load_state_dict(state["weights"])
        if state.get("optimizer") is None:  # after a blow-up: moments that led to it are not worth keeping
            self.opt.state.clear()

    def generator_grad(self, fake, generator):
        """The autoencoder's adversarial loss on its (augmented) reconstructions ``fake``, and its gradient at
        ``fake``: one backward pass through the discriminator, with no gradient for its own weights (its step
        makes those), instead of one for the balance and another inside the autoencoder's backward."""
        loss = generator_loss(self.net(diff_augment(fake, generator, self.cell)))
        return loss.detach(), torch.autograd.grad(loss, fake)[0]

    def step(self, real, fake, generator, lr):
        """One discriminator update on real crops vs detached reconstructions. Returns its loss, or None
        if the loss or the gradient was not finite (nothing is changed then)."""
        for group in self.opt.param_groups:
            group["lr"] = lr * DISC_LR_RATIO
        loss = discriminator_loss(self.net(diff_augment(real, generator, self.cell)),
                                  self.net(diff_augment(fake.detach(), generator, self.cell)))
        if not torch.isfinite(loss):
            return None
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if not torch.isfinite(torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)):
            return None
        self.opt.step()
        return loss.item()

    def finite(self):
        return all(torch.isfinite(p).all() for p in self.net.parameters())
