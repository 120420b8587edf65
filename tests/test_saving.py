"""Numbered saves never overwrite and never lie: saves at the same moment (threads, processes), case-
insensitive names and stray files. Every file loads back to the model that was saved into it."""
import errno
import os
import subprocess
import sys
import threading

import pytest
import torch

from autoencoder_atelier.headless import core_nodes
from autoencoder_atelier.models import files, storage
from autoencoder_atelier.nodes import bridge

from helpers import ROOT, tiny_ae, weights_equal
from test_reliability import call, run_threads


def save(ae, prefix="style"):
    return call("AtelierSaveAutoencoder", autoencoder=ae, filename_prefix=prefix)[0]


def test_two_threads_saving_one_prefix_at_the_same_moment_get_their_own_files(tmp_dirs, monkeypatch):
    """Both pick counter 1 from the listing (the barrier holds them after writing); the atomic claim
    gives one of them 2, and each is told its own path."""
    both_written = threading.Barrier(2, timeout=30)
    real = storage.save_file

    def in_step(tensors, filename, metadata=None):
        real(tensors, filename, metadata=metadata)
        both_written.wait()

    monkeypatch.setattr(storage, "save_file", in_step)
    models = [tiny_ae("conv", seed=s) for s in (1, 2)]
    paths = [None, None]

    def saver(i):
        return lambda: paths.__setitem__(i, save(models[i]))

    run_threads(saver(0), saver(1))
    assert sorted(os.path.basename(p) for p in paths) == ["style_00001.safetensors", "style_00002.safetensors"]
    for ae, path in zip(models, paths):
        assert weights_equal(storage.load_autoencoder(path), ae)
    assert sorted(os.listdir(tmp_dirs.models)) == ["style_00001.safetensors", "style_00002.safetensors"]


CHILD = r"""
import os, sys, time
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
import torch; torch.set_num_threads(1)
import atelier; atelier.load_pack()
from autoencoder_atelier.models import storage
from autoencoder_atelier.nodes import bridge
from helpers import tiny_ae
from test_reliability import call
me, folder, seeds = sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3:]]
bridge.configure(models_dir=folder)
real = storage.save_file
def in_step(tensors, filename, metadata=None):  # both processes have chosen their number before either claims it
    real(tensors, filename, metadata=metadata)
    up = os.path.join(folder, "..")
    open(os.path.join(up, f"ready-{{me}}-{{len(os.listdir(up))}}"), "w").close()
    deadline = time.time() + 20
    while time.time() < deadline and len([n for n in os.listdir(up) if n.startswith("ready")]) % 2:
        time.sleep(0.01)
storage.save_file = in_step
for s in seeds:
    path = call("AtelierSaveAutoencoder", autoencoder=tiny_ae("conv", seed=s), filename_prefix="style")[0]
    print(s, path, flush=True)
"""


