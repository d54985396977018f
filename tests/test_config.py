"""Configs: round trips, overrides, validation messages, named sections, presets."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from vaelab.config import (
    Config,
    ConfigError,
    DataConfig,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    load_config,
    merge,
    save_config,
)
from vaelab.presets import load_preset, preset_names, preset_values
from vaelab.registry import MODELS, Registry, UnknownNameError


@dataclass
class TinyParams:
    latent_dim: int = 10
    hidden: tuple[int, int] = (32, 32)


@pytest.fixture
def tiny_model():
    """A model registered for the duration of one test (the real ones come with the models)."""

    @MODELS.register("tiny-test-model", "a test model", params=TinyParams)
    def build(latent_dim: int = 10, hidden: tuple[int, int] = (32, 32)):
        return (latent_dim, hidden)

    yield "tiny-test-model"
    MODELS._entries.pop("tiny-test-model")


def test_defaults_round_trip_through_yaml(tmp_path):
    cfg = Config()
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    again = load_config(path)
    assert again == cfg
    assert again.to_dict() == cfg.to_dict()
    assert again.train.betas == (0.9, 0.999)


def test_round_trip_keeps_every_changed_value(tmp_path, tiny_model):
    values = {
        "seed": 7,
        "data": {"name": "mnist", "split": "test", "transform": "binarize", "bits": 5},
        "model": {"name": tiny_model, "latent_dim": 4, "hidden": [8, 16]},
        "train": {"lr": 1e-3, "steps": 12, "amp": "bf16", "grad_clip": 5},
        "eval": {"every": 100},
    }
    cfg = config_from_dict(values)
    assert cfg.model.params == TinyParams(latent_dim=4, hidden=(8, 16))
    assert cfg.train.grad_clip == 5.0 and isinstance(cfg.train.grad_clip, float)
    save_config(cfg, tmp_path / "c.yaml")
    again = load_config(tmp_path / "c.yaml")
    assert again == cfg
    assert again.to_dict()["model"] == {"name": tiny_model, "latent_dim": 4, "hidden": [8, 16]}


def test_dotted_overrides_are_typed_by_the_field(tiny_model):
    values = apply_overrides(
        {"model": {"name": tiny_model}},
        [
            "train.lr=1e-4",
            "train.steps=2e3",
            "train.compile=true",
            "model.latent_dim=3",
            "eval.every=5",
            "train.grad_clip=null",
            "data.root=/tmp/x",
        ],
    )
    cfg = config_from_dict(values)
    assert cfg.train.lr == pytest.approx(1e-4)  # YAML reads "1e-4" as a string; the field is float
    assert cfg.train.steps == 2000
    assert cfg.train.compile is True
    assert cfg.model.params.latent_dim == 3
    assert cfg.eval.every == 5
    assert cfg.train.grad_clip is None
    assert cfg.data.root == "/tmp/x"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lr=fast", "train.lr: expected a number, got 'fast'"),
        ("train.optimizer=adamm", "train.optimizer: 'adamm' is not allowed (did you mean 'adam'?)"),
        ("train.amp=fp8", "allowed values: none, bf16, fp16"),
        ("train.batch_size=0", "train.batch_size: 0 is below the minimum 1"),
        ("data.bits=9", "data.bits: 9 is above the maximum 8"),
        ("train.steps=1.5", "train.steps: expected an integer, got 1.5"),
        ("train.lrr=1", "unknown config key 'train.lrr'. Did you mean train.lr?"),
        ("trian.lr=1", "unknown config key 'trian'. Did you mean train?"),
        ("data.name=mnsit", "data.name: unknown dataset 'mnsit'. Did you mean 'mnist'?"),
        ("model.name=nope", "model.name: unknown model 'nope'"),
        ("device=tpu", "device: 'tpu' is not allowed"),
        ("train.compile=maybe", "train.compile: expected true or false, got 'maybe'"),
        ("data.options.cache=true", "data.options: dataset 'mnist' takes no options, got 'cache'"),
        ("train.betas=[0.9]", "train.betas: expected 2 values"),
        ("eval.metrics=[nope]", "eval.metrics: unknown metric 'nope'"),
    ],
)
def test_errors_name_field_value_and_allowed(override, message):
    with pytest.raises(ConfigError) as err:
        config_from_dict(apply_overrides({"data": {"name": "mnist"}}, [override]))
    assert message in str(err.value)


def test_unknown_key_in_a_named_section_lists_the_model_parameters(tiny_model):
    with pytest.raises(ConfigError) as err:
        config_from_dict({"model": {"name": tiny_model, "latent_dims": 3}})
    text = str(err.value)
    assert "unknown config key 'model.latent_dims'" in text
    assert "Did you mean model.latent_dim?" in text
    assert "hidden, latent_dim" in text


def test_sections_validate_when_built_directly():
    with pytest.raises(ConfigError, match="train.lr: -1.0 is below the minimum 0.0"):
        TrainConfig(lr=-1.0)
    with pytest.raises(ConfigError, match="data.transform: 'binary' is not allowed"):
        DataConfig(transform="binary")


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*missing.yaml"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("train:\n  batchsize: 3\n")
    with pytest.raises(ConfigError, match=r"typo.yaml: unknown config key 'train.batchsize'"):
        load_config(typo)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping of sections"):
        load_config(scalar)


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides({}, ["train.lr"])
    with pytest.raises(ConfigError, match="train.lr is a value, not a section"):
        apply_overrides({"train": {"lr": 1.0}}, ["train.lr.x=1"])


def test_merge_replaces_a_named_section_when_its_name_changes():
    base = {"model": {"name": "a", "depth": 3}, "train": {"lr": 1.0, "steps": 5}}
    out = merge(base, {"model": {"name": "b"}, "train": {"lr": 2.0}})
    assert out == {"model": {"name": "b"}, "train": {"lr": 2.0, "steps": 5}}
    assert merge(base, {"model": {"depth": 4}})["model"] == {"name": "a", "depth": 4}


def test_every_preset_loads_and_validates():
    names = preset_names()
    assert "demo" in names
    for name in names:
        cfg = load_preset(name)
        assert cfg.description, f"preset {name} has no description"


def test_preset_overrides_and_unknown_preset():
    cfg = load_preset("demo", ["train.lr=1e-4"])
    assert cfg.train.lr == pytest.approx(1e-4)
    assert cfg.data.name == "dsprites-procedural"
    with pytest.raises(UnknownNameError, match="unknown preset 'dmeo'. Did you mean 'demo'"):
        load_preset("dmeo")


def test_preset_base_chain(tmp_path, monkeypatch):
    import vaelab.presets as presets

    (tmp_path / "a.yaml").write_text("description: a\ntrain:\n  lr: 0.5\n  steps: 3\n")
    (tmp_path / "b.yaml").write_text("base: a\ndescription: b\ntrain:\n  steps: 4\n")
    (tmp_path / "c.yaml").write_text("base: d\n")
    (tmp_path / "d.yaml").write_text("base: c\n")
    monkeypatch.setattr(presets, "_FOLDER", tmp_path)
    assert preset_values("b") == {"description": "b", "train": {"lr": 0.5, "steps": 4}}
    with pytest.raises(ConfigError, match="cycle: c -> d -> c"):
        preset_values("c")


def test_registry_suggests_and_lists():
    reg = Registry("widget")
    reg.register("alpha", "first")(lambda: 1)
    with pytest.raises(UnknownNameError) as err:
        reg.get("alpah")
    assert str(err.value) == "unknown widget 'alpah'. Did you mean 'alpha'? Known widgets: alpha"
    assert reg.names() == ["alpha"] and reg.build("alpha") == 1
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("alpha")(lambda: 2)
