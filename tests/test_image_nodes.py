"""Load Image Folder (every kind of file artists keep) and Image Grid."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from autoencoder_atelier.models import imagefolder
from autoencoder_atelier.nodes import NODE_CLASS_MAPPINGS

from helpers import deep_digest, error_start, refusal, shared_path

N_IMAGES = 8  # the images written by the `folder` fixture (the .txt and hidden file are not counted)


def load(folder, size=32, mode="center-crop", count=0, seed=0):
    return NODE_CLASS_MAPPINGS["AtelierLoadImageFolder"]().load(str(folder), size, mode, count, seed)[0]


@pytest.fixture
def folder(tmp_path):
    """A folder of mixed files: RGB PNG and JPEG, L, LA, RGBA, P, 16-bit PNG, CMYK JPEG, a .txt, a hidden file."""
    d = tmp_path / "art"
    d.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(d / "a_rgb.png")
    Image.fromarray(rng.integers(0, 256, (48, 36, 3), dtype=np.uint8)).save(d / "b_rgb.jpg", quality=90)
    Image.new("L", (40, 40), 100).save(d / "c_gray.png")
    rgba = Image.new("RGBA", (40, 40), (255, 0, 0, 0))  # fully transparent red: must come out white
    rgba.save(d / "d_rgba.png")
    pal = Image.new("RGB", (40, 40), (0, 0, 255)).convert("P", palette=Image.ADAPTIVE, colors=4)
    assert pal.mode == "P"
    pal.save(d / "e_palette.png")
    sixteen = Image.fromarray(np.full((40, 40), 32768, dtype=np.uint16))
    assert sixteen.mode.startswith("I;16")
    sixteen.save(d / "f_16bit.png")
    Image.new("CMYK", (40, 40), (255, 0, 0, 0)).save(d / "g_cmyk.jpg")  # pure cyan
    Image.new("LA", (40, 40), (50, 255)).save(d / "h_gray_alpha.PNG")  # upper-case extension
    (d / "notes.txt").write_text("not an image")
    Image.new("RGB", (40, 40)).save(d / ".hidden.png")
    return d


@pytest.mark.parametrize("mode", ["resize", "center-crop"])
def test_every_file_kind_loads(folder, mode):
    out = load(folder, 32, mode)
    assert out.shape == (N_IMAGES, 32, 32, 3) and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1
    names = sorted(n for n in os.listdir(folder) if not n.startswith(".") and not n.endswith(".txt"))
    px = {n: out[i] for i, n in enumerate(names)}
    assert torch.allclose(px["c_gray.png"], torch.full((32, 32, 3), 100 / 255), atol=1 / 255)
    assert torch.allclose(px["d_rgba.png"], torch.ones(32, 32, 3))  # transparency over white
    assert torch.allclose(px["e_palette.png"], torch.tensor([0.0, 0.0, 1.0]).expand(32, 32, 3), atol=1 / 255)
    assert torch.allclose(px["f_16bit.png"], torch.full((32, 32, 3), 0.5), atol=0.01)  # 16-bit range respected
    assert torch.allclose(px["g_cmyk.jpg"].mean((0, 1)), torch.tensor([0.0, 1.0, 1.0]), atol=0.1)
    assert torch.allclose(px["h_gray_alpha.PNG"], torch.full((32, 32, 3), 50 / 255), atol=1 / 255)


def test_random_crops_make_count_crops(folder):
    out = load(folder, 16, "random-crops", count=20, seed=1)
    assert out.shape == (20, 16, 16, 3) and out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1
    again = load(folder, 16, "random-crops", count=20, seed=1)
    other = load(folder, 16, "random-crops", count=20, seed=2)
    assert torch.equal(out, again) and not torch.equal(out, other)
    # crops bigger than a picture upscale it first
    assert load(folder, 64, "random-crops", count=3).shape == (3, 64, 64, 3)


def test_random_crops_are_at_native_resolution(tmp_path):
    d = tmp_path / "one"
    d.mkdir()
    a = np.zeros((64, 64, 3), dtype=np.uint8)
    a[:, ::2] = 255  # one-pixel stripes survive only without resampling
    Image.fromarray(a).save(d / "stripes.png")
    out = load(d, 16, "random-crops", count=4)
    assert set(out.unique().tolist()) == {0.0, 1.0}


def test_the_resampling_filter_is_lanczos_unless_asked(tmp_path):
    d = tmp_path / "one"
    d.mkdir()
    a = np.zeros((64, 64, 3), dtype=np.uint8)
    a[:, ::4] = 255
    Image.fromarray(a).save(d / "stripes.png")
    lanczos = imagefolder.load_folder(str(d), 24, "resize")
    assert torch.equal(lanczos, imagefolder.load_folder(str(d), 24, "resize", resample=Image.LANCZOS))
    bilinear = imagefolder.load_folder(str(d), 24, "resize", resample=Image.BILINEAR)
    assert (bilinear - lanczos).abs().max() > 0.03   # the filters differ by 12/255 here


@pytest.mark.parametrize("mode,count,opened,n", [
    ("center-crop", 3, 3, 3), ("resize", 1, 1, 1), ("center-crop", 0, N_IMAGES, N_IMAGES),
    ("center-crop", 100, N_IMAGES, N_IMAGES), ("random-crops", 2, 2, 2), ("random-crops", 20, N_IMAGES, 20),
])
def test_count_limits_the_files_opened(folder, monkeypatch, mode, count, opened, n):
    calls = []
    real = imagefolder.open_image

    def spy(path, *a):
        calls.append(os.path.basename(path))
        return real(path, *a)

    monkeypatch.setattr(imagefolder, "open_image", spy)
    out = load(folder, 16, mode, count)
    assert out.shape[0] == n and len(calls) == opened
    assert len(set(calls)) == len(calls)  # each file opened once
    assert calls == sorted(calls)  # in name order, so counts are predictable


def test_empty_missing_and_imageless_folders(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=refusal("AtelierLoadImageFolder", ".*has no images")):
        load(empty)
    (empty / "readme.txt").write_text("hi")
    with pytest.raises(ValueError, match="has no images"):
        load(empty)
    with pytest.raises(ValueError, match="does not exist"):
        load(tmp_path / "missing")
    with pytest.raises(ValueError, match="does not exist"):
        load(empty / "readme.txt")


def test_corrupt_image_gives_a_clear_error(folder):
    (folder / "b_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    with pytest.raises(ValueError) as e:
        load(folder)
    msg = str(e.value)
    assert msg.startswith(error_start("AtelierLoadImageFolder") + "cannot read b_broken.png") and "re-save" in msg
    (folder / "b_broken.png").write_bytes(b"")
    with pytest.raises(ValueError, match="cannot read b_broken.png"):
        load(folder)


def test_truncated_png_gives_a_clear_error(folder):
    data = (folder / "a_rgb.png").read_bytes()
    (folder / "a_rgb.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot read a_rgb.png"):
        load(folder)


def test_bad_mode_and_size(folder):
    with pytest.raises(ValueError, match="unknown mode"):
        load(folder, 32, "stretch")
    with pytest.raises(ValueError, match="size must be at least 1"):
        load(folder, 0)


def test_relative_folders_are_inside_the_input_folder(tmp_dirs):
    d = tmp_dirs.input / "mine"
    d.mkdir()
    Image.new("RGB", (20, 20), (255, 255, 255)).save(d / "w.png")
    out = load("mine", 8)
    assert out.shape == (1, 8, 8, 3) and torch.allclose(out, torch.ones_like(out))
    assert load(f'  "{d}"  ', 8).shape == (1, 8, 8, 3)  # pasted paths with quotes and spaces
    Image.new("RGB", (20, 20), (0, 0, 0)).save(tmp_dirs.input / "example.png")
    out = load("", 8)                                    # the default: ComfyUI's input folder itself
    assert out.shape == (1, 8, 8, 3) and out.max() == 0


def test_is_changed_follows_the_folder(folder):
    cls = NODE_CLASS_MAPPINGS["AtelierLoadImageFolder"]
    first = cls.IS_CHANGED(str(folder), 32, "resize", 0)
    assert first == cls.IS_CHANGED(str(folder), 32, "resize", 0)
    Image.new("RGB", (8, 8)).save(folder / "z_new.png")
    assert cls.IS_CHANGED(str(folder), 32, "resize", 0) != first
    assert cls.IS_CHANGED("/no/such/folder", 32, "resize", 0) == "/no/such/folder"


def test_exif_rotation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    img.save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    assert imagefolder.open_image(str(tmp_path / "rotated.jpg")).size == (20, 40)


def test_shared_art_thumbnails_load():
    thumbs = shared_path("art", "thumbs")
    out = load(thumbs, 32, "center-crop", count=4)
    assert out.shape == (4, 32, 32, 3) and 0 <= out.min() and out.max() <= 1 and out.std() > 0.05


def test_shared_path_skips_when_the_data_is_absent():
    with pytest.raises(pytest.skip.Exception, match="shared data not available"):
        shared_path("no-such-dataset")


# -- Image Grid ----------------------------------------------------------------------------

def grid(images, columns=0, padding=2):
    before = deep_digest(images)
    (out,) = NODE_CLASS_MAPPINGS["AtelierImageGrid"]().grid(images, columns, padding)
    assert deep_digest(images) == before
    return out


@pytest.mark.parametrize("b,columns,padding,shape", [
    (5, 0, 2, (1, 2 * 8 + 3 * 2, 3 * 8 + 4 * 2, 3)),
    (4, 0, 2, (1, 2 * 8 + 3 * 2, 2 * 8 + 3 * 2, 3)),
    (5, 5, 0, (1, 8, 40, 3)),
    (3, 10, 1, (1, 10, 3 * 8 + 4, 3)),   # more columns than images
    (3, 1, 4, (1, 3 * 8 + 4 * 4, 8 + 8, 3)),
    (1, 0, 2, (1, 12, 12, 3)),
])
def test_image_grid_shapes(b, columns, padding, shape):
    imgs = torch.rand(b, 8, 8, 3)
    out = grid(imgs, columns, padding)
    assert out.shape == shape and out.dtype == torch.float32


def test_image_grid_places_images_on_white():
    imgs = torch.rand(5, 8, 6, 3) * 0.5
    out = grid(imgs, 3, 2)[0]
    assert torch.equal(out[2:10, 2:8], imgs[0])
    assert torch.equal(out[2:10, 10:16], imgs[1])
    assert torch.equal(out[12:20, 2:8], imgs[3])
    assert torch.all(out[:2] == 1.0) and torch.all(out[12:20, 18:24] == 1.0)  # padding and the empty cell


def test_image_grid_refuses_empty_batches():
    with pytest.raises(ValueError, match="non-empty IMAGE batch"):
        grid(torch.zeros(0, 8, 8, 3))
    with pytest.raises(ValueError, match="non-empty IMAGE batch"):
        grid(torch.zeros(8, 8, 3))
