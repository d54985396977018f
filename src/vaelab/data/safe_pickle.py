"""Reading pickles from data files without letting them run code.

A pickle names the callables that rebuild its objects, so ``pickle.load`` on a downloaded
file can run anything. Data files (the dSprites metadata, the CIFAR batches) only hold
builtin containers, strings, numbers and NumPy arrays; :func:`safe_load` rebuilds exactly
those and refuses every other name with :class:`pickle.UnpicklingError`.
"""

from __future__ import annotations

import io
import pickle
from typing import IO, Any

import numpy as np

# The functions NumPy's own pickles name, taken from live objects so that files written
# under ``numpy.core`` (NumPy 1, Python 2 era) and ``numpy._core`` (NumPy 2) both resolve
# without touching the deprecated module path.
_RECONSTRUCT = np.zeros(0).__reduce__()[0]
_SCALAR = np.float64(0).__reduce__()[0]

_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{
        (module, cls.__name__): cls
        for module in ("builtins", "__builtin__")  # Python 3 and Python 2 pickles
        for cls in (tuple, list, dict, set)
    },
}


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds only builtin containers and NumPy arrays, dtypes, scalars."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[module, name]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name} from a data file"
            ) from None


def safe_load(stream: IO[bytes], encoding: str = "ASCII") -> Any:
    """Unpickle one object from ``stream`` with :class:`SafeUnpickler`.

    ``encoding`` decodes Python 2 byte strings: ``"bytes"`` keeps them as ``bytes`` (how the
    CIFAR pages read their batches), ``"latin1"`` turns them into ``str``.
    """
    return SafeUnpickler(stream, encoding=encoding).load()


def safe_loads(data: bytes, encoding: str = "ASCII") -> Any:
    """:func:`safe_load` from bytes in memory."""
    return safe_load(io.BytesIO(data), encoding=encoding)
