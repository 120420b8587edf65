"""Restore Damaged Image: masked holes are re-made, known pixels kept exactly, held-out PSNR goes up."""
import pytest
import torch

from autoencoder_atelier.models.losses import psnr
from autoencoder_atelier.models.train import TrainSettings, train
from autoencoder_atelier.nodes import NODE_CLASS_MAPPINGS
from helpers import procedural, refusal, tiny_ae

restore = NODE_CLASS_MAPPINGS["AtelierRestore"]().restore


def holes_mask(n, size, seed=7):
    """1-3 rectangles per image, like a scratched or torn painting."""
    g = torch.Generator().manual_seed(seed)
    m = torch.zeros(n, size, size)
    for i in range(n):
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            h, w = (int(v) for v in torch.randint(size // 8, size // 3, (2,), generator=g))
            t, l = (int(v) for v in torch.randint(0, size - max(h, w), (2,), generator=g))
            m[i, t:t + h, l:l + w] = 1
    return m


@pytest.fixture(scope="module")
def hole_model():
    return train(tiny_ae("conv", downscale=4, latent_channels=8, width=16), procedural(24, 48),
                 TrainSettings(steps=150, batch_size=8, learning_rate=3e-3, corruption="holes",
                               corruption_strength=0.5))


def test_masked_restore_keeps_known_pixels_and_beats_the_damaged_input(hole_model):
    clean = procedural(32, 48)[24:]                      # held out: never seen in training
    mask = holes_mask(len(clean), 48)
    damaged = clean * (1 - mask[..., None])               # holes black, as a torn-out area
    (restored,) = restore(hole_model, damaged, 2, mask=mask)
    keep = (mask == 0)[..., None].expand_as(clean)
    assert torch.equal(restored[keep], damaged[keep])   # outside the holes nothing changes
    as_nchw = lambda t: t.movedim(-1, 1)
    grey_fill = damaged + 0.5 * mask[..., None]
    before, after = psnr(as_nchw(grey_fill), as_nchw(clean)), psnr(as_nchw(restored), as_nchw(clean))
    print(f"holes: grey fill {before:.2f} dB -> restored {after:.2f} dB")
    assert after > before + 1.0


def test_restore_without_a_mask_remakes_the_whole_picture_at_its_own_size(hole_model):
    odd = procedural(2, 50)                                # not a multiple of the downscale
    (out,) = restore(hole_model, odd, 1)
    assert out.shape == (2, 50, 50, 3) and not torch.equal(out, odd)
    assert out.min() >= 0 and out.max() <= 1


def test_an_all_zero_mask_means_no_mask_and_each_image_gets_its_own_kind(hole_model):
    # Load Image gives an all-zero MASK for an opaque picture: that must clean it, not return it unchanged.
    imgs = procedural(2, 48)
    (unmasked,) = restore(hole_model, imgs, 2)
    (zero,) = restore(hole_model, imgs, 2, mask=torch.zeros(1, 48, 48))
    assert not torch.equal(zero, imgs) and torch.allclose(zero, unmasked, atol=1e-6)
    mask = torch.zeros(2, 48, 48)
    mask[1, 10:20, 10:20] = 1                          # only the second picture has marked damage
    (mixed,) = restore(hole_model, imgs, 2, mask=mask)
    assert torch.allclose(mixed[0], unmasked[0], atol=1e-6)
    assert torch.equal(mixed[1][mask[1] == 0], imgs[1][mask[1] == 0]) and not torch.equal(mixed[1], imgs[1])


def test_restore_inputs_are_left_alone_and_bad_masks_are_explained(hole_model):
    imgs, mask = procedural(2, 32), holes_mask(2, 32)
    before_i, before_m = imgs.clone(), mask.clone()
    restore(hole_model, imgs, 2, mask=mask)
    assert torch.equal(imgs, before_i) and torch.equal(mask, before_m)
    (small_mask,) = restore(hole_model, imgs, 1, mask=mask[:1, ::2, ::2])   # any size, one mask for all
    assert small_mask.shape == imgs.shape
    with pytest.raises(ValueError, match=refusal("AtelierRestore",
                                                 "a mask batch of 3 does not fit an image batch of 2")):
        restore(hole_model, imgs, 1, mask=torch.ones(3, 32, 32))
    with pytest.raises(ValueError, match=refusal("AtelierRestore", "a mask must be")):
        restore(hole_model, imgs, 1, mask=torch.ones(1, 1, 32, 32))


def test_few_shot_one_painting_by_crops_learns_the_whole_painting():
    """Few-shot: one 128x128 painting, trained only on 32x32 crops, is re-made whole far better than after
    one step (the crops generalise to the full picture and its unseen crop combinations)."""
    painting = procedural(1, 128, seed=5)
    settings = dict(batch_size=16, learning_rate=3e-3, crop_size=32)
    early = train(tiny_ae("conv", downscale=4, latent_channels=8, width=16), painting,
                  TrainSettings(steps=1, **settings))
    late = train(tiny_ae("conv", downscale=4, latent_channels=8, width=16), painting,
                 TrainSettings(steps=120, **settings))
    whole = painting.movedim(-1, 1)
    with torch.no_grad():
        scores = [float(psnr(ae.model.decode(ae.model.encode(whole)).clamp(0, 1), whole)) for ae in (early, late)]
    print(f"one painting, 32px crops: whole-painting PSNR after 1 step {scores[0]:.2f} dB, "
          f"120 steps {scores[1]:.2f} dB")
    assert late.state.summary["data_size"] == 1 and scores[1] > scores[0] + 3.0
