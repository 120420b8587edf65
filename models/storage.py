"""Safetensors files for Autoencoder: weights, optimizer state and training history in one file.

Files come from strangers, so reading trusts nothing: the header is parsed and checked
(size, offsets, metadata, config ranges, tensor names and shapes against the config)
before a single weight is allocated, and pickles are never loaded. Writes go through
models/files.py: a failed save leaves no file behind and a new save never replaces another.
"""
import datetime
import functools
import json
import logging
import math
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from safetensors.torch import save

from . import __version__, files
from .adversary import expected_shapes as adversary_shapes
from .autoencoder import Autoencoder, TrainState
from .config import ConfigError, validate_config
from .errors import AtelierError
from .grain import MAX_GAIN
from .networks import build_network, network_class

log = logging.getLogger(__name__)

FORMAT = "autoencoder-atelier"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 16 * 1024 * 1024
MAX_META_CHARS = 100_000
MAX_FILE_HISTORY = 1_000_000   # loss values a model file may hold (more is a hostile file)
FLOAT_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}
OPTIM_KEYS = ("step", "exp_avg", "exp_avg_sq")


class ModelFileError(AtelierError):
    """A file that is not a usable Autoencoder Atelier model; the message says why and what to do."""


# -- writing ---------------------------------------------------------------------------

def to_tensors(ae):
    """Everything an Autoencoder holds, as a flat {name: CPU tensor} dict."""
    out = {f"model.{k}": v.detach().to("cpu", torch.float32).contiguous() for k, v in ae.model.state_dict().items()}
    _optimizer_tensors(out, "optim", ae.state.optimizer)
    adversary = ae.state.adversary
    if adversary:   # loss sharp's discriminator: resuming it is part of resuming the run
        out.update({f"adv.{k}": v.detach().to("cpu", torch.float32).contiguous()
                    for k, v in adversary["weights"].items()})
        _optimizer_tensors(out, "adv_optim", adversary.get("optimizer"))
    for key in ("loss_history", "adv_history", "val_history"):   # val_history's [step, dB] pairs as one row
        values = getattr(ae.state, key)
        if values:
            out[f"train.{key}"] = torch.tensor(values, dtype=torch.float32).flatten()
    for k, v in (ae.state.latent_stats or {}).items():
        out[f"stats.{k}"] = v.detach().to("cpu", torch.float32).contiguous()
    if ae.prior is not None:
        out.update({f"prior.latents.{i}": z.float().contiguous() for i, z in enumerate(ae.prior.latents)})
    return out


def _optimizer_tensors(out, prefix, state):
    for i, st in (state or {}).items():
        for k in OPTIM_KEYS:
            out[f"{prefix}.{i}.{k}"] = st[k].detach().to("cpu", torch.float32).contiguous()


SAVED_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?(\.\d+)?([+-]\d{2}:\d{2}|Z)?")
VERSION_RE = re.compile(r"\d{1,4}\.\d{1,4}\.\d{1,4}[0-9A-Za-z.+-]{0,16}")


def card_text(ae, saved=None, version=None):
    """The model card: architecture, size, training (steps, number of images), save date and pack version.
    Without ``saved``/``version`` it describes where a loaded model came from (``ae.origin``)."""
    saved = saved or ae.origin.get("saved")
    version = version or ae.origin.get("pack_version") or (None if ae.origin else __version__)
    lines = [f"Autoencoder Atelier {version or '(unknown version)'} model", ae.describe()]
    if saved:
        lines.append(f"saved {saved[:10]} {saved[11:16]} UTC" if saved.endswith(("+00:00", "Z"))
                     else f"saved {saved}")
    return "\n".join(lines)


def to_metadata(ae):
    training = {"step": ae.state.step, "summary": ae.state.summary}
    if ae.state.loss_scale:
        training["loss_scale"] = ae.state.loss_scale
    saved = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(ae.config, sort_keys=True),
        "model_id": ae.model_id,
        "training": json.dumps(training, sort_keys=True),
        **({"prior": json.dumps(prior_metadata(ae.prior), sort_keys=True)} if ae.prior is not None else {}),
        "card": card_text(ae, saved, __version__),
        "pack_version": __version__,
        "saved": saved,
    }


