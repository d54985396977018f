"""vaelab: variational autoencoders for disentanglement and likelihood research."""

__version__ = "0.1.0"
