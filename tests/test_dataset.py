"""Large collections (Load Dataset Folder, the Train dataset input) and folder confinement inside ComfyUI."""
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from autoencoder_atelier.models import dataset as dataset_module
from autoencoder_atelier.models.dataset import WorkFolder
from autoencoder_atelier.models.procedural import make_image
from autoencoder_atelier.models.train import AUTO_CROP_MAX, Trainer, TrainSettings, memory_needed
from autoencoder_atelier.nodes import NODE_CLASS_MAPPINGS, bridge
from helpers import procedural, refusal, tiny_ae

SIZES = [(96, 64), (40, 120), (80, 80), (200, 50), (64, 64), (120, 90)]


@pytest.fixture
def works(tmp_path):
    """Works of different sizes and aspect ratios, one of them grayscale and one smaller than the crop."""
    folder = tmp_path / "works"
    folder.mkdir()
    for i, (w, h) in enumerate(SIZES):
        img = make_image(i, max(w, h)).resize((w, h))
        (img.convert("L") if i == 2 else img).save(folder / f"work_{i}.png")
    (folder / "notes.txt").write_text("not an image")
    return str(folder)


def test_crops_are_deterministic_bounded_and_come_from_every_size(works, monkeypatch):
    monkeypatch.setattr(dataset_module, "POOL_WORKS", (2, 3))
    ds = WorkFolder(works)
    assert len(ds) == len(SIZES) and ds.pool_size == 3
    a = ds.crops(seed=1, step=5, count=8, crop=(48, 48), generator=torch.Generator().manual_seed(7))
    b = WorkFolder(works).crops(seed=1, step=5, count=8, crop=(48, 48), generator=torch.Generator().manual_seed(7))
    assert a.shape == (8, 3, 48, 48) and a.dtype == torch.float32 and torch.equal(a, b)
    assert 0 <= float(a.min()) and float(a.max()) <= 1 and float(a.std()) > 0.01
    seen = set()
    for step in range(2 * len(SIZES)):   # the pool slides over the whole collection, never holding more than 3
        ds.crops(seed=1, step=step, count=4, crop=(48, 48), generator=torch.Generator().manual_seed(step))
        assert len(ds._cache) <= 3
        seen |= set(ds.pool(1, step))
    assert seen == set(range(len(SIZES)))
    # a work smaller than the crop (40 wide) is scaled up to hold it
    assert min(ds.work(1, 64).shape[1:]) >= 64


def test_max_side_and_count(works):
    ds = WorkFolder(works, max_side=60, count=4)
    assert len(ds) == 4 and max(max(s) for s in ds.sizes) == 60
    assert max(ds.work(3).shape[1:]) == 60


def test_works_of_every_image_mode_train_as_in_load_image_folder(tmp_path):
    """RGBA, palette, 16-bit and CMYK works are read like Load Image Folder reads them (they once reached a
    TypeError when the first training step decoded them)."""
    from PIL import Image

    from autoencoder_atelier.models.imagefolder import open_image
    rgb = make_image(0, 40)
    rgba = rgb.convert("RGBA")
    rgba.putalpha(128)
    kinds = {"rgba.png": rgba, "palette.gif": rgb.convert("P"), "cmyk.jpg": rgb.convert("CMYK"),
             "deep.png": Image.fromarray((torch.rand(40, 40) * 65535).to(torch.int32).numpy().astype("uint16"))}
    for name, img in kinds.items():
        img.save(tmp_path / name)
    ds = WorkFolder(str(tmp_path))
    for i, path in enumerate(ds.paths):
        assert torch.equal(ds.work(i), torch.from_numpy(np.array(open_image(path))).permute(2, 0, 1)), path
    node = NODE_CLASS_MAPPINGS["AtelierTrainAutoencoder"]()
    with torch.inference_mode():
        ae, _, _ = node.train(tiny_ae("conv"), steps=1, batch_size=2, learning_rate=0.002, seed=0, loss="mse",
                              crop_size=32, dataset=ds)
    assert ae.state.step == 1


def test_training_on_a_dataset_lowers_the_loss_and_keeps_the_model(works):
    ae = tiny_ae("conv")
    before = [p.clone() for p in ae.model.parameters()]
    ds = WorkFolder(works)
    settings = TrainSettings(steps=40, batch_size=4, crop_size=32, learning_rate=0.005)
    trainer = Trainer(ae, ds, settings)
    x = trainer.sample_images(4).detach()
    out = trainer.run()
    with torch.no_grad():
        untrained = float(torch.mean((ae.model.reconstruct(x) - x) ** 2))
        after = float(torch.mean((out.model.reconstruct(x) - x) ** 2))
    assert after < 0.5 * untrained
    assert all(torch.equal(p, q) for p, q in zip(before, ae.model.parameters()))
    assert out.state.summary["data_size"] == len(SIZES) and out.state.summary["crop"] == [32, 32]
    assert ds._cache == {}   # decoded works are let go after training