def save_file(tensors, filename, metadata=None):
    """safetensors' save_file, but written by Python: failures are OSErrors with their errno (disk full,
    read-only, name too long) and the data is on disk (fsync) before the file gets its final name."""
    data = save(tensors, metadata=metadata)
    with open(filename, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _writer(ae):
    tensors, metadata = to_tensors(ae), to_metadata(ae)
    return lambda tmp: save_file(tensors, tmp, metadata=metadata)


def save_autoencoder(ae, path):
    """Write ``ae`` to ``path`` atomically, replacing any file there."""
    return files.replace_file(os.fspath(path), _writer(ae))


def save_new_autoencoder(ae, candidates):
    """Write ``ae`` under the first of ``candidates`` (paths) that is free, never replacing a file; returns it."""
    return files.write_new_file(candidates, _writer(ae))


# -- reading ---------------------------------------------------------------------------

def _fail(path, what, fix):
    return ModelFileError(f"{os.path.basename(path)}: {what}. {fix}")


_ITEM_SIZE = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8}
_DAMAGED = "The file is damaged; re-save or re-download it"


class _ModelFile:
    """One open handle on a model file: the header is read and checked on opening, the tensor bytes only when
    asked, from the same handle and never memory-mapped. A file truncated or replaced meanwhile cannot make
    the loaded bytes differ from the checked ones, or kill the process (SIGBUS, as a mapped read would)."""

    def __init__(self, path):
        self.path = path = os.fspath(path)
        if not files.is_regular_file(path):
            what = "not a regular file (a folder, FIFO or device)" if os.path.exists(path) else "file not found"
            raise _fail(path, what, "Check the name, or refresh the node list (press R) after adding files")
        try:
            self.f = files.open_regular(path)   # a FIFO or device (not a file) is refused, never read
        except OSError as e:
            raise self._unreadable(e) from None
        try:
            self.meta, self.entries = self._read_header()
        except BaseException:
            self.f.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def _unreadable(self, e):
        return _fail(self.path, f"cannot be read ({e.strerror or e})", "Check the file's permissions and the disk")

    def _read_header(self):
        path = self.path
        try:
            size = os.fstat(self.f.fileno()).st_size
            head = self.f.read(8)
            (n,) = struct.unpack("<Q", head) if len(head) == 8 else (None,)
            plausible = n is not None and n <= MAX_HEADER_BYTES and n + 8 <= size
            raw = self.f.read(n) if plausible else b""
        except OSError as e:
            raise self._unreadable(e) from None
        if not raw.startswith(b"{") or len(raw) != n:
            # Sniff only once the file fails as safetensors: a valid header length can start with 0x80 too.
            if head[:1] == b"\x80" or head[:4] == b"PK\x03\x04":
                raise _fail(path, "this is a pickled PyTorch checkpoint (.ckpt/.pt) renamed to .safetensors",
                            "Pickles can run code, so they are never loaded; re-save the weights as safetensors")
            if n is None:
                raise _fail(path, f"file is only {size} bytes, too short to be safetensors",
                            "Re-save or re-download it")
            raise _fail(path, "header is cut off or not a safetensors header (file truncated or of another kind)",
                        "Re-save or re-download the file")
        try:
            header = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise _fail(path, "header is not valid safetensors JSON", _DAMAGED) from None
        if not isinstance(header, dict):
            raise _fail(path, "header is not a JSON object", _DAMAGED)
        meta = header.pop("__metadata__", None) or {}
        if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
            raise _fail(path, "metadata is not a map of strings", "The file is damaged or not ours")
        self.data_len = size - 8 - n
        entries = {}
        for name, info in header.items():
            try:
                dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
                ok = (isinstance(dtype, str) and isinstance(shape, list)
                      and all(type(d) is int and d >= 0 for d in shape)
                      and type(start) is int and type(end) is int and 0 <= start <= end)
            except (TypeError, KeyError, ValueError):
                ok = False
            if not ok:
                raise _fail(path, f"tensor entry {name!r} is malformed", _DAMAGED)
            if end > self.data_len:
                raise _fail(path, "file is truncated (tensor data ends past the end of the file)",
                            "Re-save or re-download the file")
            if dtype not in FLOAT_DTYPES:
                raise _fail(path, f"tensor {name!r} has dtype {dtype}, expected floating point", "The file is not ours")
            if end - start != math.prod(shape) * _ITEM_SIZE[dtype]:
                raise _fail(path, f"could not read tensors ({name!r} has {end - start} bytes for its shape "
                            f"{shape})", _DAMAGED)
            entries[name] = (dtype, tuple(shape), start, end)
        position = 0
        for name, (_, _, start, end) in sorted(entries.items(), key=lambda e: e[1][2:]):
            if start != position:
                raise _fail(path, f"could not read tensors (the data of {name!r} overlaps another tensor or leaves "
                            "a gap)", _DAMAGED)
            position = end
        if position != self.data_len:
            raise _fail(path, f"could not read tensors ({self.data_len - position} stray bytes after the tensor "
                        "data)", _DAMAGED)
        return meta, entries

    def shapes(self):
        return {k: v[1] for k, v in self.entries.items()}

    def tensors(self):
        """{name: float32 tensor} from the bytes after the header, read now in one go."""
        try:
            data = bytearray(self.data_len)
            got = self.f.readinto(data)
        except OSError as e:
            raise self._unreadable(e) from None
        except MemoryError:
            raise _fail(self.path, f"not enough memory to read its {self.data_len / 2 ** 20:.0f} MB of tensors",
                        "Close other programs or load a smaller model") from None
        if got != self.data_len or self.f.read(1):
            raise _fail(self.path, "the file changed while it was read (another program is writing it?)",
                        "Wait until the file is complete, then load it again")
        out = {}
        for name, (dtype, shape, start, end) in self.entries.items():
            n = math.prod(shape)
            t = (torch.frombuffer(data, dtype=FLOAT_DTYPES[dtype], count=n, offset=start) if n
                 else torch.empty(0, dtype=FLOAT_DTYPES[dtype])).reshape(shape)
            # Aligned float32 is used where it lies: the buffer is this call's own and lives on with its tensors.
            aligned = t.dtype == torch.float32 and start % 4 == 0
            out[name] = t if aligned else t.to(torch.float32, copy=True)
        return out