def test_two_processes_saving_one_prefix_at_once_never_overwrite(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    script = CHILD.format(root=ROOT, tests=os.path.join(ROOT, "tests"))
    seeds = {"a": [1, 2, 3], "b": [4, 5, 6]}
    procs = [subprocess.Popen([sys.executable, "-c", script, me, str(folder), *map(str, s)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for me, s in seeds.items()]
    outs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    saved = dict(line.split(" ", 1) for out, _ in outs for line in out.splitlines())
    assert len(saved) == 6 and len(set(saved.values())) == 6
    assert sorted(os.listdir(folder)) == [f"style_{n:05d}.safetensors" for n in range(1, 7)]
    for seed, path in saved.items():
        assert weights_equal(storage.load_autoencoder(path), tiny_ae("conv", seed=int(seed))), seed


def test_a_prefix_differing_only_in_case_never_replaces_a_file(tmp_dirs, monkeypatch):
    first = save(tiny_ae("conv", seed=1), "portrait")
    # The listing is case-folded, so this holds on case-sensitive disks too ...
    second = save(tiny_ae("conv", seed=2), "Portrait")
    assert os.path.basename(second) == "Portrait_00002.safetensors"
    # ... and the claim itself refuses a name a case-insensitive disk already has, whatever the listing said.
    real_link, real_listdir = os.link, os.listdir

    def case_insensitive_link(src, dst):
        if os.path.basename(dst).casefold() in {n.casefold() for n in real_listdir(os.path.dirname(dst))}:
            raise FileExistsError(errno.EEXIST, "File exists", dst)
        return real_link(src, dst)

    monkeypatch.setattr(os, "link", case_insensitive_link)
    monkeypatch.setattr(os, "listdir", lambda d: [])  # the listing saw nothing
    third = save(tiny_ae("conv", seed=3), "PORTRAIT")
    monkeypatch.undo()
    assert os.path.basename(third) == "PORTRAIT_00003.safetensors"
    for seed, path in ((1, first), (2, second), (3, third)):
        assert weights_equal(storage.load_autoencoder(path), tiny_ae("conv", seed=seed))


@pytest.mark.parametrize("stray", ["style_" + "9" * 200 + ".safetensors", "style_00001.safetensors/",
                                   "style_00002.safetensors@", "style_123456789012.safetensors"])
def test_stray_files_never_block_a_save(stray, tmp_dirs):
    """Over-long counters, a folder or a dangling link under a numbered name: the save takes another number."""
    target = tmp_dirs.models / stray.rstrip("/@")
    if stray.endswith("/"):
        target.mkdir()
    elif stray.endswith("@"):
        os.symlink(tmp_dirs.models / "nowhere", target)
    else:
        target.write_bytes(b"not a model")
    ae = tiny_ae("conv", seed=4)
    path = save(ae)
    assert os.path.basename(path) != target.name and weights_equal(storage.load_autoencoder(path), ae)
    assert os.path.basename(save(ae)) != os.path.basename(path)


def test_without_hard_links_the_name_is_reserved_exclusively(tmp_dirs, monkeypatch):
    """FAT and some network shares refuse hard links: an O_EXCL reservation does the same job."""
    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    (tmp_dirs.models / "style_00001.safetensors").write_bytes(b"someone else's")
    ae = tiny_ae("conv", seed=5)
    path = save(ae)
    assert os.path.basename(path) == "style_00002.safetensors" and weights_equal(storage.load_autoencoder(path), ae)
    assert (tmp_dirs.models / "style_00001.safetensors").read_bytes() == b"someone else's"
    assert sorted(os.listdir(tmp_dirs.models)) == ["style_00001.safetensors", "style_00002.safetensors"]


def test_write_new_file_gives_up_cleanly(tmp_path):
    names = [tmp_path / "a", tmp_path / "b"]
    for n in names:
        n.write_bytes(b"x")
    with pytest.raises(FileExistsError):
        files.write_new_file(iter(names + [names[0]] * 10), lambda p: open(p, "wb").close(), attempts=5)
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]


def test_headless_image_saves_claim_their_numbers_too(tmp_dirs):
    images = torch.rand(3, 8, 8, 3)
    (tmp_dirs.output / "shot_00002_.png").write_bytes(b"earlier")
    shots = core_nodes.SaveImage().save_images(images, "shot")["ui"]["images"]
    names = [s["filename"] for s in shots]
    assert names == ["shot_00003_.png", "shot_00004_.png", "shot_00005_.png"]
    assert (tmp_dirs.output / "shot_00002_.png").read_bytes() == b"earlier"


def test_previews_go_to_a_private_folder(tmp_dirs):
    (shot,) = core_nodes.PreviewImage().save_images(torch.rand(1, 8, 8, 3))["ui"]["images"]
    folder = os.path.dirname(shot["path"])
    assert os.path.basename(folder).startswith("atelier_preview_") and folder != os.path.join("/tmp", "atelier_preview")
    assert os.stat(folder).st_mode & 0o077 == 0  # mkdtemp: only this user
    assert bridge.output_dir() not in shot["path"]
