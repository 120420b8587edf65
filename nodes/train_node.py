"""The training node: fits an autoencoder to a batch of images, inside the graph. The training core
(models/train.py) does the work, the previews and the out-of-memory answer; this lays out pictures."""
import torch

from ..models.corruption import CORRUPTIONS
from ..models.formats import image_to_pil
from ..models.losses import LOSSES
from ..models.plots import caption, image_grid, loss_curve
from ..models.precision import PRECISIONS
from ..models.train import Trainer, TrainSettings, memory_needed
from . import bridge
from .base import AtelierNode, works_of
from .schema import AUTOENCODER, COMBO, DATASET, FLOAT, INT, LINK, SEED

D = TrainSettings()   # the one source of the widgets' and the function's defaults


def comparison_grid(originals, reconstructions):
    """Originals on top, reconstructions below."""
    return image_grid(torch.cat([originals, reconstructions]), columns=originals.shape[0])


class AtelierTrainAutoencoder(AtelierNode):
    DISPLAY_NAME = "Train Autoencoder (Atelier)"
    SEARCH_ALIASES = ["training", "fit", "learn", "fine-tune", "finetune", "restoration training"]
    DESCRIPTION = ("Teaches the autoencoder your images: it learns to squeeze each one into a latent and paint it "
                   "back. Watch the progress bar and preview; press Cancel to stop (nothing is changed). Returns "
                   "a new trained model; connect it to Save Autoencoder to keep it. Training a loaded model "
                   "continues where it stopped.")
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
            "steps": INT(D.steps, 0, 1_000_000, "Training steps. A few hundred shows results; thousands get "
                         "sharp."),
            "batch_size": INT(D.batch_size, 1, 4096, "Images per step, or crops per step when crop_size is set. "
                              "Larger is smoother but slower per step; may exceed the number of images (few-shot: "
                              "1-5 paintings, many crops each)."),
            "learning_rate": FLOAT(D.learning_rate, 0.00001, 1.0, "Step size. Lower it if the loss curve jumps or "
                                   "turns to NaN; dense models like ~0.01.", step=0.0001, round=0.00001),
            "seed": SEED("Seed for the order and crops of training images; the same seed repeats a run exactly."),
            "loss": COMBO(list(LOSSES), "mse: the classic (best PSNR, but fine detail averages into blur). l1: a "
                          "little sharper. mse+ssim: also rewards matching local structure. sharp (recommended for "
                          "art, conv models): mse plus a small discriminator, trained alongside from scratch, that "
                          "teaches the decoder to paint texture instead of blur, and grain for the detail no latent "
                          "holds (measured on your works at the end; Decode's grain input sets it); slower per "
                          "step.", default=D.loss),
        }, "optional": {
            "images": LINK("IMAGE", "Training images, e.g. from Load Image Folder (or connect a dataset)."),
            "dataset": LINK(DATASET, "A large collection read lazily during training, from Load Dataset Folder; "
                            "used instead of images when connected (needs crop_size)."),
            "crop_size": INT(D.crop_size, 0, 4096, "Train on random square crops of this size. 0 = auto: 2/3 of the "
                             "images' shorter side, at most 128. Crops are faster, and their random placement keeps "
                             "the model from memorising your images, so it works better on new ones. A size at "
                             "least the images' side trains on whole images.", step=8),
            "flip": ("BOOLEAN", {"default": D.flip, "tooltip": "Randomly mirror images left-right while training. "
                                 "Turn off for text, digits or anything that must not be mirrored."}),
            "kl_weight": FLOAT(D.kl_weight, 0.0, 1.0, "conv-vae only: how strongly latents are pulled toward "
                               "random noise. Higher = better images from random latents (Sample Latent), blurrier "
                               "reconstructions; 0.0001 is nearly a plain autoencoder.",
                               step=0.0001, round=0.00001, advanced=True),
            "corruption": COMBO(list(CORRUPTIONS), "Restoration training: damage each training image this way "
                                "(noise, grey holes, JPEG-like blocks, blur) and teach the model to paint back the "
                                "clean one. Then repair damaged pictures with Restore Damaged Image.",
                                default=D.corruption),
            "corruption_strength": FLOAT(D.corruption_strength, 0.0, 1.0, "How bad the training damage is (0..1)."),
            "sharp_warmup": INT(D.sharp_warmup, 0, 1_000_000, "loss sharp: steps of plain reconstruction (counted "
                                "from the model's first step) before the discriminator's verdict counts.",
                                advanced=True),
            "validation": ("BOOLEAN", {"default": D.validation, "tooltip": "Hold back a few of your works (1 in 8 "
                           "when you give 16 or more, seeded) and keep the weights from the step that re-made them "
                           "best, so the model works on new pictures instead of memorising these (their PSNR shows "
                           "on the loss curve and the preview). Turn off to memorise your set on purpose: when you "
                           "will only ever encode these very works."}),
            "precision": COMBO(list(PRECISIONS), "auto: bfloat16 arithmetic for conv models where it is faster "
                               "(GPUs that run it natively; processors where a quick measurement finds it at least "
                               "1.2x as fast, same quality), float16 on older NVIDIA GPUs (T4, RTX 20xx), else "
                               "float32. fp32 forces full precision; bf16 and "
                               "fp16 force those, which can be many times slower where the hardware only "
                               "emulates them (fp16 on most processors).", default=D.precision, advanced=True),
        }}

    def train(self, autoencoder, steps, batch_size, learning_rate, seed, loss, images=None, dataset=None,
              crop_size=D.crop_size,
              flip=D.flip, kl_weight=D.kl_weight, precision=D.precision, corruption=D.corruption,
              corruption_strength=D.corruption_strength, validation=D.validation,
              sharp_warmup=D.sharp_warmup):
        settings = TrainSettings(steps=int(steps), batch_size=int(batch_size), learning_rate=float(learning_rate),
                                 seed=int(seed), loss=loss, crop_size=int(crop_size), flip=bool(flip),
                                 kl_weight=float(kl_weight), precision=precision, corruption=corruption,
                                 corruption_strength=float(corruption_strength), validation=bool(validation),
                                 sharp_warmup=int(sharp_warmup))
        source = works_of(images, dataset)
        device = bridge.compute_device(memory_needed(autoencoder, source, settings))
        trainer = Trainer(autoencoder, source, settings, device, bridge.free_memory)
        pbar = bridge.progress_bar(max(1, settings.steps))
        log_every = max(1, settings.steps // 20)

        def on_step(done, total, value):
            shots = trainer.preview(done, total)
            picture = shots and image_to_pil(comparison_grid(*shots))
            if picture and trainer.val_history:
                caption(picture, f"held-back works {trainer.val_history[-1][1]:.2f} dB")
            pbar.update_absolute(done, total, picture and ("JPEG", picture, 512))
            bridge.check_interrupted()
            if done % log_every == 0 or done == total:
                bridge.log.info("train step %d/%d loss %.5f%s", trainer.start_step + done,
                                trainer.start_step + total, value,
                                f", held-back works {trainer.val_history[-1][1]:.2f} dB" if trainer.val_history else "")

        ae = trainer.run(on_step)
        stopped = ae.state.summary.get("stopped_early")  # shown where the artist looks: on the curve
        title = (stopped.split(";")[0] + ": lower the learning rate" if stopped
                 else "reconstruction loss" if loss == "sharp" else "training loss")
        grid = comparison_grid(*trainer.reconstructions)
        ae.model.cpu()   # the new model waits on ComfyUI's offload device, outside its GPU accounting
        bridge.free_memory()
        st = ae.state
        return (ae, loss_curve(st.loss_history, title=title, adversarial=st.adv_history, validation=st.val_history),
                grid)