def read_header(path):
    """Parse and sanity-check a safetensors header: returns (metadata, {name: (dtype, shape)})."""
    with _ModelFile(path) as f:
        return f.meta, {k: v[:2] for k, v in f.entries.items()}


def _json_field(path, meta, key, limit=MAX_META_CHARS):
    text = meta.get(key)
    if text is None:
        raise _fail(path, f"metadata has no '{key}'", "The file is damaged or was not written by Autoencoder Atelier")
    if len(text) > limit:
        raise _fail(path, f"metadata '{key}' is implausibly large ({len(text)} characters)", "The file is not ours")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise _fail(path, f"metadata '{key}' is not valid JSON", "The file is damaged") from None


def _check_format(path, meta):
    if meta.get("format") != FORMAT:
        raise _fail(path, "not an Autoencoder Atelier model (its metadata has no 'format: autoencoder-atelier')",
                    "Stable Diffusion VAEs and other models belong in their own folders (e.g. models/vae) and nodes")
    version = meta.get("format_version", "")
    if not re.fullmatch(r"[0-9]{1,6}", version):
        raise _fail(path, f"format_version {version[:20]!r} is not a number", "The file is damaged")
    if int(version) > FORMAT_VERSION:
        raise _fail(path, f"written by a newer Autoencoder Atelier (file format {version}, this pack reads up to "
                    f"{FORMAT_VERSION})", "Update the Autoencoder Atelier node pack")


def read_config(path, meta):
    try:
        return validate_config(_json_field(path, meta, "config", 10_000))
    except ConfigError as e:
        raise _fail(path, f"its config is invalid ({e})",
                    "The file is damaged or was edited; it cannot be loaded") from None


# -- the latent prior's metadata ------------------------------------------------------------------------

PRIOR_LIMITS = {"crop": (2, 4096), "passes": (1, 16)}
MAX_PRIOR_GROUPS = 64


def prior_metadata(prior):
    return {**prior.config(), "shapes": [list(z.shape) for z in prior.latents], "summary": prior.summary}


def _prior_config(path, meta, config):
    """The prior entry of a file's metadata, checked (None when the file has no prior)."""
    if "prior" not in meta:
        return None
    from .prior_training import MAX_LATENT_VALUES
    cfg = _json_field(path, meta, "prior", 10_000)
    shapes = cfg.get("shapes") if isinstance(cfg, dict) else None
    ok = (isinstance(cfg, dict) and all(type(cfg.get(k)) is int and lo <= cfg[k] <= hi
                                        for k, (lo, hi) in PRIOR_LIMITS.items())
          and isinstance(shapes, list) and 1 <= len(shapes) <= MAX_PRIOR_GROUPS
          and all(isinstance(s, list) and len(s) == 4 and all(type(d) is int and 1 <= d <= 2 ** 20 for d in s)
                  and s[1] == config["latent_channels"] for s in shapes)
          and isinstance(cfg.get("summary", {}), dict))
    if not ok:
        raise _fail(path, "its latent prior's metadata is malformed or out of range (or its latents do not have "
                    f"{config['latent_channels']} channels)", "The file is damaged; load an earlier save or run "
                    "Train Latent Prior again")
    if sum(math.prod(s) for s in shapes) > MAX_LATENT_VALUES:
        raise _fail(path, "its latent prior is implausibly large", "The file is damaged or not ours")
    if network_class(config).fixed_size:
        raise _fail(path, "a dense model cannot carry a latent prior", "The file is damaged or was edited")
    return cfg


