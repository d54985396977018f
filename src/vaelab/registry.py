"""Registries: the short names users type -> the things they name.

One :class:`Registry` per kind (datasets, models, objectives, metrics, plots). Entries are
added with a decorator where the thing is defined; ``vaelab ... list`` prints them.
Presets are YAML files, listed by :mod:`vaelab.presets`.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


class UnknownNameError(KeyError):
    """A name that is not registered; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


@dataclass(frozen=True)
class Entry:
    """One registered thing: its constructor, a one-line summary and optional typed params.

    ``params`` is a dataclass whose fields are the constructor's keyword arguments; configs use
    it to validate user input before anything is built.
    """

    name: str
    target: Callable[..., Any]
    summary: str
    params: type | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class Registry:
    """Name -> :class:`Entry`. ``modules`` are imported on first use so that registration
    happens lazily (no work at import time of :mod:`vaelab`)."""

    def __init__(self, kind: str, modules: tuple[str, ...] = ()):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._modules = modules
        self._loaded = False

    def register(
        self, name: str, summary: str = "", params: type | None = None, **meta: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: ``@DATASETS.register("mnist", "MNIST digits")``.

        ``meta`` holds kind-specific facts (for datasets: ``splits``, ``files``, ``folder``).
        """

        def add(target: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries and self._entries[name].target is not target:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            doc = (target.__doc__ or "").strip().splitlines()
            summary_ = summary or (doc[0] if doc else "")
            self._entries[name] = Entry(name, target, summary_, params, dict(meta))
            return target

        return add

    def _load(self) -> None:
        if not self._loaded:
            for module in self._modules:
                importlib.import_module(module)
            self._loaded = True

    def get(self, name: str) -> Entry:
        self._load()
        if name not in self._entries:
            raise UnknownNameError(self.unknown_message(name))
        return self._entries[name]

    def unknown_message(self, name: str) -> str:
        self._load()
        known = sorted(self._entries)
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        listed = ", ".join(known) or "none"
        return f"unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {listed}"

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        self._load()
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def names(self) -> list[str]:
        return [e.name for e in self]

    def build(self, name: str, /, **kwargs: Any) -> Any:
        return self.get(name).target(**kwargs)


DATASETS = Registry(
    "dataset",
    modules=(
        "vaelab.data.dsprites",
        "vaelab.data.dsprites_procedural",
        "vaelab.data.mnist",
        "vaelab.data.cifar",
        "vaelab.data.celeba",
        "vaelab.data.chairs",
        "vaelab.data.dtd",
        "vaelab.data.flowers",
        "vaelab.data.imagenet",
        "vaelab.data.faces_hq",
        "vaelab.data.folder",
        "vaelab.data.shapes3d",
        "vaelab.data.mpi3d",
        "vaelab.data.smallnorb",
        "vaelab.data.cars3d",
        "vaelab.data.threedident",
    ),
)
MODELS = Registry("model", modules=("vaelab.models.gaussian",))
OBJECTIVES = Registry(
    "objective",
    modules=(
        "vaelab.objectives.vae",
        "vaelab.objectives.betah",
        "vaelab.objectives.betab",
        "vaelab.objectives.factor",
        "vaelab.objectives.btcvae",
        "vaelab.objectives.dip",
    ),
)
METRICS = Registry(
    "metric",
    modules=(
        "vaelab.metrics.mig",
        "vaelab.metrics.factor_vae",
        "vaelab.metrics.beta_vae",
        "vaelab.metrics.irs",
        "vaelab.metrics.unsupervised",
        "vaelab.metrics.chen",
        "vaelab.metrics.dci",
        "vaelab.metrics.sap",
        "vaelab.metrics.modularity",
        "vaelab.metrics.likelihood",
    ),
)
PLOTS = Registry("plot", modules=("vaelab.viz.plots",))
