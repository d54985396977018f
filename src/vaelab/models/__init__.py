"""vaelab models: one file per family; the small interface is in :mod:`vaelab.models.base`."""
