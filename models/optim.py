"""The optimizer both trained networks use (autoencoder, discriminator) and its resumable state."""
import logging

import torch

log = logging.getLogger(__name__)


def adamw(params, lr, betas=(0.9, 0.99)):
    """AdamW, fused into one kernel per tensor where this torch has it (CPU since 2.4): its step
    is ~10x faster than the per-operation loop, which matters for small models and busy machines."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=0.0, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=0.0)


def optimizer_state(opt):
    """{param_index: {"step", "exp_avg", "exp_avg_sq"}} on the CPU, as model files hold it."""
    sd = opt.state_dict()["state"]
    return {i: {k: v.detach().to("cpu").clone() for k, v in st.items()} for i, st in sd.items()}


def load_optimizer_state(opt, saved, what="optimizer"):
    """Put saved moments back (a resumed run continues the optimizer, not a fresh one)."""
    if not saved:
        return
    params = [p for group in opt.param_groups for p in group["params"]]
    state = {}
    for i, p in enumerate(params):
        entry = saved.get(i)
        if entry is None or entry["exp_avg"].shape != p.shape:
            log.warning("saved %s state does not fit this model; starting it afresh", what)
            return
        # Moments in their parameter's memory layout (channels_last): the fused step pairs them elementwise.
        state[i] = {k: torch.empty_like(p).copy_(v) if k != "step" else v.clone() for k, v in entry.items()}
    sd = opt.state_dict()
    sd["state"] = state
    opt.load_state_dict(sd)
