"""models/formats.py: ComfyUI's IMAGE, LATENT and MASK read and written in one place, each NaN policy explicit."""
import pytest
import torch

from autoencoder_atelier.models import formats
from autoencoder_atelier.models.errors import AtelierError

NAN, INF = float("nan"), float("inf")


def test_image_nan_policies():
    bad = torch.tensor([NAN, INF, -INF, 0.25]).view(1, 2, 2, 1)
    clean = formats.image_to_bchw(bad, "clean")
    assert clean.shape == (1, 3, 2, 2) and clean[0, 0].flatten().tolist() == [0.0, 1.0, 0.0, 0.25]
    with pytest.raises(formats.FormatError, match="NaN or infinite"):
        formats.image_to_bchw(bad, "refuse")
    with pytest.raises(ValueError, match="NaN policy"):
        formats.image_to_bchw(bad, "ignore")


def test_image_errors_are_the_callers_type_and_say_what_to_connect():
    class MyError(AtelierError):
        pass

    for bad in (torch.zeros(0, 4, 4, 3), torch.zeros(4, 4, 3), "not an image"):
        with pytest.raises(MyError, match=r"non-empty IMAGE batch \[B,H,W,C\]"):
            formats.image_to_bchw(bad, "clean", MyError)
    with pytest.raises(MyError, match="2 channels"):
        formats.image_to_bchw(torch.zeros(1, 4, 4, 2), "refuse", MyError)


def test_image_copies_never_alias_the_input_and_round_trip():
    images = torch.rand(2, 5, 7, 3)
    for policy in ("clean", "refuse"):
        x = formats.image_to_bchw(images, policy)
        x += 1
        assert images.max() <= 1
    assert torch.equal(formats.bchw_to_image(formats.image_to_bchw(images, "refuse")), images)


def test_pil_conversion_truncates_like_comfyui():
    img = torch.tensor([0.0, 0.5, 1.0, 2.0]).view(1, 1, 4, 1).expand(-1, -1, -1, 3)
    pixels = formats.image_to_pil(img).load()
    assert [pixels[i, 0] for i in range(4)] == [(0, 0, 0), (127, 127, 127), (255, 255, 255), (255, 255, 255)]


def test_latent_labels_round_trip_and_malformed_labels_read_as_absent():
    z = torch.zeros(1, 4, 2, 2)
    latent = formats.make_latent(z, "abc", "conv", (13, 9))
    assert formats.latent_samples(latent) is z and formats.latent_labels(latent) == ("abc", "conv", [13, 9])
    assert formats.latent_labels({"samples": z, formats.SIZE_LABEL: [1.5, 2], formats.MODEL_LABEL: 7}) == \
        (None, None, None)
    with pytest.raises(formats.FormatError, match="NaN or infinite"):
        formats.latent_samples({"samples": torch.full((1, 4, 2, 2), NAN)})


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.bool, torch.complex64])
def test_integer_bool_and_complex_images_and_latents_are_refused(dtype):
    """Read as floats a uint8 picture (0..255) turned white and a complex latent lost its imaginary half; latent
    maths failed on integers with torch's NotImplementedError."""
    name = str(dtype).removeprefix("torch.")
    with pytest.raises(formats.FormatError, match=rf"^images hold {name} values; an IMAGE holds floating-point"):
        formats.image_to_bchw(torch.ones(1, 2, 2, 3, dtype=dtype), "clean")
    with pytest.raises(formats.FormatError, match=rf"^the samples of latent_a hold {name} values; a LATENT holds"):
        formats.latent_samples({"samples": torch.ones(1, 4, 2, 2, dtype=dtype)}, "latent_a")
    for ok in (torch.float16, torch.bfloat16, torch.float64):
        formats.latent_samples({"samples": torch.ones(1, 4, 2, 2, dtype=ok)})
        formats.image_to_bchw(torch.ones(1, 2, 2, 3, dtype=ok), "refuse")


def test_a_node_answers_an_integer_latent_with_its_name():
    from helpers import call, refusal
    latent = {"samples": torch.ones(1, 4, 2, 2, dtype=torch.int64)}
    before = latent["samples"].clone()
    with pytest.raises(ValueError, match=refusal("AtelierLatentMix", "the samples of latent_a hold int64 values")):
        call("AtelierLatentMix", latent_a=latent, latent_b={"samples": torch.zeros(1, 4, 2, 2)}, factor=0.5,
             mode="lerp")
    assert torch.equal(latent["samples"], before)


def test_mask_nan_policies():
    m = torch.tensor([[NAN, 0.5]])
    assert formats.mask_batch(m, nan=1.0).tolist() == [[[1.0, 0.5]]]
    with pytest.raises(formats.FormatError, match="NaN"):
        formats.mask_batch(m)
    with pytest.raises(formats.FormatError, match="a mask must be"):
        formats.mask_batch(torch.zeros(0, 3))
