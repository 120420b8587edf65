"""Images that would hang, exhaust memory or load wrong: decompression bombs and huge images, FIFOs and
sockets in a folder, float TIFFs, multi-frame files, and the headless Load Image stand-in (EXIF rotation of
the mask, transparency as ComfyUI, only the input folder)."""
import os
import socket
import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from autoencoder_atelier.headless.core_nodes import LoadImage
from autoencoder_atelier.models import imagefolder, memory
from autoencoder_atelier.models.imagefolder import ImageFolderError
from autoencoder_atelier.nodes import bridge

from helpers import call, refusal, without_hanging


def bomb_png(path, side):
    """A PNG whose header declares side x side pixels, with almost no data (PIL checks the size on open)."""
    Image.new("1", (8, 8)).save(path)
    raw = bytearray(open(path, "rb").read())
    ihdr = raw.index(b"IHDR")
    raw[ihdr + 4:ihdr + 12] = struct.pack(">II", side, side)
    raw[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(raw[ihdr:ihdr + 17])))
    open(path, "wb").write(raw)
    return path


LOADERS = {"AtelierLoadImageFolder": dict(size=64, mode="resize", count=0),
           "AtelierLoadDataset": dict(max_side=0, count=0)}


@pytest.mark.parametrize("node", LOADERS)
@pytest.mark.parametrize("budget_mb,side,fragment", [(64, 4000, "megapixels that fit the memory budget"),
                                                     (1_000_000, 20_000, "too large to decode safely"),
                                                     (1_000_000, 100_000, "too large to decode safely")])
def test_huge_images_are_refused_from_their_header_without_a_raw_warning(tmp_path, monkeypatch, node, budget_mb,
                                                                         side, fragment):
    """Both folder loaders refuse a bomb's header alike (Load Dataset Folder once said "cannot read ... (PIL's
    message)" and let an image over the budget through to fail mid-training)."""
    monkeypatch.setenv(memory.ENV, str(budget_mb))
    bomb_png(tmp_path / "bomb.png", side)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a DecompressionBombWarning would fail the test
        with pytest.raises(ValueError, match=refusal(node, f"bomb.png.*{fragment}.*scale it down in an image "
                                                           "editor first")):
            call(node, folder=str(tmp_path), **LOADERS[node])


def test_a_big_sparse_image_is_shrunk_in_8_bit_before_anything_is_float(tmp_path, monkeypatch):
    """A 36 KB 1-bit PNG of 6000x6000: box-reduced while decoding, resized in 8 bit, float only at 64 px."""
    Image.new("1", (6000, 6000), 1).save(tmp_path / "sparse.png")
    sizes, real_fit = [], imagefolder._fit
    monkeypatch.setattr(imagefolder, "_fit", lambda img, *a: sizes.append(img.size) or real_fit(img, *a))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = imagefolder.load_folder(str(tmp_path), 64, "resize")
    assert out.shape == (1, 64, 64, 3) and torch.allclose(out, torch.ones_like(out))
    assert max(max(s) for s in sizes) < 64 * 4, sizes  # the resize started from a box-reduced image


def test_jpegs_are_decoded_at_reduced_size(tmp_path, monkeypatch):
    Image.new("RGB", (2048, 1536), (200, 100, 50)).save(tmp_path / "photo.jpg", quality=90)
    sizes, real_fit = [], imagefolder._fit
    monkeypatch.setattr(imagefolder, "_fit", lambda img, *a: sizes.append(img.size) or real_fit(img, *a))
    out = imagefolder.load_folder(str(tmp_path), 64, "center-crop")
    assert out.shape == (1, 64, 64, 3) and max(sizes[0]) <= 512
    assert abs(out[0, 32, 32, 0].item() - 200 / 255) < 0.03


def test_the_memory_budget_bounds_the_batch_and_names_what_fits(tmp_path, monkeypatch):
    for i in range(3):
        Image.new("RGB", (16, 16)).save(tmp_path / f"{i}.png")
    monkeypatch.setenv(memory.ENV, "10")
    with pytest.raises(ValueError) as e:
        call("AtelierLoadImageFolder", folder=str(tmp_path), size=256, mode="random-crops", count=100)
    largest = 10 * 2 ** 20 // imagefolder.batch_bytes(1, 256)
    assert "count=100 would need about" in str(e.value) and f"lower count to {largest} or less" in str(e.value)
    (out,) = call("AtelierLoadImageFolder", folder=str(tmp_path), size=256, mode="random-crops", count=largest)
    assert out.shape[0] == largest


