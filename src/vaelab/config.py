"""Typed dataclass configs, YAML load/save and dotted command-line overrides.

A run is described by one :class:`Config` with five sections (``data``, ``model``,
``objective``, ``train``, ``eval``). Every field is typed and validated when the dataclass is
created; errors name the field, the bad value and what is allowed. Unknown keys are errors
(with a "did you mean" hint), never silent defaults.

The ``model`` and ``objective`` sections are "named" sections: ``name`` picks an entry of the
model/objective registry, and the remaining keys are validated against that entry's own
parameter dataclass (its constructor arguments), so ``model.latent_dim`` is checked by the
model that uses it.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vaelab.registry import DATASETS, METRICS, MODELS, OBJECTIVES, Registry


class ConfigError(ValueError):
    """A config value or key is invalid; the message names the field and what is allowed."""


def spec(
    default: Any = dataclasses.MISSING,
    *,
    choices: Iterable[Any] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    help: str = "",
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with validation metadata (allowed values, range, help text)."""
    meta = {
        "choices": tuple(choices) if choices is not None else None,
        "minimum": minimum,
        "maximum": maximum,
        "help": help,
    }
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


# -- conversion and validation of one value -------------------------------------------------
def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(tp))
        return f"{origin.__name__}[{args}]"
    return {
        type(None): "null",
        float: "a number",
        int: "an integer",
        bool: "true/false",
        str: "a string",
        dict: "a mapping",
    }.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert ``value`` (from YAML or a ``--set`` string) to the field type ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        is_null = value is None or (
            isinstance(value, str) and value.lower() in ("null", "none", "~")
        )
        if is_null and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()] if value.strip() else []
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, got {value!r}")
            return tuple(
                _coerce(v, a, f"{where}[{i}]")
                for i, (v, a) in enumerate(zip(value, args, strict=True))
            )
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in (
            "true",
            "yes",
            "on",
            "1",
            "false",
            "no",
            "off",
            "0",
        ):
            return value.lower() in ("true", "yes", "on", "1")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = None
            if number is not None and number.is_integer():
                return int(number)
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _check_range(value: Any, meta: Mapping[str, Any], where: str) -> None:
    choices = meta.get("choices")
    values = value if isinstance(value, list | tuple) else [value]
    if choices is not None:
        for v in values:
            if v is not None and v not in choices:
                hint = difflib.get_close_matches(str(v), [str(c) for c in choices], n=1)
                more = f" (did you mean {hint[0]!r}?)" if hint else ""
                allowed = ", ".join(map(str, choices))
                raise ConfigError(f"{where}: {v!r} is not allowed{more}; allowed values: {allowed}")
    lo, hi = meta.get("minimum"), meta.get("maximum")
    for v in values:
        if isinstance(v, int | float) and not isinstance(v, bool):
            if lo is not None and v < lo:
                raise ConfigError(f"{where}: {v!r} is below the minimum {lo}")
            if hi is not None and v > hi:
                raise ConfigError(f"{where}: {v!r} is above the maximum {hi}")


def validate_fields(obj: Any, where: str) -> None:
    """Coerce and check every field of the dataclass instance ``obj`` in place."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        if not f.init or f.name.startswith("_"):
            continue
        name = f"{where}.{f.name}" if where else f.name
        value = _coerce(getattr(obj, f.name), hints[f.name], name)
        _check_range(value, f.metadata, name)
        object.__setattr__(obj, f.name, value)


def unknown_key_error(key: str, allowed: Iterable[str], where: str) -> ConfigError:
    allowed = sorted(allowed)
    hint = difflib.get_close_matches(key, allowed, n=1)
    more = f" Did you mean {where + '.' if where else ''}{hint[0]}?" if hint else ""
    name = f"{where}.{key}" if where else key
    return ConfigError(f"unknown config key {name!r}.{more} Allowed keys: {', '.join(allowed)}")


def build_dataclass(cls: type, values: Mapping[str, Any] | None, where: str) -> Any:
    """``cls(**values)`` with unknown keys reported by name (nested dataclasses recurse)."""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping of keys, got {values!r}")
    names = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            raise unknown_key_error(str(key), names, where)
        tp = hints[key]
        child = f"{where}.{key}" if where else key
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            value = value if isinstance(value, tp) else build_dataclass(tp, value, child)
        kwargs[key] = value
    return cls(**kwargs)


class Section:
    """Mixin: validate all fields when the dataclass is created."""

    _where = ""

    def __post_init__(self) -> None:
        validate_fields(self, self._where)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))  # type: ignore[call-overload]


def _plain(value: Any) -> Any:
    """Tuples -> lists, recursively, so YAML stays plain."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# -- the sections ---------------------------------------------------------------------------
