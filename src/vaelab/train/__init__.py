"""The training engine: one plain loop (:func:`vaelab.train.loop.train`) and its parts."""
