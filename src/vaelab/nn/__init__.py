"""Encoder and decoder networks: images [B, C, H, W] -> (mean, log_var) [B, D] -> logits.

One file per architecture family (Burgess et al. 2018; disentanglement_lib, Locatello et al.
2019; menzHSE/torch-vae; a small MLP). Networks compute no loss: the likelihoods and the
posterior live in :mod:`vaelab.distributions`.
"""
