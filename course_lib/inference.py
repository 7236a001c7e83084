"""Cheaper inference: int8 weights for the Linear layers, and what a model costs to store.

Dynamic quantisation (as in PyTorch's ``quantize_dynamic``) stores each ``nn.Linear`` weight
:math:`W \\in \\mathbb{R}^{O\\times I}` as int8 with one scale per tensor, symmetric around 0:

.. math:: s = \\frac{\\max(|\\min W|, |\\max W|)}{127.5}, \\qquad
          Q = \\operatorname{clamp}(\\operatorname{round}(W \\cdot s^{-1}), -128, 127) \\in \\{-128..127\\}^{O\\times I},
          \\qquad \\hat W = s\\,Q,

(:math:`127.5 = (127 - (-128)) / 2`, the observer's convention; ``round`` halves to even), and
quantises the activations to 8 bits on the fly, batch by batch ("dynamic"), so that the matrix
product runs on integers. Each weight is off by at most :math:`s/2` (the largest one sits at
127.5 steps and is clipped to 127: exactly half a step). :func:`quantize_symmetric`
is the weight half written out; it equals the int8 weight inside PyTorch's quantised Linear
(tested). :func:`quantize_linear_layers` calls PyTorch's own implementation on a copy of a model.
"""

from __future__ import annotations

import copy
import io
import math
import warnings
from typing import Tuple

import torch
from torch import Tensor

from course_lib.validate import expect


def quantize_symmetric(w: Tensor) -> Tuple[Tensor, float]:
    """Per-tensor symmetric int8 quantisation of ``w`` (any shape, floating, finite):
    ``(q int8 of w's shape, scale)`` with ``w ≈ scale * q``.

    ``scale = max(|min w|, |max w|) / 127.5`` (at least float32's machine epsilon, so that an
    all-zero tensor gets a positive scale), ``q = clamp(round(w * (1 / scale)), -128, 127)`` (the product in float32), exactly as
    PyTorch's ``MinMaxObserver(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)`` and
    ``torch.quantize_per_tensor`` compute it.
    """
    fn = "quantize_symmetric"
    expect(fn, "w", w)
    if not w.is_floating_point():
        raise TypeError(f"{fn}: w should be a floating-point tensor, got dtype {w.dtype}")
    if w.numel() == 0:
        raise ValueError(f"{fn}: w should have at least one element, got shape {tuple(w.shape)}")
    if not bool(torch.isfinite(w).all()):
        raise ValueError(f"{fn}: w should be finite (a NaN or inf weight has no int8 code), got a non-finite value")
    w32 = w.detach().float()
    amax = torch.maximum(-w32.min().clamp(max=0), w32.max().clamp(min=0))  # float32, as the observer
    scale = torch.clamp(amax / ((127 - (-128)) / 2), min=torch.finfo(torch.float32).eps)
    scale = float(scale)  # the quantiser stores the scale as a double
    inv = torch.tensor(1.0 / scale, dtype=torch.float32)  # the kernel multiplies by the float32 inverse
    q = torch.clamp(torch.round(w32 * inv), -128, 127).to(torch.int8)
    return q, scale


def dequantize(q: Tensor, scale: float) -> Tensor:
    """``scale * q`` as float32 (the weight the int8 model effectively uses)."""
    expect("dequantize", "q", q, integer=True)
    return (q.double() * scale).float()


def quantize_linear_layers(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` (float32, on the CPU) whose ``nn.Linear`` layers are PyTorch's dynamically
    quantised int8 Linear (``torch.ao.quantization.quantize_dynamic``, weights as
    :func:`quantize_symmetric`, activations quantised per batch). Embeddings and layer norms stay
    float. The model itself is not changed.

    ``torch.ao.quantization`` is deprecated in favour of the separate ``torchao`` package; torch
    2.13 still ships and runs it and prints a deprecation warning, silenced here.
    """
    fn = "quantize_linear_layers"
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{fn}: model should be a torch.nn.Module, got {type(model).__name__}")
    engines = torch.backends.quantized.supported_engines
    if not any(e in engines for e in ("x86", "fbgemm", "qnnpack", "onednn")):
        raise RuntimeError(f"{fn}: this PyTorch build has no quantised CPU engine (supported: {engines}); "
                           "int8 dynamic quantisation is unavailable here")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        float_copy = copy.deepcopy(model).float().cpu().eval()
        return quantize_dynamic(float_copy, {torch.nn.Linear}, dtype=torch.qint8)


def quantized_weight(module: torch.nn.Module) -> Tuple[Tensor, float]:
    """``(int8 weight, scale)`` stored inside one of PyTorch's dynamically quantised Linear layers."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = module.weight()
    return w.int_repr(), float(w.q_scale())


def state_bytes(model: torch.nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``: what the model costs to store or ship
    (int8 Linear layers count one byte per weight plus their scales)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


def max_rounding_error(w: Tensor) -> float:
    """``max |w - dequantize(quantize_symmetric(w))|``: at most ``scale / 2`` (the rounding step)."""
    q, s = quantize_symmetric(w)
    err = float((w.detach().double() - q.double() * s).abs().max())
    return err if math.isfinite(err) else math.inf
