"""What a Transformer language model costs: parameters, FLOPs, memory, KV cache, data and money.

Pure arithmetic on a :class:`TransformerConfig` (a GPT-2-shaped, decoder-only model: token and
learned position embeddings, L pre-norm blocks of multi-head attention and a GELU MLP of width
F = ff_mult * E, a final layer norm and a linear head, optionally tied to the token embedding).
Shapes: B batch, T sequence length, E width, h heads, V vocabulary, C context, L layers.

Parameters (``param_count``), with beta = 1 when the model has biases, 0 otherwise::

    embedding  V E                         position   C E  (learned positions)
    attention  L (4 E^2 + beta 4 E)        mlp        L (2 F E + beta (F + E))
    norm       (2 L + 1)(1 + beta) E       head       V E, or 0 when tied to the embedding

Forward FLOPs per token (``flops_per_token``; one multiply-add = 2 FLOPs; only matrix products,
as torch.utils.flop_counter counts them)::

    2 (L (4 E^2 + 2 F E) + E V)  +  4 L T E
    \\__ weights: about 2N ____/     \\_ q k^T and (weights) v over T keys, dense T x T scores

Training (forward + backward) = 3 x forward, hence ``training_flops(N, D) = 6 N D``.

Memory (``memory_bytes``): weights, gradients, optimiser states (Adam: two per parameter), an
optional float32 master copy for mixed precision, and activations saved for the backward pass.
KV cache (``kv_cache_bytes``, multi-head attention, h d = E): ``2 L B T E`` numbers.
Compute-optimal data (``chinchilla_optimal``, Hoffmann et al. 2022, arXiv:2203.15556): with
C = 6 N D and the rule of thumb D = 20 N, N = sqrt(C / 120).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Tuple, Union

__all__ = ["TransformerConfig", "GPT2_SMALL", "GPT2_XL", "GPT3_6_7B", "SEVEN_B_CLASS", "GPT3_175B", "PRESETS",
           "param_count", "build_on_meta", "numel", "flops_per_token", "training_flops", "memory_bytes",
           "activation_bytes", "saved_activation_bytes", "kv_cache_bytes", "chinchilla_optimal",
           "training_time_s", "training_cost", "TOKENS_PER_PARAM_CHINCHILLA"]

TOKENS_PER_PARAM_CHINCHILLA = 20.0


def _pos_int(fn: str, name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{fn}: {name} should be an int >= {minimum}, got {value!r}")
    return value


def _pos_num(fn: str, name: str, value: Any, allow_zero: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) \
        and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"{fn}: {name} should be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class TransformerConfig:
    """A GPT-2-shaped decoder-only Transformer: vocabulary V, context C, width E, L layers, h heads,
    MLP width ``ff_mult * E``; ``tied_embeddings`` (head = token embedding), ``bias`` (linear and
    layer-norm biases), ``learned_positions`` (a C x E position table; False for models whose
    positions have no parameters, e.g. sinusoidal or rotary)."""

    vocab_size: int
    context: int
    embed_dim: int
    num_layers: int
    num_heads: int
    ff_mult: int = 4
    tied_embeddings: bool = True
    bias: bool = True
    learned_positions: bool = True
    name: str = ""

    def __post_init__(self) -> None:
        fn = "TransformerConfig"
        for field in ("vocab_size", "context", "embed_dim", "num_layers", "num_heads", "ff_mult"):
            _pos_int(fn, field, getattr(self, field))
        if self.embed_dim % self.num_heads:
            raise ValueError(f"{fn}: embed_dim ({self.embed_dim}) should be divisible by num_heads "
                             f"({self.num_heads})")
        for field in ("tied_embeddings", "bias", "learned_positions"):
            if not isinstance(getattr(self, field), bool):
                raise TypeError(f"{fn}: {field} should be a bool, got {getattr(self, field)!r}")

    @property
    def ff_dim(self) -> int:
        """The MLP's hidden width F = ff_mult * E."""
        return self.ff_mult * self.embed_dim


