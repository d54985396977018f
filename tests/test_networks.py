"""Encoder/decoder networks: shapes, parameter counts from the spec, init, errors, determinism."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vaelab.nn.burgess import BurgessDecoder, BurgessEncoder
from vaelab.nn.convvae import ConvVAEDecoder, ConvVAEEncoder
from vaelab.nn.dlib import DlibDecoder, DlibEncoder
from vaelab.nn.mlp import MLPDecoder, MLPEncoder

# (encoder, decoder, image_shape, latent_dim, options) for every supported size
CASES = [
    (BurgessEncoder, BurgessDecoder, (1, 64, 64), 10, {}),
    (BurgessEncoder, BurgessDecoder, (3, 32, 32), 10, {}),
    (DlibEncoder, DlibDecoder, (3, 64, 64), 10, {}),
    (ConvVAEEncoder, ConvVAEDecoder, (3, 64, 64), 16, {"max_filters": 32}),
    (ConvVAEEncoder, ConvVAEDecoder, (1, 32, 32), 8, {"max_filters": 16}),
    (MLPEncoder, MLPDecoder, (1, 28, 28), 6, {"hidden": (32, 16)}),
    (MLPEncoder, MLPDecoder, (3, 7, 5), 2, {"hidden": ()}),
]
IDS = [f"{enc.__name__[:-7]}-{'x'.join(map(str, shape))}" for enc, _, shape, _, _ in CASES]


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _build(case: tuple, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    enc_cls, dec_cls, shape, dim, options = case
    torch.manual_seed(seed)
    return enc_cls(shape, dim, **options), dec_cls(shape, dim, **options)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_shapes(case: tuple):
    encoder, decoder = _build(case)
    _, _, shape, dim, _ = case
    x = torch.rand(3, *shape)
    mean, log_var = encoder(x)
    assert mean.shape == log_var.shape == (3, dim)
    params = decoder(mean)
    assert params.shape == (3, *shape)
    # logits, not probabilities: a sigmoid output would never be negative
    assert (params < 0).any()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradients_reach_every_parameter(case: tuple):
    encoder, decoder = _build(case)
    x = torch.rand(4, *case[2])
    mean, log_var = encoder(x)
    (decoder(mean + log_var.exp()).square().mean() + mean.square().mean()).backward()
    for module in (encoder, decoder):
        for name, p in module.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_same_seed_same_network(case: tuple):
    x = torch.rand(2, *case[2], generator=torch.Generator().manual_seed(9))
    outputs = []
    for seed in (0, 0, 1):
        encoder, decoder = _build(case, seed)
        mean, log_var = encoder(x)
        outputs.append(torch.cat([mean, log_var, decoder(mean).flatten(1)], dim=1))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    assert not torch.allclose(outputs[0], outputs[2])


@pytest.mark.parametrize("case", CASES[:5], ids=IDS[:5])
def test_channels_last_input_gives_the_same_output(case: tuple):
    encoder, decoder = _build(case)
    encoder, decoder = encoder.eval(), decoder.eval()
    x = torch.rand(2, *case[2])
    reference = encoder(x)
    z = reference[0]
    decoded = decoder(z)
    encoder, decoder = (m.to(memory_format=torch.channels_last) for m in (encoder, decoder))
    moved = encoder(x.to(memory_format=torch.channels_last))
    for a, b in zip(reference, moved, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(decoder(z), decoded, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ parameter counts (spec §1)


@pytest.mark.parametrize(
    ("shape", "total", "encoder", "decoder"),
    [
        ((1, 64, 64), 502_005, 252_052, 249_953),
        ((3, 64, 64), 504_055, None, None),
        ((1, 32, 32), 469_173, None, None),
        ((3, 32, 32), 471_223, None, None),
    ],
)
def test_burgess_parameter_counts(shape, total, encoder, decoder):
    enc, dec = BurgessEncoder(shape, 10), BurgessDecoder(shape, 10)
    assert _count(enc) + _count(dec) == total
    if encoder is not None:
        assert (_count(enc), _count(dec)) == (encoder, decoder)


@pytest.mark.parametrize(
    ("channels", "total", "encoder", "decoder"),
    [(1, 690_517, 309_204, 381_313), (3, 692_567, None, None)],
)
def test_dlib_parameter_counts(channels, total, encoder, decoder):
    shape = (channels, 64, 64)
    enc, dec = DlibEncoder(shape, 10), DlibDecoder(shape, 10)
    assert _count(enc) + _count(dec) == total
    if encoder is not None:
        assert (_count(enc), _count(dec)) == (encoder, decoder)


@pytest.mark.parametrize(
    ("shape", "total"),
    [
        ((3, 64, 64), 1_768_195),
        ((1, 64, 64), 1_767_041),
        # 32×32: 128·4·4 = 2048 features instead of 8192 feed the two heads (64 weights each)
        # and come out of the decoder's lin1 (64 weights + 1 bias each)
        ((3, 32, 32), 1_768_195 - (8192 - 2048) * (2 * 64 + 64 + 1)),
    ],
)
def test_convvae_parameter_counts(shape, total):
    enc, dec = ConvVAEEncoder(shape, 64, max_filters=128), ConvVAEDecoder(shape, 64)
    assert _count(enc) + _count(dec) == total


def test_mlp_parameter_counts():
    # 784 -> 256 -> 256 -> 2 × 10, and 10 -> 256 -> 256 -> 784
    enc, dec = MLPEncoder((1, 28, 28), 10), MLPDecoder((1, 28, 28), 10)
    assert _count(enc) == 784 * 256 + 256 + 256 * 256 + 256 + 2 * (256 * 10 + 10)
    assert _count(dec) == 10 * 256 + 256 + 256 * 256 + 256 + 256 * 784 + 784


# ------------------------------------------------------------------------------ mean / log_var


def test_burgess_first_half_is_mean_second_half_is_log_var():
    encoder = BurgessEncoder((1, 32, 32), latent_dim=3)
    with torch.no_grad():
        encoder.mu_logvar_gen.weight.zero_()
        encoder.mu_logvar_gen.bias.copy_(torch.arange(6.0))
    mean, log_var = encoder(torch.rand(2, 1, 32, 32))
    torch.testing.assert_close(mean, torch.tensor([[0.0, 1.0, 2.0]]).expand(2, 3))
    torch.testing.assert_close(log_var, torch.tensor([[3.0, 4.0, 5.0]]).expand(2, 3))


@pytest.mark.parametrize(
    ("encoder", "shape", "mean_head", "log_var_head"),
    [
        (DlibEncoder, (1, 64, 64), "means", "log_var"),
        (ConvVAEEncoder, (1, 32, 32), "proj_mu", "proj_log_var"),
        (MLPEncoder, (1, 4, 4), "mean", "log_var"),
    ],
)
def test_separate_heads_give_mean_and_log_var(encoder, shape, mean_head, log_var_head):
    encoder = encoder(shape, 3).eval()
    with torch.no_grad():
        for head, offset in ((mean_head, 0.0), (log_var_head, 10.0)):
            getattr(encoder, head).weight.zero_()
            getattr(encoder, head).bias.copy_(torch.arange(3.0) + offset)
    mean, log_var = encoder(torch.rand(2, *shape))
    torch.testing.assert_close(mean, torch.tensor([[0.0, 1.0, 2.0]]).expand(2, 3))
    torch.testing.assert_close(log_var, torch.tensor([[10.0, 11.0, 12.0]]).expand(2, 3))


# ------------------------------------------------------------------------------------------ init


def _weighted_layers(module: nn.Module) -> list[nn.Module]:
    kinds = nn.Linear | nn.Conv2d | nn.ConvTranspose2d
    return [m for m in module.modules() if isinstance(m, kinds)]


def _fan_in_out(layer: nn.Module) -> tuple[int, int]:
    """Fans as torch.nn.init defines them: weight dims 1 and 0 times the kernel size (for a
    transposed conv, weight is (in, out, kh, kw), so "fan_in" counts output channels)."""
    w = layer.weight
    receptive = w[0, 0].numel() if w.dim() > 2 else 1
    return w.shape[1] * receptive, w.shape[0] * receptive


@pytest.mark.parametrize("shape", [(1, 64, 64), (3, 32, 32)])
def test_burgess_init_is_kaiming_uniform_with_default_biases(shape):
    torch.manual_seed(0)
    layers = _weighted_layers(BurgessEncoder(shape, 10)) + _weighted_layers(
        BurgessDecoder(shape, 10)
    )
    assert len(layers) == (14 if shape[1] == 64 else 12)
    for layer in layers:
        fan_in, _ = _fan_in_out(layer)
        bound = math.sqrt(2.0) * math.sqrt(3.0 / fan_in)  # ReLU gain √2
        w = layer.weight.detach()
        assert w.abs().max() <= bound
        if w.numel() >= 500:
            assert w.abs().max() >= 0.95 * bound
            assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)
        # PyTorch's default bias init: U(-1/√fan_in, 1/√fan_in), never all zero
        b = layer.bias.detach()
        assert b.abs().max() <= 1 / math.sqrt(fan_in)
        assert (b != 0).all()


def test_burgess_init_differs_from_pytorch_default():
    # PyTorch's default Linear init has bound 1/√fan_in, √6 times smaller than Kaiming-ReLU's
    torch.manual_seed(0)
    lin1 = BurgessEncoder((1, 64, 64), 10).lin1.weight
    assert lin1.std().item() == pytest.approx(math.sqrt(2 / 512), rel=0.05)


def test_dlib_init_is_glorot_uniform_with_zero_biases():
    torch.manual_seed(0)
    layers = _weighted_layers(DlibEncoder((3, 64, 64), 10)) + _weighted_layers(
        DlibDecoder((3, 64, 64), 10)
    )
    assert len(layers) == 13
    for layer in layers:
        fan_in, fan_out = _fan_in_out(layer)
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        w = layer.weight.detach()
        assert w.abs().max() <= bound
        if w.numel() >= 500:
            assert w.abs().max() >= 0.95 * bound
            assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)
        assert torch.count_nonzero(layer.bias) == 0


# --------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("cls", "shape", "message"),
    [
        (BurgessEncoder, (1, 28, 28), "Burgess networks accept 32×32 or 64×64 images.*got 28×28"),
        (BurgessDecoder, (3, 128, 128), "32×32 or 64×64.*got 128×128"),
        (BurgessEncoder, (1, 64, 32), "got 64×32"),
        (DlibEncoder, (1, 32, 32), "disentanglement_lib networks accept 64×64 images.*got 32×32"),
        (DlibDecoder, (1, 28, 28), "accept 64×64 images"),
        (ConvVAEEncoder, (3, 48, 48), "torch-vae networks accept 32×32 or 64×64.*got 48×48"),
        (ConvVAEDecoder, (3, 28, 28), "32×32 or 64×64"),
        (MLPEncoder, (0, 28, 28), "positive integers"),
        (BurgessEncoder, (64, 64), r"\(channels, height, width\)"),
    ],
)
def test_unsupported_image_shapes_raise_clearly(cls, shape, message):
    with pytest.raises(ValueError, match=message):
        cls(shape, 10)


def test_bad_options_raise_clearly():
    with pytest.raises(ValueError, match="latent_dim must be a positive integer"):
        BurgessDecoder((1, 64, 64), 0)
    with pytest.raises(ValueError, match="max_filters must be a positive multiple of 4"):
        ConvVAEEncoder((1, 64, 64), 8, max_filters=30)
    with pytest.raises(ValueError, match="hidden must be a sequence of positive integers"):
        MLPDecoder((1, 8, 8), 2, hidden=(16, 0))


def test_image_shape_may_be_a_list():
    # configs loaded from YAML give lists
    assert BurgessEncoder([1, 32, 32], 4)(torch.rand(1, 1, 32, 32))[0].shape == (1, 4)