def _prior_shapes(config, cfg):
    return {f"prior.latents.{i}": tuple(s) for i, s in enumerate(cfg["shapes"])} if cfg else {}


def _prior_of(path, meta, config, t):
    from .latent_prior import LatentPrior
    cfg = _prior_config(path, meta, config)
    if cfg is None:
        return None
    prior = LatentPrior([t[f"prior.latents.{i}"] for i in range(len(cfg["shapes"]))], cfg["crop"], cfg["passes"])
    prior.summary = _prior_summary(cfg)
    return prior


def _prior_summary(cfg):
    return {str(k)[:64]: v for k, v in list(cfg.get("summary", {}).items())[:20]
            if type(v) in (int, str) and len(str(v)) <= 100}


# -- what each group of tensors must be ---------------------------------------------------
# A file's tensors are named "<group>.<name>". Each group says which names and shapes a config allows and
# what its values must satisfy; a group another module adds to the file (a latent prior, a discriminator)
# adds one entry here and is checked like the rest, before anything is built from it.

@dataclass(frozen=True)
class TensorGroup:
    shapes: Callable     # (config, parameter shapes, groups' metadata) -> {name: shape}; None = any 1-D length
    check: Callable      # ({name: float32 tensor} of this group, as in the file) -> what is wrong, or None
    required: bool = False


def _finite(tensors):
    bad = [k for k, v in tensors.items() if not torch.isfinite(v).all()]
    return f"{bad[0]!r} contains NaN or infinite values" if bad else None


def _check_optimizer(t):
    if t and len(t) != 3 * len({k.split(".")[1] for k in t}):
        return "its optimizer state is incomplete"
    steps = [v for k, v in t.items() if k.endswith(".step")]
    return (_finite(t) or ("an optimizer step count is negative or fractional"
                           if any(v.item() < 0 or v.item() != round(v.item()) for v in steps) else None)
            or ("optimizer second moments (exp_avg_sq) are negative"
                if any((v < 0).any() for k, v in t.items() if k.endswith(".exp_avg_sq")) else None))


def _check_latent_stats(t):
    if len(t) == 1:
        return "its latent statistics are incomplete (a mean without a covariance or the other way round)"
    if not t or _finite(t):
        return _finite(t)
    cov = t["stats.cov"].double()
    scale = cov.abs().max().item() + 1e-12
    if (cov - cov.T).abs().max().item() > 1e-4 * scale:
        return "its latent covariance is not symmetric"
    if torch.linalg.eigvalsh(cov).min().item() < -1e-4 * scale:
        return "its latent covariance is not positive semi-definite (a variance below zero)"
    return None


def _optimizer_shapes(params, prefix="optim"):
    return {f"{prefix}.{i}.{k}": shape if k != "step" else () for i, shape in enumerate(params) for k in OPTIM_KEYS}


def _adversary_shapes(config):
    return {f"adv.{k}": v for k, v in adversary_shapes(config["channels"])[0].items()}


def _check_adversary(t):
    """Loss sharp's discriminator: all of it or none of it, finite."""
    if t and len(t) != len(adversary_shapes(3)[0]):
        return "its discriminator (loss sharp) is incomplete"
    return _finite(t) and f"its discriminator (loss sharp): {_finite(t)}"


def _check_train(t):
    if len(t.get("train.val_history", ())) % 2:
        return "its validation history is not a list of [step, PSNR] pairs"
    return _finite(t)