# Presets. GPT-2 (Radford et al. 2019): V = 50,257 byte-level BPE tokens, C = 1,024, tied head;
# widths and depths as in the released checkpoints' configurations (small: 12 x 768, 12 heads;
# XL: 48 x 1600, 25 heads). GPT-3 (Brown et al. 2020, arXiv:2005.14165, Table 2.1): the GPT-2
# vocabulary, C = 2,048; "GPT-3 6.7B" 32 x 4096 with 32 heads, "GPT-3 175B" 96 x 12288 with 96
# heads. (GPT-3 alternates dense and locally banded sparse attention: the same parameters.)
GPT2_SMALL = TransformerConfig(50257, 1024, 768, 12, 12, name="GPT-2 small")
GPT2_XL = TransformerConfig(50257, 1024, 1600, 48, 25, name="GPT-2 XL")
GPT3_6_7B = TransformerConfig(50257, 2048, 4096, 32, 32, name="GPT-3 6.7B")
SEVEN_B_CLASS = GPT3_6_7B
GPT3_175B = TransformerConfig(50257, 2048, 12288, 96, 96, name="GPT-3 175B")
PRESETS = {c.name: c for c in (GPT2_SMALL, GPT2_XL, GPT3_6_7B, GPT3_175B)}


def _config(fn: str, cfg: Any) -> TransformerConfig:
    if not isinstance(cfg, TransformerConfig):
        raise TypeError(f"{fn}: cfg should be a TransformerConfig, got {type(cfg).__name__}")
    return cfg


def param_count(cfg: TransformerConfig) -> Dict[str, int]:
    """Parameters of ``cfg`` by part: ``{"embedding", "position", "attention", "mlp", "norm",
    "head", "total"}`` (formulas in the module docstring). Equals ``numel`` of :func:`build_on_meta`."""
    cfg = _config("param_count", cfg)
    V, C, E, L, F = cfg.vocab_size, cfg.context, cfg.embed_dim, cfg.num_layers, cfg.ff_dim
    beta = 1 if cfg.bias else 0
    parts = {
        "embedding": V * E,
        "position": C * E if cfg.learned_positions else 0,
        "attention": L * (4 * E * E + beta * 4 * E),  # q, k, v (3E x E) and the output projection (E x E)
        "mlp": L * (2 * F * E + beta * (F + E)),  # E -> F -> E
        "norm": (2 * L + 1) * (1 + beta) * E,  # two per block and the final one; scale (and shift)
        "head": 0 if cfg.tied_embeddings else V * E,
    }
    parts["total"] = sum(parts.values())
    return parts


def build_on_meta(cfg: TransformerConfig) -> Any:
    """The course's :class:`course_lib.gpt.GPT` for ``cfg`` on the ``meta`` device: every tensor
    has a shape and a dtype but no storage, so a 175-billion-parameter model costs no memory.

    ``bias=False`` removes the biases of every linear layer and layer norm (``F.linear`` and
    :func:`course_lib.norm.layer_norm` accept ``None``); ``learned_positions=False`` replaces the
    position table by zeros without parameters. Count with :func:`numel` (shared tensors once).
    """
    cfg = _config("build_on_meta", cfg)
    import torch

    from course_lib.gpt import GPT

    with torch.device("meta"):
        model = GPT(cfg.vocab_size, cfg.context, cfg.embed_dim, cfg.num_heads, cfg.num_layers, ff_mult=cfg.ff_mult,
                    tie_embeddings=cfg.tied_embeddings)
        if not cfg.bias:
            for module in model.modules():
                if getattr(module, "bias", None) is not None:
                    module.bias = None
        if not cfg.learned_positions:
            E = cfg.embed_dim

            class ZeroPositions(torch.nn.Module):
                def forward(self, positions: torch.Tensor) -> torch.Tensor:
                    return torch.zeros(*positions.shape, E, device=positions.device)

            model.pos_emb = ZeroPositions()
    return model


def numel(module: Any) -> int:
    """Number of parameters of a module, each shared tensor counted once (``parameters()`` does so)."""
    return sum(p.numel() for p in module.parameters())


