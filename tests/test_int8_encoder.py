"""The int8 encoder of the CPU inference benchmarks (benchmark/int8_encoder.py): a quantised Linear against a float
reference with a quantisation-error bound worked out by hand, and the swap of the encoder's Linear layers."""
import os

import numpy as np
import torch
from torch import nn

from nnunetv2_scarnet.benchmark.int8_encoder import Int8Encoders, quantized_encoder_copy
from nnunetv2_scarnet.network.architectures.precision import CPU_BF16_ENV


def test_int8_linear_stays_within_the_rounding_bound_of_its_scales():
    rng = np.random.default_rng(3)
    w = rng.uniform(-0.5, 0.5, size=(8, 64)).astype(np.float32)
    b = rng.uniform(-1, 1, size=8).astype(np.float32)
    x = rng.uniform(-2.0, 3.0, size=(5, 64)).astype(np.float32)
    linear = nn.Linear(64, 8)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(w))
        linear.bias.copy_(torch.from_numpy(b))
    holder = nn.Module()
    holder.layer = linear
    out = quantized_encoder_copy(holder).layer(torch.from_numpy(x)).detach().numpy()

    reference = x.astype(np.float64) @ w.T.astype(np.float64) + b
    # symmetric int8 weights: step 2 max|w| / 255; uint8 activations over [min(x, 0), max(x, 0)] in at worst 7 bits
    # (reduce_range): step (max - min) / 127. Each rounding moves a value by at most half a step, so
    # |x.w - xq.wq| <= sum_k |x_k| dw/2 + |w_k| dx/2 + dw dx / 4 per output.
    dw = 2 * np.abs(w).max() / 255
    dx = (max(x.max(), 0) - min(x.min(), 0)) / 127
    bound = (np.abs(x) @ np.full(64, dw / 2))[:, None] + (np.abs(w) @ np.full(64, dx / 2))[None, :] + 64 * dw * dx / 4
    error = np.abs(out - reference)
    assert np.all(error <= bound + 1e-5)
    assert error.max() > 1e-4  # the products really ran in int8 (float32 alone is exact to ~1e-6 here)


def test_swap_quantises_every_linear_of_the_lite_medsam_encoder_and_restores_it(monkeypatch):
    from nnunetv2_scarnet.network.encoders.lite_medsam import LiteMedSAMEncoder

    monkeypatch.setenv(CPU_BF16_ENV, "all")
    network = nn.Module()
    network.encoder = LiteMedSAMEncoder().eval()
    original = network.encoder
    encoders = Int8Encoders()
    with encoders.swapped_in(network):
        floats = [m for m in network.encoder.modules() if isinstance(m, nn.Linear)]
        quantised = [m for m in network.encoder.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
        # TinyViT depths [2, 2, 6, 2]: the 10 attention blocks of layers 1-3 have qkv, proj, fc1 and fc2 each
        assert len(quantised) == 10 * 4 and not floats
        assert os.environ[CPU_BF16_ENV] == "0"
        x = torch.rand(1, 3, 256, 256)
        with torch.no_grad():
            taps = network.encoder(x)
    assert network.encoder is original
    assert os.environ[CPU_BF16_ENV] == "all"
    assert not any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in original.modules())
    with torch.no_grad():
        reference = original(x)
    # the int8 copy computes (its accuracy is the first test's and, on trained weights, docs/benchmarks.md's)
    assert [t.shape for t in taps] == [r.shape for r in reference]
    assert all(torch.isfinite(t).all() and not torch.equal(t, r) for t, r in zip(taps, reference))