@dataclass
class DataConfig(Section):
    """Which dataset, where its files are, and how batches are prepared on the device."""

    _where = "data"
    name: str = spec("dsprites-procedural", help="dataset name (vaelab data list)")
    root: str | None = spec(None, help="data folder; default $VAELAB_DATA or ~/.cache/vaelab/data")
    path: str | None = spec(None, help="read this file instead of the dataset's official file")
    split: str = spec("train", help="split to train on")
    eval_split: str | None = spec(None, help="held-out split for evaluation during training")
    download: bool = spec(True, help="download missing files (when online)")
    transform: str = spec(
        "float",
        choices=("float", "binarize", "threshold", "dequantize"),
        help="on-device conversion of uint8 images",
    )
    bits: int = spec(8, minimum=1, maximum=8, help="bit depth (5 for 5-bit likelihood data)")
    image_size: int | None = spec(
        None, minimum=1, help="resize images to this size once at load time (bilinear)"
    )
    batcher: str = spec(
        "auto",
        choices=("auto", "device", "loader"),
        help="device: whole dataset on the device; loader: DataLoader workers",
    )
    num_workers: int = spec(2, minimum=0, help="DataLoader workers (loader batcher only)")
    options: dict[str, Any] = spec(default_factory=dict, help="dataset-specific loader options")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.name not in DATASETS:
            raise ConfigError(f"data.name: {DATASETS.unknown_message(self.name)}")
        check_options(
            DATASETS,
            self.name,
            self.options,
            "data.options",
            reserved=("root", "split", "path", "download"),
        )


@dataclass
class TrainConfig(Section):
    """The training loop: steps, batch, optimizer, schedule, guard rails, precision, logging."""

    _where = "train"
    steps: int = spec(10_000, minimum=0)
    batch_size: int = spec(64, minimum=1)
    optimizer: str = spec(
        "adam", choices=("adam", "adamw", "sgd", "adamax", "lamb", "diffgrad", "madgrad")
    )
    lr: float = spec(5e-4, minimum=0.0)
    betas: tuple[float, float] = spec((0.9, 0.999))
    eps: float = spec(1e-8, minimum=0.0)
    weight_decay: float = spec(0.0, minimum=0.0)
    momentum: float = spec(0.0, minimum=0.0)
    schedule: str = spec("constant", choices=("constant", "warmup", "cosine"))
    warmup_steps: int = spec(0, minimum=0)
    min_lr: float = spec(0.0, minimum=0.0)
    grad_clip: float | None = spec(None, minimum=0.0, help="clip the gradient norm to this value")
    skip_threshold: float | None = spec(
        None, minimum=0.0, help="skip updates whose gradient norm exceeds this"
    )
    max_skips_in_a_row: int = spec(50, minimum=1)
    ema_decay: float | None = spec(None, minimum=0.0, maximum=1.0)
    amp: str = spec("none", choices=("none", "bf16", "fp16"))
    compile: bool = spec(False)
    channels_last: bool = spec(True, help="channels-last memory format (faster convolutions)")
    tune_allocator: bool = spec(
        True, help="on Linux CPUs, let glibc reuse large blocks (1.5x faster steps here)"
    )
    log_every: int = spec(100, minimum=1)
    checkpoint_every: int = spec(1000, minimum=1)
    keep_checkpoints: int = spec(3, minimum=1)
    progress: bool = spec(True)


@dataclass
class EvalConfig(Section):
    """Evaluation during and after training."""

    _where = "eval"
    metrics: list[str] = spec(
        default_factory=list, help="metrics to compute at the end (vaelab metrics list)"
    )
    metrics_every: int = spec(
        0, minimum=0, help="also compute the metrics every N steps (0: only at the end)"
    )
    params: dict[str, dict] = spec(
        default_factory=dict, help="protocol parameters per metric, e.g. {mig: {num_points: 5000}}"
    )
    representation: str = spec("mean", choices=("mean", "sampled"), help="code that is scored")
    every: int = spec(0, minimum=0, help="held-out loss every N steps (0: only at the end)")
    batch_size: int = spec(256, minimum=1)
    seed: int = spec(0)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in self.metrics:
            if name not in METRICS:
                raise ConfigError(f"eval.metrics: {METRICS.unknown_message(name)}")
        for name, values in self.params.items():
            if name not in self.metrics:
                raise ConfigError(
                    f"eval.params.{name}: parameters for a metric that is not in eval.metrics "
                    f"({', '.join(self.metrics) or 'none'})"
                )
            from vaelab.metrics import check_params

            try:
                check_params(name, values)
            except ValueError as err:
                raise ConfigError(f"eval.params.{err}") from None


@dataclass
class NamedSection:
    """``name`` + that registry entry's typed parameters (``model`` and ``objective``)."""

    name: str | None = None
    params: Any = None
    _registry: typing.ClassVar[Registry]
    _where: typing.ClassVar[str]

    def __post_init__(self) -> None:
        if self.name is None:
            if self.params:
                raise ConfigError(f"{self._where}: parameters given without a {self._where} name")
            self.params = None
            return
        if not isinstance(self.name, str):
            raise ConfigError(f"{self._where}.name: expected a string, got {self.name!r}")
        if self.name not in self._registry:
            raise ConfigError(f"{self._where}.name: {self._registry.unknown_message(self.name)}")
        cls = self._registry.get(self.name).params
        if cls is None:
            raise ConfigError(f"{self._where} {self.name!r} declares no parameter dataclass")
        if not isinstance(self.params, cls):
            self.params = build_dataclass(cls, self.params or {}, self._where)
        validate_fields(self.params, self._where)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> NamedSection:
        if isinstance(values, cls):
            return values
        if values is None:
            return cls()
        if not isinstance(values, Mapping):
            raise ConfigError(f"{cls._where}: expected a mapping with a 'name', got {values!r}")
        rest = {k: v for k, v in values.items() if k != "name"}
        return cls(name=values.get("name"), params=rest)

    def to_dict(self) -> dict[str, Any] | None:
        if self.name is None:
            return None
        params = dataclasses.asdict(self.params) if self.params is not None else {}
        return {"name": self.name, **_plain(params)}