def flops_per_token(cfg: TransformerConfig, seq_len: int, training: bool = False) -> float:
    """FLOPs of matrix products per token when the model reads ``seq_len`` tokens at once::

        forward = 2 (L (4 E^2 + 2 F E) + E V)  +  4 L T E        training = 3 x forward

    The first term is 2 FLOPs per weight of every matrix product (the head counts even when tied:
    the matrix is shared, the product is not); the second is attention's q k^T and weights @ v,
    each 2 T E per token and layer when the full T x T score matrix is computed (as course_lib and
    F.scaled_dot_product_attention's math path do; a kernel that skips the masked half does about
    half). Biases, norms, softmax and GELU (O(E) per token) are not counted, like the counter."""
    cfg = _config("flops_per_token", cfg)
    T = _pos_int("flops_per_token", "seq_len", seq_len)
    if not isinstance(training, bool):
        raise TypeError(f"flops_per_token: training should be a bool, got {training!r}")
    E, L, F, V = cfg.embed_dim, cfg.num_layers, cfg.ff_dim, cfg.vocab_size
    weights = 2 * (L * (4 * E * E + 2 * F * E) + E * V)
    attention = 4 * L * T * E
    forward = float(weights + attention)
    return 3.0 * forward if training else forward


def training_flops(n_params: float, n_tokens: float) -> float:
    """Training compute ``6 N D``: 2 N FLOPs per token forward, 4 N backward (gradients with respect
    to the inputs and to the weights), attention neglected."""
    N = _pos_num("training_flops", "n_params", n_params)
    D = _pos_num("training_flops", "n_tokens", n_tokens)
    return 6.0 * N * D


OPTIMIZER_STATES = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}


def activation_bytes(cfg: TransformerConfig, batch: int, seq_len: int, dtype_bytes: int = 4) -> int:
    """Bytes of the tensors the course's GPT (:class:`course_lib.gpt.GPT`, no dropout) saves for the
    backward pass of one forward over ``batch`` x ``seq_len`` tokens, listed operation by operation
    (numbers of dtype_bytes each; F = ff_mult E)::

        per layer   (12 E + 4 F) B T  +  2 B T  +  h B T^2
                    12 E: layer norms 2 x 3 (x - mean, normalised, output), the inputs of the four
                          linear layers' first three (qkv, proj, fc1), and q, k, v;
                    4 F:  GELU from scratch (3 tensors of width F) and the input of fc2;
                    2 B T: the two layer norms' 1 / std; h B T^2: the attention weights
        once        4 E B T + B T: the final layer norm and the head's input
        int64       8 (B T + T) bytes: the token ids and the positions

    Equal to :func:`saved_activation_bytes` of the model (``tests/test_cost.py``). It grows
    linearly in B and in L, and quadratically in T through the attention weights."""
    cfg = _config("activation_bytes", cfg)
    B = _pos_int("activation_bytes", "batch", batch)
    T = _pos_int("activation_bytes", "seq_len", seq_len)
    b = _pos_int("activation_bytes", "dtype_bytes", dtype_bytes)
    E, F, h, L = cfg.embed_dim, cfg.ff_dim, cfg.num_heads, cfg.num_layers
    per_layer = (12 * E + 4 * F) * B * T + 2 * B * T + h * B * T * T
    numbers = L * per_layer + 4 * E * B * T + B * T
    return numbers * b + 8 * (B * T + T)


