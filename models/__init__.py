"""Pure-torch core of Autoencoder Atelier: architectures, training, latent maths, files.

Nothing in this package imports ComfyUI; the node classes in ``nodes/`` wrap it.
"""

__version__ = "0.1.0"