TENSOR_GROUPS = {
    "model": TensorGroup(lambda config, params, meta: _network_shapes(config), _finite, required=True),
    "optim": TensorGroup(lambda config, params, meta: _optimizer_shapes(params), _check_optimizer),
    "stats": TensorGroup(lambda config, params, meta: {"stats.mean": (config["latent_channels"],),
                                                       "stats.cov": (config["latent_channels"],) * 2},
                         _check_latent_stats),
    "train": TensorGroup(lambda config, params, meta: dict.fromkeys(("train.loss_history", "train.adv_history",
                                                                     "train.val_history")), _check_train),
    # The latent prior's works (Train Latent Prior): shapes as its metadata lists them, all required.
    "prior": TensorGroup(lambda config, params, meta: _prior_shapes(config, meta.get("prior")), _finite,
                         required=True),
    "adv": TensorGroup(lambda config, params, meta: _adversary_shapes(config), _check_adversary),
    "adv_optim": TensorGroup(lambda config, params, meta: _optimizer_shapes(
        adversary_shapes(config["channels"])[1], "adv_optim"), _check_optimizer),
}


def _network_shapes(config):
    """Weight names and shapes the config implies."""
    return dict(_meta_shapes(json.dumps(config, sort_keys=True))[0])


@functools.lru_cache(maxsize=32)
def _meta_shapes(config_json):
    """({weight name: shape}, [parameter shapes in order]) from one build on the meta device (no memory, no
    initialisation), cached: building a large network costs more than checking its file."""
    with torch.device("meta"):
        net = build_network(json.loads(config_json))
    return ({f"model.{k}": tuple(v.shape) for k, v in net.state_dict().items()},
            tuple(tuple(p.shape) for p in net.parameters()))


def _check_tensors(path, config, tensors, meta):
    """Names and shapes against the config, before anything is read or allocated."""
    params = list(_meta_shapes(json.dumps(config, sort_keys=True))[1])
    meta = {"prior": _prior_config(path, meta, config)}
    allowed = {}
    for group in TENSOR_GROUPS.values():
        allowed.update(group.shapes(config, params, meta))
    for name, (_dtype, shape) in tensors.items():
        if name not in allowed:
            raise _fail(path, f"unexpected tensor {name!r} for its config", "The file is damaged or not ours")
        want = allowed[name]
        if want is None:
            if len(shape) != 1 or shape[0] > MAX_FILE_HISTORY:
                raise _fail(path, f"tensor {name!r} has a bad shape {list(shape)} (a loss history is one row of at "
                            f"most {MAX_FILE_HISTORY} values)", "The file is damaged")
        elif shape != want:
            raise _fail(path, f"tensor {name!r} has shape {list(shape)} but the config needs {list(want)}",
                        "The file's weights do not match its config; it is damaged or was edited")
    for prefix, group in TENSOR_GROUPS.items():
        missing = [k for k in group.shapes(config, params, meta) if k not in tensors] if group.required else []
        if missing:
            raise _fail(path, f"{len(missing)} weight tensors are missing (e.g. {missing[0]!r})", "The file is damaged")


def _check_values(path, tensors):
    for prefix, group in TENSOR_GROUPS.items():
        problem = group.check({k: v for k, v in tensors.items() if k.split(".", 1)[0] == prefix})
        if problem:
            raise _fail(path, problem if prefix != "model" else "its weights contain NaN or infinite values",
                        "Use an earlier save of this model, or re-save or re-download it")


# What the pack itself reads back from a summary; a value of another type (an edited file) is dropped.
SUMMARY_TYPES = {"final_loss": (int, float), "psnr": (int, float), "data_size": int, "steps": int,
                 "batch_size": int, "learning_rate": (int, float), "precision": str, "loss": str,
                 "corruption": str, "stopped_early": str, "val_psnr": (int, float), "held_out": int,
                 "grain": (int, float)}
SUMMARY_RANGES = {"grain": (0.0, MAX_GAIN)}   # values decoding uses: out of range is an edited file, dropped


def _summary_value(key, v):
    want = SUMMARY_TYPES.get(key)
    scalar = (int, float, str) if want is None else want
    if isinstance(v, bool) or not isinstance(v, scalar if want else (int, float, str, list)):
        return want is None and isinstance(v, bool)
    if key in SUMMARY_RANGES:
        lo, hi = SUMMARY_RANGES[key]
        return math.isfinite(v) and lo <= v <= hi
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, str):
        return len(v) <= 1000
    if isinstance(v, list):
        return len(v) <= 4 and all(type(x) in (int, float, str) and len(str(x)) <= 100 for x in v)
    return True


