"""Errors of the training engine (importable without torch, for the command line)."""


class TrainingDiverged(RuntimeError):
    """Too many updates in a row were skipped; the last good checkpoint is intact."""


class CheckpointError(RuntimeError):
    """No usable checkpoint, or one that does not fit the run."""