def saved_activation_bytes(model: Any, ids: Any) -> int:
    """Bytes of the distinct tensors autograd saves for backward during ``model(ids)`` (measured with
    ``torch.autograd.graph.saved_tensors_hooks``; a storage saved by several operations, and the
    parameters themselves, are counted once / not at all)."""
    import torch

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: Dict[Tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in params and t.device.type != "meta":
            seen[(ptr, storage.nbytes())] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(ids)
    del out
    return sum(seen.values())


def memory_bytes(cfg_or_n_params: Union[TransformerConfig, int, float], *, dtype_bytes: int = 2,
                 optimizer: str = "adam", training: bool = True, state_bytes: int = 4,
                 master_weights: Union[bool, None] = None, batch: int = 1, seq_len: Union[int, None] = None
                 ) -> Dict[str, float]:
    """Bytes held to train (or run) a model of N parameters, by kind::

        weights        N * dtype_bytes
        gradients      N * dtype_bytes                        (training)
        optimizer      N * states * state_bytes               (Adam: 2 states, m and v; SGD 0)
        master         N * 4    float32 copy of the weights   (training, mixed precision: default
                                                               when dtype_bytes < 4)
        activations    activation_bytes(cfg, batch, seq_len, dtype_bytes)   (training, with a config
                                                               and seq_len; the course GPT's saved tensors)
        total

    With 2-byte weights and Adam: 2 + 2 + 8 + 4 = 16 bytes per parameter before activations."""
    fn = "memory_bytes"
    cfg = cfg_or_n_params if isinstance(cfg_or_n_params, TransformerConfig) else None
    N = float(param_count(cfg)["total"]) if cfg else _pos_num(fn, "cfg_or_n_params (a number of parameters)",
                                                              cfg_or_n_params)
    b = _pos_int(fn, "dtype_bytes", dtype_bytes)
    sb = _pos_int(fn, "state_bytes", state_bytes)
    if optimizer not in OPTIMIZER_STATES:
        raise ValueError(f"{fn}: optimizer should be one of {sorted(OPTIMIZER_STATES)}, got {optimizer!r}")
    if not isinstance(training, bool):
        raise TypeError(f"{fn}: training should be a bool, got {training!r}")
    if master_weights is None:
        master_weights = b < 4
    out = {"weights": N * b, "gradients": 0.0, "optimizer": 0.0, "master": 0.0, "activations": 0.0}
    if training:
        out["gradients"] = N * b
        out["optimizer"] = N * OPTIMIZER_STATES[optimizer] * sb
        out["master"] = N * 4.0 if master_weights else 0.0
        if seq_len is not None:
            if cfg is None:
                raise ValueError(f"{fn}: activations need the architecture: pass a TransformerConfig, not a number, "
                                 f"with seq_len={seq_len!r}")
            out["activations"] = activation_bytes(cfg, batch, seq_len, b)
    out["total"] = sum(out.values())
    return out


def kv_cache_bytes(cfg: TransformerConfig, seq_len: int, batch: int = 1, dtype_bytes: int = 2) -> int:
    """Bytes of the KV cache after ``seq_len`` tokens: one k and one v of shape (B, h, T, d) per
    layer, h d = E (multi-head attention), so ``2 L B T E dtype_bytes``; per token ``2 L E`` numbers."""
    cfg = _config("kv_cache_bytes", cfg)
    T = _pos_int("kv_cache_bytes", "seq_len", seq_len, 0)
    B = _pos_int("kv_cache_bytes", "batch", batch)
    b = _pos_int("kv_cache_bytes", "dtype_bytes", dtype_bytes)
    return 2 * cfg.num_layers * B * T * cfg.embed_dim * b


def chinchilla_optimal(compute_flops: float, tokens_per_param: float = TOKENS_PER_PARAM_CHINCHILLA
                       ) -> Tuple[float, float]:
    """Compute-optimal (N, D) for a budget C under two assumptions: C = 6 N D, and the rule of thumb
    D = 20 N read off Hoffmann et al. 2022 (Chinchilla: 70 B parameters on 1.4 T tokens). Then
    N = sqrt(C / (6 * 20)), D = 20 N. Their fitted exponents put N and D both near C^0.5."""
    C = _pos_num("chinchilla_optimal", "compute_flops", compute_flops)
    r = _pos_num("chinchilla_optimal", "tokens_per_param", tokens_per_param)
    n = math.sqrt(C / (6.0 * r))
    return n, r * n


def training_time_s(total_flops: float, n_devices: int, peak_flops_per_device: float, utilisation: float
                    ) -> float:
    """Wall-clock seconds: ``total_flops / (n_devices * peak_flops_per_device * utilisation)``;
    utilisation (model FLOPs utilisation) in (0, 1]."""
    fn = "training_time_s"
    F = _pos_num(fn, "total_flops", total_flops, allow_zero=True)
    n = _pos_int(fn, "n_devices", n_devices)
    peak = _pos_num(fn, "peak_flops_per_device", peak_flops_per_device)
    u = _pos_num(fn, "utilisation", utilisation)
    if u > 1:
        raise ValueError(f"{fn}: utilisation should lie in (0, 1], got {utilisation!r}")
    return F / (n * peak * u)


def training_cost(total_flops: float, n_devices: int, peak_flops_per_device: float, utilisation: float,
                  price_per_device_hour: float) -> float:
    """Money for the run: hours of :func:`training_time_s` x devices x price per device-hour."""
    price = _pos_num("training_cost", "price_per_device_hour", price_per_device_hour, allow_zero=True)
    hours = training_time_s(total_flops, n_devices, peak_flops_per_device, utilisation) / 3600.0
    return hours * n_devices * price
