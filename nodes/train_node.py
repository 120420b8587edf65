"""The training node: fits an autoencoder to a batch of images, inside the graph."""
import time

import torch

from ..models.corruption import CORRUPTIONS
from ..models.losses import LOSSES
from ..models.plots import image_grid, loss_curve, to_pil
from ..models.precision import PRECISIONS
from ..models.train import OUT_OF_MEMORY, Trainer, TrainingError, TrainSettings, out_of_memory
from . import bridge
from .schema import AUTOENCODER, CATEGORY, COMBO, FLOAT, INT, LINK, SEED

PREVIEW_SECONDS = 3.0  # how often the live reconstruction preview is refreshed


@torch.no_grad()
def reconstruction_grid(trainer, n=8):
    """Originals on top, reconstructions below (model channels shown as RGB)."""
    net, x = trainer.net, trainer.sample_images(n)
    y = net.decode(net.encode(x))
    if net.channels == 1:
        x = net.to_model_channels(x).expand(-1, 3, -1, -1)
    both = torch.cat([x, y]).movedim(1, -1).float().cpu()
    return image_grid(both, columns=x.shape[0])


class AtelierTrainAutoencoder:
    DESCRIPTION = ("Teaches the autoencoder your images: it learns to squeeze each one into a latent and paint it "
                   "back. Watch the progress bar and preview; press Cancel to stop (nothing is changed). Returns "
                   "a new trained model; connect it to Save Autoencoder to keep it. Training a loaded model "
                   "continues where it stopped.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (AUTOENCODER, "IMAGE", "IMAGE")
    RETURN_NAMES = ("autoencoder", "loss_curve", "reconstructions")
    OUTPUT_TOOLTIPS = ("The trained autoencoder (a new copy; the input is left as it was).",
                       "A chart of the loss over all training so far: lower is better.",
                       "Originals (top) and their reconstructions (bottom) after training: the centre crop_size "
                       "square of each image when training on crops.")
    FUNCTION = "train"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "autoencoder": LINK(AUTOENCODER, "The autoencoder to train (new or loaded)."),
            "images": LINK("IMAGE", "Training images, e.g. from Load Image Folder."),
            "steps": INT(500, 0, 1_000_000, "Training steps. A few hundred shows results; thousands get sharp."),
            "batch_size": INT(16, 1, 4096, "Images per step, or crops per step when crop_size is set. Larger is "
                              "smoother but slower per step; may exceed the number of images (few-shot: 1-5 "
                              "paintings, many crops each)."),
            "learning_rate": FLOAT(0.002, 0.00001, 1.0, "Step size. Lower it if the loss curve jumps or turns "
                                   "to NaN; dense models like ~0.01.", step=0.0001, round=0.00001),
            "seed": SEED("Seed for the order and crops of training images; the same seed repeats a run exactly."),
            "loss": COMBO(list(LOSSES), "mse: the classic (best PSNR). l1: a little sharper. mse+ssim: also "
                          "rewards matching local structure."),
        }, "optional": {
            "crop_size": INT(128, 0, 4096, "Train on random square crops of this size (0 = whole images; images "
                             "this size or smaller are used whole). Crops are faster, and their random placement "
                             "keeps the model from memorising your images, so it works better on new ones.",
                             step=8),
            "flip": ("BOOLEAN", {"default": True, "tooltip": "Randomly mirror images left-right while training. "
                                 "Turn off for text, digits or anything that must not be mirrored."}),
            "kl_weight": FLOAT(0.01, 0.0, 1.0, "conv-vae only: how strongly latents are pulled toward random "
                               "noise. Higher = better images from random latents (Sample Latent), blurrier "
                               "reconstructions; 0.0001 is nearly a plain autoencoder.",
                               step=0.0001, round=0.00001),
            "corruption": COMBO(list(CORRUPTIONS), "Restoration training: damage each training image this way "
                                "(noise, grey holes, JPEG-like blocks, blur) and teach the model to paint back the "
                                "clean one. Then repair damaged pictures with Restore Damaged Image."),
            "corruption_strength": FLOAT(0.5, 0.0, 1.0, "How bad the training damage is (0..1)."),
            "precision": COMBO(list(PRECISIONS), "auto: bfloat16 arithmetic for conv models where it is faster "
                               "(GPUs that run it natively; processors where a quick measurement finds it at least "
                               "1.2x as fast, same quality), float16 on older NVIDIA GPUs (T4, RTX 20xx), else "
                               "float32. fp32 forces full precision; bf16 and "
                               "fp16 force those, which can be many times slower where the hardware only "
                               "emulates them (fp16 on most processors)."),
        }}

    def train(self, autoencoder, images, steps, batch_size, learning_rate, seed, loss,
              crop_size=128, flip=True, kl_weight=0.01, precision="auto", corruption="none",
              corruption_strength=0.5):
        settings = TrainSettings(steps=int(steps), batch_size=int(batch_size), learning_rate=float(learning_rate),
                                 seed=int(seed), loss=loss, crop_size=int(crop_size), flip=bool(flip),
                                 kl_weight=float(kl_weight), precision=precision, corruption=corruption,
                                 corruption_strength=float(corruption_strength))
        trainer = kind = None
        try:
            trainer = Trainer(autoencoder, images, settings, device=bridge.torch_device())
        except TrainingError as e:
            raise ValueError(f"Atelier Train Autoencoder: {e}") from None
        except (OUT_OF_MEMORY, RuntimeError, MemoryError) as e:
            kind = out_of_memory(e)  # answered below, once this exception and the tensors its traceback holds are gone
            if not kind:
                raise
        if trainer is None:
            bridge.free_memory()
            raise ValueError(f"Atelier Train Autoencoder: ran out of {kind} putting the training images on the "
                             f"{'GPU' if kind == 'GPU memory' else 'device'}; load fewer or smaller images (Load "
                             "Image Folder's count and size)")
        pbar = bridge.progress_bar(max(1, settings.steps))
        log_every = max(1, settings.steps // 20)
        next_preview = [time.monotonic() + PREVIEW_SECONDS]

        def on_step(done, total, value):
            preview = None
            now = time.monotonic()
            if now > next_preview[0] or done == total:
                with torch.inference_mode(False):
                    preview = ("JPEG", to_pil(reconstruction_grid(trainer, 4)), 512)
                # Previews of big crops are slow: keep them to about 1% of the training time.
                next_preview[0] = time.monotonic() + max(PREVIEW_SECONDS, 100 * (time.monotonic() - now))
            pbar.update_absolute(done, total, preview)
            bridge.check_interrupted()
            if done % log_every == 0 or done == total:
                bridge.log.info("train step %d/%d loss %.5f", trainer.start_step + done,
                                trainer.start_step + total, value)

        try:
            ae = trainer.run(on_step)
            grid = reconstruction_grid(trainer)
            stopped = ae.state.summary.get("stopped_early")  # shown where the artist looks: on the curve
            title = stopped.split(";")[0] + ": lower the learning rate" if stopped else "training loss"
            return (ae, loss_curve(ae.state.loss_history, title=title), grid)
        except (OUT_OF_MEMORY, RuntimeError, MemoryError) as e:
            kind = out_of_memory(e)
            if not kind:
                raise
        message = out_of_memory_message(trainer, kind)
        trainer = None  # the error ComfyUI keeps must not keep the GPU tensors alive
        bridge.free_memory()
        raise ValueError(message)


def out_of_memory_message(trainer, kind="GPU memory"):
    """Free memory, measure which batch size fits, and say so. The input model was never touched."""
    bridge.free_memory()
    asked, crop = trainer.settings.batch_size, "x".join(map(str, trainer.crop))
    fits = trainer.batch_size_that_fits(bridge.free_memory)
    if fits == asked:
        what = ("a training step fits, but the rest (latent statistics, previews) did not; load fewer or smaller "
                "images")
    elif fits:
        what = f"batch_size {fits} fits (measured), or lower crop_size"
    else:
        what = "not even batch_size 1 fits; lower crop_size or make a smaller model (width, blocks)"
    return (f"Atelier Train Autoencoder: ran out of {kind} training with batch_size {asked} on {crop} crops: "
            f"{what}. {kind[0].upper() + kind[1:]} was freed and the input model is unchanged.")