def test_memory_check_message_when_nothing_fits(monkeypatch):
    monkeypatch.setenv(memory.ENV, "1")
    with pytest.raises(memory.MemoryBudgetError, match="even n=1 does not fit; lower size"):
        memory.check("n", 5, lambda n: n * 2 ** 30, advice="lower size")
    monkeypatch.setenv(memory.ENV, "nonsense")
    nonsense = memory.budget_bytes()
    monkeypatch.delenv(memory.ENV)
    assert nonsense == memory.budget_bytes() > 0


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifos_and_sockets_in_a_folder_are_skipped_unopened(tmp_path):
    Image.new("RGB", (16, 16), (255, 0, 0)).save(tmp_path / "a.png")
    os.mkfifo(tmp_path / "b.png")
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(tmp_path / "c.png"))
        assert imagefolder.list_images(str(tmp_path)) == [str(tmp_path / "a.png")]
        with bridge.folders(input_dir=tmp_path):   # the headless Load Image's list too
            assert LoadImage.INPUT_TYPES()["required"]["image"][0] == ["a.png"]
        out = without_hanging(lambda: imagefolder.load_folder(str(tmp_path), 16, "resize"))
        assert out.shape == (1, 16, 16, 3)
        # a FIFO put in place after the listing is refused without blocking
        with pytest.raises(ImageFolderError, match="not a regular file"):
            without_hanging(lambda: imagefolder.open_image(str(tmp_path / "b.png")))
    finally:
        s.close()


def test_float_tiffs_hold_0_to_1(tmp_path):
    a = np.full((8, 8), 0.5, dtype=np.float32)
    a[0, 0] = np.nan
    Image.fromarray(a, mode="F").save(tmp_path / "float.tif")
    out = imagefolder.load_folder(str(tmp_path), 8, "resize")
    assert abs(out[0, 4, 4, 0].item() - 0.5) < 0.01 and torch.isfinite(out).all()


# -- the headless Load Image stand-in ---------------------------------------------------------

def test_exif_rotation_turns_the_mask_with_the_image(tmp_dirs):
    img = Image.new("RGBA", (40, 20), (200, 10, 10, 255))
    img.paste((0, 0, 0, 0), (0, 0, 10, 20))  # the left quarter transparent
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    img.save(tmp_dirs.input / "rot.png", exif=exif.tobytes())
    image, mask = LoadImage().load_image("rot.png")
    assert image.shape == (1, 40, 20, 3) and mask.shape == (1, 40, 20)
    assert mask[0, :10].sum() == 200 and mask[0, 10:].sum() == 0  # the transparent quarter is now on top


def test_transparency_masks_match_comfyui(tmp_dirs):
    pal = Image.new("P", (8, 8), 1)
    pal.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.save(tmp_dirs.input / "pal.png", transparency=0)
    image, mask = LoadImage().load_image("pal.png")
    assert mask.shape == (1, 8, 8) and mask[0, 0, 0] == 1 and mask.sum() == 1
    Image.new("RGB", (8, 8)).save(tmp_dirs.input / "plain.png")
    assert LoadImage().load_image("plain.png")[1].shape == (1, 64, 64)  # ComfyUI's empty mask
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    rgba.save(tmp_dirs.input / "clear.png")
    image, mask = LoadImage().load_image("clear.png")
    assert torch.equal(image[0, 0, 0], torch.tensor([1.0, 0, 0])) and mask.min() == 1  # colour kept, not composited


def test_multi_frame_files_load_as_comfyui_does(tmp_dirs):
    frames = [Image.new("RGB", (8, 8), (i * 80, 0, 0)) for i in range(3)]
    frames[0].save(tmp_dirs.input / "anim.gif", save_all=True, append_images=frames[1:])
    image, mask = LoadImage().load_image("anim.gif")
    assert image.shape == (3, 8, 8, 3) and mask.shape[0] == 3
    assert image[2, 0, 0, 0] > image[1, 0, 0, 0] > image[0, 0, 0, 0]


@pytest.mark.parametrize("name", ["../secret.png", "/etc/passwd", "C:secret.png", "a/../../secret.png", ""])
def test_load_image_reads_only_inside_the_input_folder(tmp_dirs, name):
    Image.new("RGB", (4, 4)).save(tmp_dirs.input.parent / "secret.png")
    with pytest.raises(ValueError, match="not a file in the input folder"):
        LoadImage().load_image(name)
