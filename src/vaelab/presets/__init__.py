"""Named experiments stored as YAML files in this folder.

A preset overrides a base only where it differs: ``base: other_preset`` names the preset it
starts from (chains are allowed, cycles are errors), and everything else is deep-merged on
top (see :func:`vaelab.config.merge`). A preset without ``base`` starts from the defaults of
:class:`vaelab.config.Config`.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from vaelab.config import Config, ConfigError, apply_overrides, config_from_dict, merge, read_yaml
from vaelab.registry import UnknownNameError

_FOLDER = Path(str(resources.files(__name__)))


def preset_names() -> list[str]:
    """Names of all shipped presets (file names without ``.yaml``), sorted."""
    return sorted(p.stem for p in _FOLDER.glob("*.yaml") if not p.stem.startswith("_"))


def preset_path(name: str) -> Path:
    path = _FOLDER / f"{name}.yaml"
    if not path.is_file():
        import difflib

        names = preset_names()
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownNameError(
            f"unknown preset {name!r}.{hint} Known presets: {', '.join(names)} "
            "(vaelab presets list)"
        )
    return path


def preset_values(name: str, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The merged (not yet validated) values of a preset, with its bases resolved."""
    if name in _seen:
        raise ConfigError(f"preset {name!r}: base chain has a cycle: {' -> '.join((*_seen, name))}")
    values = read_yaml(preset_path(name))
    base = values.pop("base", None)
    if base is None:
        return values
    if not isinstance(base, str):
        raise ConfigError(f"{preset_path(name)}: base must be a preset name, got {base!r}")
    return merge(preset_values(base, (*_seen, name)), values)


def load_preset(name: str, overrides: Iterable[str] = ()) -> Config:
    """The validated config of a preset, with ``key=value`` overrides applied."""
    values = apply_overrides(preset_values(name), overrides)
    return config_from_dict(values, source=f"preset {name!r} ({preset_path(name)})")


def preset_description(name: str) -> str:
    return str(preset_values(name).get("description", ""))