@dataclass
class ModelConfig(NamedSection):
    _registry: typing.ClassVar[Registry] = MODELS
    _where: typing.ClassVar[str] = "model"


@dataclass
class ObjectiveConfig(NamedSection):
    _registry: typing.ClassVar[Registry] = OBJECTIVES
    _where: typing.ClassVar[str] = "objective"


@dataclass
class Config(Section):
    """One whole run."""

    description: str = spec("", help="one line on what this run is for")
    seed: int = spec(0)
    device: str = spec("auto", help="auto, cpu, cuda, cuda:N or mps")
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        for f in ("description", "seed", "device"):
            hints = typing.get_type_hints(type(self))
            value = _coerce(getattr(self, f), hints[f], f)
            object.__setattr__(self, f, value)
        if not (self.device in ("auto", "cpu", "mps") or self.device.startswith("cuda")):
            raise ConfigError(
                f"device: {self.device!r} is not allowed; use auto, cpu, cuda, cuda:N or mps"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "seed": self.seed,
            "device": self.device,
            "data": self.data.to_dict(),
            "model": self.model.to_dict(),
            "objective": self.objective.to_dict(),
            "train": self.train.to_dict(),
            "eval": self.eval.to_dict(),
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False)


_NAMED = {"model": ModelConfig, "objective": ObjectiveConfig}


def config_from_dict(values: Mapping[str, Any] | None, source: str = "") -> Config:
    """Build and validate a :class:`Config`; ``source`` (a file name) prefixes error messages."""
    try:
        values = dict(values or {})
        allowed = {f.name for f in dataclasses.fields(Config)}
        for key in values:
            if key not in allowed:
                raise unknown_key_error(str(key), allowed, "")
        named = {k: cls.from_dict(values.pop(k)) for k, cls in _NAMED.items() if k in values}
        cfg = build_dataclass(Config, values, "")
        for key, section in named.items():
            setattr(cfg, key, section)
        return cfg
    except ConfigError as err:
        if source:
            raise ConfigError(f"{source}: {err}") from None
        raise


def check_options(
    registry: Registry,
    name: str,
    options: Mapping[str, Any],
    where: str,
    reserved: Iterable[str] = (),
) -> None:
    """Check ``options`` against the keyword arguments of ``registry[name]``'s constructor."""
    import inspect

    target = registry.get(name).target
    params = inspect.signature(target).parameters
    allowed = [
        p
        for p in params
        if p not in set(reserved)
        and params[p].kind in (params[p].KEYWORD_ONLY, params[p].POSITIONAL_OR_KEYWORD)
    ]
    for key in options:
        if key not in allowed:
            raise (
                unknown_key_error(str(key), allowed, where)
                if allowed
                else ConfigError(f"{where}: {registry.kind} {name!r} takes no options, got {key!r}")
            )


# -- YAML and overrides ---------------------------------------------------------------------
def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from ``path`` with errors that name the file and line."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of sections at the top, got {type(data).__name__}"
        )
    return data


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> Config:
    """Read a config YAML file, apply ``key=value`` overrides and validate."""
    values = apply_overrides(read_yaml(path), overrides)
    return config_from_dict(values, source=str(path))


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the fully resolved config atomically."""
    from vaelab.rundir import atomic_write_text

    atomic_write_text(path, cfg.to_yaml())


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"train.lr=1e-4"`` -> (["train", "lr"], "1e-4" parsed as YAML)."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(
            f"override {item!r}: expected KEY=VALUE with a dotted key, e.g. train.lr=1e-4"
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(values: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``values`` with dotted ``key=value`` overrides applied.

    Keys are checked later, by validation, so a typo is reported with its allowed keys.
    """
    import copy

    out = copy.deepcopy(dict(values))
    for item in overrides:
        keys, value = parse_override(item)
        node = out
        for i, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                where = ".".join(keys[: i + 1])
                raise ConfigError(f"override {item!r}: {where} is a value, not a section")
            node = child
        node[keys[-1]] = value
    return out


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key; anything else in ``over`` replaces ``base``.

    A named section (``model``/``objective``) whose ``name`` changes is replaced whole, so a
    preset never inherits parameters of another model.
    """
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            if key in _NAMED and "name" in value and value.get("name") != old.get("name"):
                out[key] = dict(value)
            else:
                out[key] = merge(old, value)
        else:
            out[key] = value
    return out