def _training_state(path, meta):
    training = _json_field(path, meta, "training") if "training" in meta else {}
    step = training.get("step", 0) if isinstance(training, dict) else None
    summary = training.get("summary", {}) if isinstance(training, dict) else None
    scale = training.get("loss_scale") if isinstance(training, dict) else None
    if type(step) is not int or not 0 <= step < 10 ** 12 or not isinstance(summary, dict) or not (
            scale is None or _is_loss_scale(scale)):
        raise _fail(path, "its training metadata is malformed", "The file is damaged")
    # Plain JSON scalars and short lists of the types the pack expects: the summary is shown, never executed.
    clean = {str(k)[:64]: v for k, v in list(summary.items())[:100] if _summary_value(str(k)[:64], v)}
    return step, clean, scale


def _is_loss_scale(v):
    """[scale, growth tracker] as fp16 training writes it: a positive finite float and a small count."""
    return (isinstance(v, list) and len(v) == 2 and type(v[0]) in (int, float) and type(v[1]) is int
            and 0 < v[0] < 1e38 and 0 <= v[1] < 10 ** 9)


def _read_info(f):
    _check_format(f.path, f.meta)
    config = read_config(f.path, f.meta)
    _check_tensors(f.path, config, {k: v[:2] for k, v in f.entries.items()}, f.meta)
    return config


def read_info(path):
    """Validated (config, card text, metadata) without loading weights."""
    with _ModelFile(path) as f:
        return _read_info(f), f.meta.get("card", "")[:4000], f.meta


def load_autoencoder(path, device="cpu"):
    """Load a file written by ``save_autoencoder``, refusing anything that does not check out. The header and
    the tensors come from one read of one handle, and every tensor's values are checked before use."""
    path = os.fspath(path)
    with _ModelFile(path) as f:
        config = _read_info(f)
        meta = f.meta
        step, summary, loss_scale = _training_state(path, meta)
        t = f.tensors()
    _check_values(path, t)
    model_id = meta.get("model_id", "")
    if not re.fullmatch(r"[0-9a-f]{8,64}", model_id):
        model_id = None
    try:
        with torch.device("meta"):   # no random initialisation of weights that are replaced at once
            net = build_network(config)
        net.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")}, assign=True)
    except (RuntimeError, ValueError, KeyError) as e:  # checked above; a last line of defence, still our error
        raise _fail(path, f"its weights do not fit the network ({str(e)[:300]})", _DAMAGED) from None
    optimizer = _optimizer_from(t, "optim", len(list(net.parameters())))
    adversary = None
    if "adv.net.0.weight" in t:
        weights = {k[4:]: v for k, v in t.items() if k.startswith("adv.")}
        adversary = {"weights": weights, "optimizer": _optimizer_from(t, "adv_optim", len(weights))}
    stats = {k: t[f"stats.{k}"] for k in ("mean", "cov") if f"stats.{k}" in t} or None
    history = {key: t[f"train.{key}"].tolist() if f"train.{key}" in t else []
               for key in ("loss_history", "adv_history")}
    pairs = t["train.val_history"].view(-1, 2).tolist() if "train.val_history" in t else []
    state = TrainState(step=step, optimizer=optimizer, summary=summary, latent_stats=stats, loss_scale=loss_scale,
                       adversary=adversary, val_history=pairs, **history)
    name = os.path.splitext(os.path.basename(path))[0]
    ae = Autoencoder(config, net.to(device), state, model_id, name)
    ae.prior = _prior_of(path, meta, config, t)
    ae.origin = _origin(meta)
    return ae


def _optimizer_from(t, prefix, n_params):
    if f"{prefix}.0.exp_avg" not in t:
        return None
    return {i: {k: t[f"{prefix}.{i}.{k}"] for k in OPTIM_KEYS} for i in range(n_params)}


def _origin(meta):
    """Save date and pack version for the model card, kept only when they look like what we write."""
    return {k: meta[k] if pattern.fullmatch(meta.get(k, "")) else ""
            for k, pattern in (("saved", SAVED_RE), ("pack_version", VERSION_RE))}


def read_card(path):
    """The model card of a file without reading its weights (the network is only built on the meta device)."""
    config, _card, meta = read_info(path)
    step, summary, _ = _training_state(path, meta)
    with torch.device("meta"):
        net = build_network(config)
    ae = Autoencoder(config, net, TrainState(step=step, summary=summary))
    prior = _prior_config(path, meta, config)
    if prior is not None:   # the card needs only the prior's size, not its latents
        ae.prior = SimpleNamespace(crop=prior["crop"], summary=_prior_summary(prior))
    ae.origin = _origin(meta)
    return card_text(ae)
