"""The latent prior: Train Latent Prior, Sample Latent with a prior, Latent Variations, and the prior in model files."""

import pytest
import torch
from autoencoder_atelier.models import codec, latent_prior, procedural as procedural_works, storage
from autoencoder_atelier.models.dataset import WorkFolder
from autoencoder_atelier.models.imagefolder import load_folder
from autoencoder_atelier.models.latent_math import sample_latents
from autoencoder_atelier.models.prior_training import learn_prior
from autoencoder_atelier.models.train import Trainer, TrainSettings
from autoencoder_atelier.nodes import NODE_CLASS_MAPPINGS as NODES
from helpers import model_digest, procedural, resave, tiny_ae
import swd

SIZE = 32


@pytest.fixture(scope="module")
def works():
    return procedural(24, SIZE, seed=5), procedural(24, SIZE, seed=6)   # training works, held-out works


@pytest.fixture(scope="module")
def base(works):
    """A tiny conv autoencoder (downscale 4: 8x8 latents) trained on the procedural works."""
    return Trainer(tiny_ae(), works[0], TrainSettings(steps=200, seed=0)).run()


@pytest.fixture(scope="module")
def with_prior(base, works):
    return learn_prior(base, works[0])


def sample(ae, seed=0, size=SIZE, n=4, temperature=1.0, steps=2):
    return NODES["AtelierSampleLatent"]().sample(ae, n, size, size, seed, temperature, steps)[0]


def vary(ae, latent, strength, seed=0, n=2, mask=None):
    return NODES["AtelierLatentVariations"]().vary(ae, latent, strength, seed, n, mask)[0]


def test_a_prior_beats_todays_sample_latent_on_the_swd(base, with_prior, works):
    held = works[1]
    n, c, h = 24, base.config["latent_channels"], SIZE // 4
    today = codec.decode(base, codec.latent_of(base, sample_latents(base.state.latent_stats, [n, c, h, h],
                                                                    torch.Generator().manual_seed(0))))
    new = codec.decode(with_prior, sample(with_prior, n=n))
    ours, theirs = swd.swd(new, held, descriptors=4096)["mean"], swd.swd(today, held, descriptors=4096)["mean"]
    assert ours < 0.9 * theirs, (ours, theirs)


def test_same_seed_same_sample_and_another_seed_another(with_prior):
    a, b, c = sample(with_prior, 3), sample(with_prior, 3), sample(with_prior, 4)
    assert torch.equal(a["samples"], b["samples"]) and not torch.allclose(a["samples"], c["samples"])
    assert a["atelier_model"] == with_prior.model_id


def test_temperature_goes_from_close_to_the_works_to_wild(base, works):
    """Cold samples are made of pieces that join as the work's own do, hot ones of pieces that join ever worse: the
    mean distance of a sample's 3x3-cell neighbourhoods to the nearest in the work grows with the temperature (one
    work, so that every temperature re-lays the same one)."""
    one = learn_prior(base, works[0][:1])
    keys = latent_prior.patches(torch.cat(one.prior.latents))
    away = [float(torch.cdist(latent_prior.patches(sample(one, n=16, temperature=t)["samples"]), keys)
                  .min(1).values.mean()) for t in (0.0, 1.0, 3.0)]
    assert away[0] < away[1] < away[2], away


def test_samples_larger_than_the_works_have_a_composition_not_a_tiling(with_prior):
    """A 256 px sample from 32 px works: shrunk to the works' size it still varies like a work does (a tiling of
    small pieces averages out to a flat field), and no two of its quarters are the same piece."""
    z = sample(with_prior, size=256, n=1)["samples"]
    assert z.shape == (1, 8, 64, 64) and torch.isfinite(z).all()
    works = with_prior.prior.latents[0]
    coarse = torch.nn.functional.interpolate(z, size=(8, 8), mode="area")
    assert coarse.std(dim=(2, 3)).mean() > 0.3 * works.std(dim=(2, 3)).mean()
    quarters = [z[..., y:y + 32, x:x + 32] for y in (0, 32) for x in (0, 32)]
    assert all(not torch.allclose(a, b) for i, a in enumerate(quarters) for b in quarters[i + 1:])


def test_variations_at_strength_zero_return_the_input_exactly(with_prior, works):
    latent = codec.encode(with_prior, works[1][:2])
    out = vary(with_prior, latent, 0.0, n=3)["samples"]
    assert torch.equal(out, latent["samples"].repeat_interleave(3, 0))
    moved = vary(with_prior, latent, 0.6)["samples"]
    assert not torch.allclose(moved[0], moved[1])          # two different variations of the same work