def test_a_dataset_with_crop_size_auto_trains_on_crops_of_at_most_the_auto_side(works):
    """Works differ in size, so auto takes its fraction of AUTO_CROP_MAX: squares, the same for every work."""
    trainer = Trainer(tiny_ae("conv"), WorkFolder(works), TrainSettings(steps=1, crop_size=0))
    side = trainer.crop[0]
    assert trainer.crop == (side, side) and 32 <= side <= AUTO_CROP_MAX
    assert trainer.batch(0)[0].shape[-2:] == (side, side)


def test_memory_needed_counts_resident_images_but_not_a_dataset(works):
    ae, s = tiny_ae("conv"), TrainSettings(steps=1, batch_size=4, crop_size=32)
    images = procedural(8, 64)
    lazy = memory_needed(ae, WorkFolder(works), s)
    assert lazy > 4 * ae.nbytes()
    assert memory_needed(ae, images, s) == lazy + images.numel() * 4


def test_train_node_uses_the_dataset_instead_of_images(works):
    node = NODE_CLASS_MAPPINGS["AtelierTrainAutoencoder"]()
    spec = NODE_CLASS_MAPPINGS["AtelierTrainAutoencoder"].INPUT_TYPES()
    assert {"images", "dataset"} <= set(spec["optional"]) and "images" not in spec["required"]
    common = dict(steps=3, batch_size=2, learning_rate=0.002, seed=0, loss="mse", crop_size=32)
    with torch.inference_mode():
        with pytest.raises(ValueError, match="connect your works: images .* or a dataset"):
            node.train(tiny_ae("conv"), **common)
        tiny = procedural(2, 16)   # 16-pixel images would give 16-pixel crops: the dataset's 32 show it was used
        ae, _, grid = node.train(tiny_ae("conv"), images=tiny, dataset=WorkFolder(works), **common)
    assert ae.state.summary["crop"] == [32, 32] and ae.state.summary["data_size"] == len(SIZES)


def test_load_dataset_node(works, tmp_dirs):
    node = NODE_CLASS_MAPPINGS["AtelierLoadDataset"]
    (ds,) = node().load(works, 0, 0)
    assert isinstance(ds, WorkFolder) and len(ds) == len(SIZES)
    assert node.VALIDATE_INPUTS(works) is True
    with pytest.raises(ValueError, match=refusal("AtelierLoadDataset", "folder .* does not exist")):
        node().load(os.path.join(works, "missing"), 0, 0)


# -- folder confinement ------------------------------------------------------------------------------

@pytest.fixture
def in_comfyui(tmp_path, monkeypatch):
    """bridge as inside ComfyUI, with folder_paths' answers for an input folder and registered folders."""
    input_dir, registered = tmp_path / "input", tmp_path / "registered"
    (input_dir / "mine" / "series").mkdir(parents=True)
    registered.mkdir()
    fp = SimpleNamespace(get_input_directory=lambda: str(input_dir), folder_names_and_paths={},
                         get_folder_paths=lambda key: [str(registered)])
    monkeypatch.setattr(bridge, "IN_COMFYUI", True)
    monkeypatch.setattr(bridge, "_fp", fp)
    return SimpleNamespace(fp=fp, input=input_dir, registered=registered)


def test_inside_comfyui_only_the_input_folder_and_registered_folders_are_read(in_comfyui, tmp_path):
    outside = tmp_path / "private"
    outside.mkdir()
    assert bridge.image_folder("mine") == str(in_comfyui.input / "mine")
    assert bridge.image_folder(str(in_comfyui.input / "mine" / "series")) == str(in_comfyui.input / "mine" / "series")
    for bad in (str(outside), "../private", "mine/../../private"):
        with pytest.raises(ValueError, match="outside ComfyUI's input folder") as e:
            bridge.image_folder(bad)
        assert "extra_model_paths.yaml" in str(e.value) and bridge.DATASET_FOLDER in str(e.value)
    os.symlink(outside, in_comfyui.input / "link")   # a link out of the input folder is outside too
    with pytest.raises(ValueError, match="outside"):
        bridge.image_folder("link")
    with pytest.raises(ValueError, match="outside"):
        bridge.image_folder(str(in_comfyui.registered))   # not registered yet
    in_comfyui.fp.folder_names_and_paths[bridge.DATASET_FOLDER] = ([str(in_comfyui.registered)], set())
    assert bridge.image_folder(str(in_comfyui.registered)) == str(in_comfyui.registered)
    assert bridge.image_folder_choices() == ["mine", "mine/series", str(in_comfyui.registered)]   # links not followed
    # the node refuses before running, with the same message
    message = NODE_CLASS_MAPPINGS["AtelierLoadImageFolder"].VALIDATE_INPUTS(str(outside))
    assert "outside ComfyUI's input folder" in message


def test_headless_reads_any_folder(tmp_path, tmp_dirs):
    outside = tmp_path / "anywhere"
    outside.mkdir()
    assert not bridge.IN_COMFYUI
    assert bridge.image_folder(str(outside)) == str(outside)
