"""Objectives of the Gaussian-latent VAE family, one small file each, registered in
:data:`vaelab.registry.OBJECTIVES`: the ELBO plus one regulariser (``specs/disentangling.md`` §3).

The shared pieces (:class:`~vaelab.objectives.base.Objective`, the forward-pass record
:class:`~vaelab.objectives.base.VAEOutput` and :func:`~vaelab.objectives.base.anneal`) are in
:mod:`vaelab.objectives.base`.
"""