def test_masked_variation_changes_only_inside_the_mask(with_prior, works):
    latent = codec.encode(with_prior, works[1][:1])
    mask = torch.zeros(SIZE, SIZE)
    mask[:, : SIZE // 2] = 1
    out = vary(with_prior, latent, 0.8, mask=mask)["samples"]
    z = latent["samples"]
    assert torch.equal(out[..., SIZE // 8:], z.expand(2, -1, -1, -1)[..., SIZE // 8:])
    assert not torch.allclose(out[..., : SIZE // 8], z.expand(2, -1, -1, -1)[..., : SIZE // 8])


def test_variations_wander_further_as_strength_rises_and_are_made_of_the_work_itself(with_prior):
    """Variations of 64 px works (16x16 cells): their distance to the work grows with the strength, and every cell
    of a variation is one of the work's own cells, never an average of several (which decodes blurred)."""
    latent = codec.encode(with_prior, procedural(2, 2 * SIZE, seed=9))
    z = latent["samples"].repeat_interleave(4, 0)
    away = []
    for strength in (0.25, 0.5, 1.0):
        v = vary(with_prior, latent, strength, n=4)["samples"]
        away.append(float((v - z).pow(2).mean().sqrt()))
        for a, b in zip(v, z):
            cells, own = (t.flatten(1).T for t in (a, b))
            assert torch.cdist(cells, own, compute_mode="donot_use_mm_for_euclid_dist").min(1).values.max() < 1e-6
    assert away[0] < away[1] < away[2], away


def test_save_and_load_keep_the_prior_bit_identical(with_prior, tmp_path):
    path = storage.save_autoencoder(with_prior, tmp_path / "m.safetensors")
    back = storage.load_autoencoder(path)
    a, b = with_prior.prior, back.prior
    assert len(a.latents) == len(b.latents) and all(torch.equal(x, y) for x, y in zip(a.latents, b.latents))
    assert b.config() == a.config() and b.summary == a.summary
    assert torch.equal(sample(back)["samples"], sample(with_prior)["samples"])
    assert "latent prior: 24 works, 8x8-cell compositions" in storage.read_card(path)


def test_learning_more_works_continues_the_saved_prior(with_prior, works, tmp_path):
    path = storage.save_autoencoder(with_prior, tmp_path / "m.safetensors")
    more = learn_prior(storage.load_autoencoder(path), works[1][:6])
    old, new = with_prior.prior.latents, more.prior.latents
    assert len(new) > len(old) and all(torch.equal(x, y) for x, y in zip(old, new))
    assert more.prior.summary["works"] == 30 and new[len(old)].shape[0] == 6


def test_cancel_leaves_the_input_model_unchanged(with_prior, works):
    before = model_digest(with_prior), [z.clone() for z in with_prior.prior.latents]

    def cancel():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        learn_prior(with_prior, works[1], on_progress=cancel)
    assert model_digest(with_prior) == before[0]
    assert len(with_prior.prior.latents) == len(before[1])
    assert all(torch.equal(x, y) for x, y in zip(with_prior.prior.latents, before[1]))


def test_sampling_and_variations_stop_on_cancel(with_prior, monkeypatch):
    """Quilting and GPNN check Cancel between spots and chunks: a big variation or sample runs for minutes."""
    from autoencoder_atelier.models import interrupt

    def cancel():
        raise KeyboardInterrupt

    monkeypatch.setattr(interrupt, "_hook", cancel)
    z = torch.randn(1, with_prior.prior.channels, 16, 16)
    with pytest.raises(KeyboardInterrupt):
        with_prior.prior.vary(z, 1.0, torch.Generator().manual_seed(0))
    with pytest.raises(KeyboardInterrupt):
        with_prior.prior.clone().sample((1, with_prior.prior.channels, 64, 64), torch.Generator().manual_seed(0))


def test_the_patch_bank_is_gathered_without_all_the_patches(monkeypatch):
    """The bank holds the rows of all the works' patches concatenated (and subsampled the same way), bit for bit."""
    g = torch.Generator().manual_seed(0)
    latents = [torch.randn(3, 4, 9, 7, generator=g), torch.randn(1, 4, 5, 11, generator=g)]
    for limit in (10_000, 50):
        monkeypatch.setattr(latent_prior, "MAX_PATCHES", limit)
        bank = latent_prior.PatchBank(latents, torch.Generator().manual_seed(1))
        every = torch.cat([latent_prior.patches(z) for z in latents])
        keep = torch.randperm(len(every), generator=torch.Generator().manual_seed(1))[:limit] \
            if len(every) > limit else torch.arange(len(every))
        assert torch.equal(bank.sharp, every[keep])


def test_the_node_returns_a_new_model_and_samples(base, works):
    before = model_digest(base)
    out, pictures = NODES["AtelierTrainLatentPrior"]().train(base, 2, 0, images=works[0][:4])
    assert out is not base and out.prior is not None and base.prior is None and model_digest(base) == before
    assert pictures.shape == (4, SIZE, SIZE, 3)


@pytest.mark.parametrize("images, arch, message", [
    (torch.zeros(0, 32, 32, 3), "conv", "non-empty IMAGE"),
    (torch.rand(2, 4, 4, 3), "conv", "smaller than two latent cells"),
    (torch.full((2, 32, 32, 3), float("nan")), "conv", "NaN"),
    (torch.rand(2, 16, 16, 3), "dense", "dense autoencoder"),
])
def test_training_on_bad_input_says_what_to_do(images, arch, message):
    ae = tiny_ae(arch)
    before = model_digest(ae)
    with pytest.raises(ValueError, match=message):
        NODES["AtelierTrainLatentPrior"]().train(ae, 2, 0, images=images)
    assert model_digest(ae) == before and ae.prior is None


def test_sampling_bad_requests_say_what_to_do(with_prior, base, works):
    node = NODES["AtelierSampleLatent"]()
    with pytest.raises(ValueError, match="smaller than the model's downscale"):
        node.sample(with_prior, 1, 2, 2, 0, 1.0)
    with pytest.raises(ValueError, match="steps is 0"):
        node.sample(with_prior, 1, 32, 32, 0, 1.0, 0)
    with pytest.raises(ValueError, match="steps is 0"):
        NODES["AtelierTrainLatentPrior"]().train(base, 0, 0, images=works[0][:2])
    with pytest.raises(ValueError, match="temperature must be a finite number"):
        node.sample(with_prior, 1, 32, 32, 0, float("nan"))
    latent = codec.encode(with_prior, works[1][:1])
    with pytest.raises(ValueError, match="no latent prior"):
        vary(base, latent, 0.5)
    with pytest.raises(ValueError, match="NaN"):
        vary(with_prior, {"samples": torch.full_like(latent["samples"], float("nan"))}, 0.5)


@pytest.mark.parametrize("edit, message", [
    ({"prior.latents.0": None}, "missing"),
    ({"prior.latents.0": torch.zeros(2, 3, 8, 8)}, "shape"),
    ({"prior.latents.0": torch.full((24, 8, 8, 8), float("inf"))}, "NaN or infinite"),
])
def test_files_with_broken_prior_tensors_are_refused(with_prior, tmp_path, edit, message):
    good = storage.save_autoencoder(with_prior, tmp_path / "good.safetensors")
    bad = resave(good, tmp_path / "bad.safetensors", tensors=edit)
    with pytest.raises(storage.ModelFileError, match=message):
        storage.load_autoencoder(bad)


@pytest.mark.parametrize("prior", ['{"crop": 100000, "passes": 2, "shapes": [[1, 8, 8, 8]]}',
                                   '{"crop": 8, "passes": 2, "shapes": [[1, 3, 8, 8]]}',
                                   '{"crop": 8, "passes": 2, "shapes": [[100000, 8, 1000, 1000]]}', '[]'])
def test_a_broken_prior_config_is_refused(with_prior, tmp_path, prior):
    good = storage.save_autoencoder(with_prior, tmp_path / "good.safetensors")
    bad = resave(good, tmp_path / "bad.safetensors", meta={"prior": prior})
    with pytest.raises(storage.ModelFileError, match="latent prior"):
        storage.read_info(bad)


def test_a_prior_of_flat_works_still_samples(base):
    """Flat works have a zero latent covariance (the long fuzz profile found Cholesky failing on it)."""
    flat = torch.full((2, SIZE, SIZE, 3), 0.5)
    ae = learn_prior(base, flat)
    out = sample(ae, n=2)
    assert torch.isfinite(out["samples"]).all() and out["samples"].shape[0] == 2


# -- a dataset instead of images -------------------------------------------------------------------------

def test_a_prior_from_a_dataset_samples_like_one_from_the_same_images(base, tmp_path):
    """Composition-sized works: the dataset path sees exactly what the IMAGE path sees."""
    folder = str(tmp_path / "works")
    procedural_works.write_folder(folder, count=12, size=SIZE, seed=7)
    node = NODES["AtelierTrainLatentPrior"]()
    from_images, shown = node.train(base, 2, 3, images=load_folder(folder, SIZE), crop_size=SIZE)
    from_dataset, shown_too = node.train(base, 2, 3, dataset=WorkFolder(folder), crop_size=SIZE)
    a, b = from_images.prior, from_dataset.prior
    assert [z.shape for z in a.latents] == [z.shape for z in b.latents]
    assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(a.latents, b.latents))
    assert b.summary == a.summary == {"works": 12, "crop_cells": SIZE // 4}
    assert torch.allclose(shown, shown_too, atol=1e-3)


def test_a_dataset_prior_holds_composition_sized_squares_whatever_the_works_size(base, tmp_path, monkeypatch):
    """Memory is set by the crop and the number of works: 4x the pixels per work, the same latents."""
    encoded, encode = [], codec.encode
    monkeypatch.setattr(codec, "encode", lambda ae, x, *a, **k: encoded.append(x.shape[1:3]) or encode(ae, x, *a, **k))
    priors = {}
    for size in (64, 128):
        folder = str(tmp_path / f"works_{size}")
        procedural_works.write_folder(folder, count=5, size=size, seed=8)
        dataset = WorkFolder(folder)
        priors[size] = learn_prior(base, dataset, crop_size=16, seed=1)
        assert not dataset._cache   # the decoded works are let go
    assert set(encoded) == {(16, 16)}   # every encode: one work's squares, never a whole work
    cells = {size: sum(z.numel() for z in p.prior.latents) for size, p in priors.items()}
    c = base.config["latent_channels"]
    # per work and mirror: the composition and a square at 64 (and 32) pixels, each 4x4 cells
    assert cells == {64: 5 * 2 * 3 * 16 * c, 128: 5 * 2 * 4 * 16 * c}
    whole = learn_prior(base, load_folder(str(tmp_path / "works_128"), 128), crop_size=16)
    assert sum(z.numel() for z in whole.prior.latents) > 4 * cells[128]   # the IMAGE path keeps every cell
    again = learn_prior(base, WorkFolder(str(tmp_path / "works_128")), crop_size=16, seed=1).prior.latents
    assert all(torch.equal(x, y) for x, y in zip(again, priors[128].prior.latents))   # seeded
    assert torch.isfinite(sample(priors[128], size=64)["samples"]).all()


def test_a_dataset_of_works_of_any_size_and_the_bad_cases(base, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i, (w, h) in enumerate([(96, 40), (30, 70), (64, 64)]):   # wide, tall and smaller than the composition
        procedural_works.make_image(i, max(w, h)).resize((w, h)).save(folder / f"w{i}.png")
    node = NODES["AtelierTrainLatentPrior"]()
    spec = node.INPUT_TYPES()
    assert {"images", "dataset"} <= set(spec["optional"]) and "images" not in spec["required"]
    ae, shown = node.train(base, 2, 0, dataset=WorkFolder(str(folder)), crop_size=32)
    assert ae.prior.summary["works"] == 3 and all(z.shape[-2:] == (8, 8) for z in ae.prior.latents)
    assert shown.shape == (4, 32, 32, 3)
    with pytest.raises(ValueError, match="connect your works: images .* or a dataset"):
        node.train(base, 2, 0)
    dense = tiny_ae("dense")
    with pytest.raises(ValueError, match="dense autoencoder"):
        node.train(dense, 2, 0, dataset=WorkFolder(str(folder)))
    assert dense.prior is None


def test_a_dataset_too_large_for_one_prior_is_refused_as_soon_as_it_passes_the_budget(base, tmp_path, monkeypatch):
    """Thousands of works: the refusal comes once the latents pass the budget, not after encoding them all."""
    from autoencoder_atelier.models import prior_training
    folder = str(tmp_path / "many")
    procedural_works.write_folder(folder, count=8, size=SIZE, seed=9)
    per_work = 2 * base.config["latent_channels"] * (SIZE // 4) ** 2   # the composition and its mirror image
    monkeypatch.setattr(prior_training, "MAX_LATENT_VALUES", 2 * per_work + 1)
    read, work = [], WorkFolder.work
    monkeypatch.setattr(WorkFolder, "work", lambda self, i, *a: read.append(i) or work(self, i, *a))
    before = model_digest(base)
    with pytest.raises(ValueError, match="too many or too large for one prior"):
        NODES["AtelierTrainLatentPrior"]().train(base, 2, 0, dataset=WorkFolder(folder), crop_size=SIZE)
    assert read == [0, 1, 2] and base.prior is None and model_digest(base) == before


def test_samples_too_close_to_a_work_are_drawn_again(with_prior):
    """The copy check: with it, samples keep a distance from every work that they do not keep without it."""
    guarded = with_prior.prior.clone().fit()
    unguarded = with_prior.prior.clone().fit()
    unguarded.copy_limit = 0.0

    def nearest(prior):
        z = prior.sample((16, prior.channels, 8, 8), torch.Generator().manual_seed(0))
        return min(prior._distance_to_works(z[i:i + 1]) for i in range(len(z)))

    assert nearest(unguarded) < guarded.copy_limit <= nearest(guarded)


def test_a_batch_draws_its_works_from_a_deck_and_quilting_counts_what_it_copies():
    """The deck repeats no source more often than its share until all have come; quilting reports the largest share
    of a latent that lies as it lay in the work (one block placed four times at four shifts: the last one's 25 of
    64 cells)."""
    deck = latent_prior._deck([1, 3, 1], torch.Generator().manual_seed(0))
    first = sorted(next(deck) for _ in range(5))
    assert first == [0, 1, 1, 1, 2]
    view = torch.randn(2, 5, 5)
    rows, at = latent_prior.block_rows(view, 5, torch.Generator().manual_seed(0))

    def quilt(rows, at, size, passes):
        return latent_prior.quilt(rows, at, torch.zeros((1, 2) + size), torch.zeros(size),
                                  latent_prior.places(*size, 5), torch.Generator().manual_seed(0), passes, 0.1)
    z, copied = quilt(rows, at, (5, 5), 2)
    assert torch.equal(z[0], view) and float(copied) == 1.0
    z, copied = quilt(rows, at, (8, 8), 1)
    assert float(copied) == 25 / 64


TRIES = latent_prior.TRIES
PASS_ON_THIRD, NONE_PASS = ([0.9, 0.8, 0.3, 0.1], 3, 3), ([0.9, 0.6] + [0.9] * (TRIES - 2), TRIES, 2)


@pytest.mark.parametrize("shares, draws, kept", [PASS_ON_THIRD, NONE_PASS])
def test_samples_that_mostly_lie_as_in_a_work_are_drawn_again(with_prior, monkeypatch, shares, draws, kept):
    """The copy check's second half: a draw with over half its cells lying as in a work (a shifted copy, which the
    whole-picture distance does not see) is drawn again until one passes, or after TRIES the least copied kept."""
    made = []

    def fake(rows, at, canvas, *args):
        made.append(len(made) + 1)
        return torch.full(canvas.shape, float(made[-1])), torch.tensor([shares[len(made) - 1]])

    monkeypatch.setattr(latent_prior, "quilt", fake)
    prior = with_prior.prior.clone().fit()
    prior.copy_limit = 0.0   # the distance half off: only the share decides
    g = torch.Generator().manual_seed(0)
    z = prior.composition((12, 12), g, 1.0, 2, latent_prior._deck(prior._shares((12, 12)), g))
    assert len(made) == draws and float(z[0, 0, 0, 0]) == kept


def test_samples_and_variations_report_progress_up_to_their_total(with_prior, monkeypatch):
    """Big samples and variations take minutes: the progress bar moves through them and ends full."""
    from autoencoder_atelier.nodes import bridge
    seen = []
    monkeypatch.setattr(bridge.HeadlessProgressBar, "hook", staticmethod(lambda v, t, p=None: seen.append((v, t))))
    sample(with_prior, size=128, n=2)
    assert len(seen) > 4 and seen[-1][0] == seen[-1][1] and all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
    seen.clear()
    vary(with_prior, {"samples": torch.randn(1, with_prior.prior.channels, 16, 16)}, 1.0)
    assert len(seen) > 4 and seen[-1][0] == seen[-1][1] and all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
