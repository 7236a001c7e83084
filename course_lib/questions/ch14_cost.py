"""Questions of sheet 14_cost: what a large model costs, on paper. The parameter count of a
GPT-2-shaped configuration, the days a training run takes, the bytes of training with an
optimizer, and the compute-optimal split of a budget (Hoffmann et al. 2022).

Each question carries its hint tiers and the typical mistakes (misconceptions) that
:func:`course_lib.check.check` recognises by name. The references are thin adapters around
:mod:`course_lib.cost` (the sheet's functions take plain numbers, the library takes a
``TransformerConfig``), imported when a reference first runs.
"""

from __future__ import annotations

import math
from typing import Any, Callable, List

import torch

from course_lib.questions import Case, Misconception, Question

SHEET = "14_cost"
DAY_S = 86_400.0


def _number_call(func: Callable[..., Any], case: Case) -> float:
    """The student's number as a float, so that 1234 and 1234.0 count alike."""
    return float(func(*case.args, **case.kwargs))


def _pair_call(func: Callable[..., Any], case: Case) -> tuple:
    """The student's pair of numbers as two floats."""
    out = func(*case.args, **case.kwargs)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise TypeError(f"expected a pair (n_params, n_tokens), got {out!r}")
    return float(out[0]), float(out[1])


def _draw(gen: torch.Generator, low: int, high: int) -> int:
    """An int in low..high (both included) from ``gen``."""
    return int(torch.randint(low, high + 1, (1,), generator=gen))


# --- 14.1 the parameters of a GPT-2-shaped model --------------------------------------------------
def param_count_reference(vocab_size: int, context: int, embed_dim: int, num_layers: int, tied: bool) -> int:
    """The reference of 14.1: ``course_lib.cost.param_count(cfg)["total"]`` for a GPT-2-shaped
    configuration (learned positions, biases, ff_mult 4; the number of heads does not change the
    count, so one head is used)."""
    from course_lib import cost

    cfg = cost.TransformerConfig(vocab_size=vocab_size, context=context, embed_dim=embed_dim, num_layers=num_layers,
                                 num_heads=1, tied_embeddings=bool(tied))
    return int(cost.param_count(cfg)["total"])


def _count_variant(tied_twice: bool = False, no_head: bool = False, no_proj: bool = False,
                   no_norms: bool = False) -> Callable[..., int]:
    """A parameter count with the given mistakes (see the misconceptions of 14.1)."""
    def wrong(vocab_size, context, embed_dim, num_layers, tied):
        V, C, E, L = vocab_size, context, embed_dim, num_layers
        attention = (3 * E * E + 3 * E) + (0 if no_proj else E * E + E)
        mlp = (4 * E * E + 4 * E) + (4 * E * E + E)
        norms = 0 if no_norms else 2 * E
        head = 0 if (no_head or (tied and not tied_twice)) else V * E
        return V * E + C * E + L * (attention + mlp + 2 * norms) + norms + head
    return wrong


_COUNT_SPECS = [  # label, V, C, E, L, tied
    ("GPT-2 small: V=50257, C=1024, E=768, L=12, tied", 50257, 1024, 768, 12, True),
    ("the same, untied (a separate output head)", 50257, 1024, 768, 12, False),
    ("this course's chapter-13 GPT: V=96, C=128, E=64, L=2, untied", 96, 128, 64, 2, False),
    ("every size 1: V=1, C=1, E=1, L=1, tied", 1, 1, 1, 1, True),
    ("one layer, untied: V=10, C=8, E=6, L=1", 10, 8, 6, 1, False),
    ("deep and narrow, tied: V=30, C=16, E=8, L=24", 30, 16, 8, 24, True),
]


def _count_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [Case(label, (V, C, E, L, tied)) for label, V, C, E, L, tied in _COUNT_SPECS]
    if hidden:
        for i in range(8):
            V, C, E, L = _draw(gen, 2, 60000), _draw(gen, 1, 4096), (8, 16, 48, 96, 128, 256, 1, 512)[i], _draw(gen, 1, 48)
            tied = i % 2 == 0
            cases.append(Case(f"V={V}, C={C}, E={E}, L={L}, {'tied' if tied else 'untied'}", (V, C, E, L, tied)))
    return cases


# --- 14.2 how many days a training run takes -----------------------------------------------------
def training_days_reference(n_params: float, n_tokens: float, n_devices: int, peak_flops: float,
                            utilisation: float) -> float:
    """The reference of 14.2: ``cost.training_time_s(cost.training_flops(N, D), ...)`` in days."""
    from course_lib import cost

    flops = cost.training_flops(n_params, n_tokens)
    return float(cost.training_time_s(flops, n_devices, peak_flops, utilisation)) / DAY_S


def _days_variant(flops_per_param_token: float = 6.0, use_utilisation: bool = True) -> Callable[..., float]:
    """A training-time estimate with the given mistakes (see the misconceptions of 14.2)."""
    def wrong(n_params, n_tokens, n_devices, peak_flops, utilisation):
        rate = n_devices * peak_flops * (utilisation if use_utilisation else 1.0)
        return flops_per_param_token * n_params * n_tokens / rate / DAY_S
    return wrong


def _days_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("175e9 parameters, 300e9 tokens, 1024 devices of 312e12 FLOP/s at 40 %", (175e9, 300e9, 1024, 312e12, 0.4)),
        Case("7e9 parameters, 1e12 tokens, 256 devices of 312e12 FLOP/s at 50 %", (7e9, 1e12, 256, 312e12, 0.5)),
        Case("124e6 parameters, 10e9 tokens, one device of 100e12 FLOP/s at 30 %", (124e6, 10e9, 1, 100e12, 0.3)),
        Case("1e6 parameters, 1e6 tokens, one device of 1e12 FLOP/s at 100 %", (1e6, 1e6, 1, 1e12, 1.0)),
        Case("70e9 parameters, 1.4e12 tokens, 2048 devices of 989e12 FLOP/s at 45 %", (70e9, 1.4e12, 2048, 989e12, 0.45)),
    ]
    if hidden:
        for i in range(6):
            N = float(10 ** (6 + 5 * float(torch.rand(1, generator=gen))))
            D = 20 * N * (0.5 + float(torch.rand(1, generator=gen)))
            devices, util = 2 ** _draw(gen, 0, 12), (0.25, 0.35, 0.45, 0.55, 0.6, 0.75)[i]
            cases.append(Case(f"N={N:.3g}, D={D:.3g}, {devices} devices of 2e14 FLOP/s at {util:.0%}",
                              (N, D, devices, 2e14, util)))
    return cases


# --- 14.3 the bytes of training ------------------------------------------------------------------
def training_bytes_reference(n_params: int, dtype_bytes: int, optimizer: str) -> float:
    """The reference of 14.3: ``cost.memory_bytes(n, dtype_bytes=..., optimizer=..., training=True)
    ["total"]`` without activations: weights and gradients in the training format, optimizer states in
    float32, and a float32 master copy of the weights when the format is narrower than float32."""
    from course_lib import cost

    return float(cost.memory_bytes(n_params, dtype_bytes=dtype_bytes, optimizer=optimizer, training=True)["total"])


def _bytes_variant(as_values: bool = False, gradients: bool = True, adam_states: int = 2,
                   master: bool = True) -> Callable[..., float]:
    """A training-memory count with the given mistakes (see the misconceptions of 14.3)."""
    def wrong(n_params, dtype_bytes, optimizer):
        states = {"sgd": 0, "momentum": 1, "adam": adam_states}[optimizer]
        copy = 1 if (master and dtype_bytes < 4) else 0
        if as_values:
            return n_params * (1 + (1 if gradients else 0) + states + copy)
        return n_params * (dtype_bytes * (1 + (1 if gradients else 0)) + 4 * states + 4 * copy)
    return wrong


def _bytes_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("GPT-2 small (124,439,808 parameters), Adam, float32 throughout", (124_439_808, 4, "adam")),
        Case("7e9 parameters, Adam, bfloat16 (mixed precision)", (7_000_000_000, 2, "adam")),
        Case("1,000 parameters, plain SGD, float32", (1000, 4, "sgd")),
        Case("one parameter, SGD with momentum, float64", (1, 8, "momentum")),
        Case("175e9 parameters, Adam, float16 (mixed precision)", (175_000_000_000, 2, "adam")),
        Case("350e6 parameters, SGD with momentum, bfloat16 (mixed precision)", (350_000_000, 2, "momentum")),
    ]
    if hidden:
        for i in range(6):
            n, dtype_bytes = _draw(gen, 1, 10**9), (2, 4, 2, 8, 4, 2)[i]
            opt = ("adam", "momentum", "sgd", "adam", "adam", "momentum")[i]
            cases.append(Case(f"{n:,} parameters, {opt}, {dtype_bytes} bytes per value", (n, dtype_bytes, opt)))
    return cases


# --- 14.4 the compute-optimal model --------------------------------------------------------------
def chinchilla_reference(compute_flops: float) -> tuple:
    """The reference of 14.4: ``cost.chinchilla_optimal`` (C = 6 N D with D = 20 N)."""
    from course_lib import cost

    n_params, n_tokens = cost.chinchilla_optimal(compute_flops)
    return float(n_params), float(n_tokens)


def _chinchilla_variant(flops_per_param_token: float = 6.0, tokens_per_param: float = 20.0) -> Callable[..., tuple]:
    """A compute-optimal split with the given mistakes (see the misconceptions of 14.4)."""
    def wrong(compute_flops):
        n = math.sqrt(compute_flops / (flops_per_param_token * tokens_per_param))
        return n, tokens_per_param * n
    return wrong


def _chinchilla_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("C = 5.88e23 FLOPs = 6 x 70e9 x 1.4e12 (the N and D of Chinchilla)", (5.88e23,)),
        Case("C = 1e21 FLOPs", (1e21,)),
        Case("C = 6e18 FLOPs", (6e18,)),
        Case("C = 1.2e2 FLOPs (a toy budget: N = 1)", (120.0,)),
        Case("C = 3.14e23 FLOPs", (3.14e23,)),
    ]
    if hidden:
        for _ in range(6):
            c = float(10 ** (15 + 11 * float(torch.rand(1, generator=gen))))
            cases.append(Case(f"C = {c:.3g} FLOPs", (c,)))
    return cases


QUESTIONS = [
    Question(
        id="14.1", sheet=SHEET, title="Count the parameters of a GPT", func_name="gpt_param_count", points=2,
        reference=param_count_reference, make_cases=_count_cases, call=_number_call, kind="derive", rtol=0.0, atol=0.5,
        hints=(
            "Walk through the model from the token ids to the logits and add up every weight matrix, bias vector "
            "and layer-norm gain and shift; the heads split the width E but add no parameter of their own.",
            "A linear layer from width a to width b holds a x b weights and b biases; a layer norm over E features "
            "holds 2E values; a block holds two layer norms, the attention's projections and the MLP of hidden "
            "width 4E; the embeddings are tables of shape (V, E) and (C, E).",
            "Write the count of one block as a polynomial in E, multiply by the number of layers, then add the two "
            "tables, the final layer norm and, only when the weights are not tied, the output head.",
        ),
        misconceptions=(
            Misconception(
                "tied embeddings counted twice",
                "With tied embeddings the output head reuses the token table: it is one tensor, so its V x E values "
                "are stored and counted once.",
                _count_variant(tied_twice=True),
            ),
            Misconception(
                "the output head forgotten",
                "Without tying, the head that turns the final states into V logits is a matrix of its own, as large "
                "as the token table; it is often the largest single tensor of a small model.",
                _count_variant(no_head=True),
            ),
            Misconception(
                "the attention output projection forgotten",
                "After the heads are concatenated, attention mixes them with one more E x E projection (with its "
                "bias) before the residual addition: a block has four E x E matrices in attention, not three.",
                _count_variant(no_proj=True),
            ),
            Misconception(
                "the layer norms forgotten",
                "Every layer norm learns a gain and a shift per feature: two in each block and one after the last "
                "block, each 2E values. Few, but numel() counts them.",
                _count_variant(no_norms=True),
            ),
        ),
    ),
    Question(
        id="14.2", sheet=SHEET, title="How long does a training run take?", func_name="training_days", points=2,
        reference=training_days_reference, make_cases=_days_cases, call=_number_call, kind="derive", rtol=1e-9,
        atol=0.0,
        hints=(
            "First the work: how many floating-point operations one token costs in the forward pass, how many the "
            "backward pass adds, times the tokens. Then the speed: what the devices really sustain, not their peak.",
            "A multiply-add counts as two FLOPs. The backward pass computes two gradients per layer (with respect "
            "to the inputs and to the weights), each as costly as the forward. Sustained speed = devices x peak x "
            "utilisation, in FLOP/s.",
            "Divide the total FLOPs by the sustained FLOP/s to get seconds, then by the seconds of a day.",
        ),
        misconceptions=(
            Misconception(
                "forward pass only (2N per token)",
                "2N FLOPs per token is the cost of inference; training also runs the backward pass, about twice the "
                "forward, so a trained token costs about 6N.",
                _days_variant(flops_per_param_token=2.0),
            ),
            Misconception(
                "the backward pass costed like the forward (4N per token)",
                "The backward pass of a linear layer computes two products, one for the gradient of its input and one "
                "for the gradient of its weights, each as large as the forward one: twice the forward, not once.",
                _days_variant(flops_per_param_token=4.0),
            ),
            Misconception(
                "the peak speed assumed (utilisation ignored)",
                "A device's peak FLOP/s is a ceiling; communication, memory traffic and idle time leave a fraction "
                "of it (the utilisation) for the model's arithmetic, so the run takes longer.",
                _days_variant(use_utilisation=False),
            ),
        ),
    ),
    Question(
        id="14.3", sheet=SHEET, title="The memory of training with an optimizer", func_name="training_memory_bytes",
        points=2, reference=training_bytes_reference, make_cases=_bytes_cases, call=_number_call, kind="implement",
        rtol=0.0, atol=0.5,
        hints=(
            "Training keeps, for every parameter, its value, its gradient, whatever the optimizer remembers "
            "between steps and, in mixed precision, a float32 copy of the weights; the answer is in bytes.",
            "Weights and gradients take dtype_bytes each; plain SGD remembers nothing, SGD with momentum one "
            "velocity, Adam two running moments, each state in float32 (4 bytes); the master copy exists only "
            "when dtype_bytes is below 4.",
            "Add up the bytes stored per parameter for the given optimizer and format, then multiply by the "
            "number of parameters.",
        ),
        misconceptions=(
            Misconception(
                "parameters counted instead of bytes",
                "A count of values is not a memory size: every stored value takes 2, 4 or 8 bytes depending on "
                "its format, and memory is what runs out.",
                _bytes_variant(as_values=True),
            ),
            Misconception(
                "the gradients forgotten",
                "Backpropagation writes one gradient per parameter, and it must live until the optimizer step has "
                "used it: one more value per parameter.",
                _bytes_variant(gradients=False),
            ),
            Misconception(
                "one Adam moment only",
                "Adam keeps two running averages per parameter, of the gradient and of its square, both carried "
                "from step to step.",
                _bytes_variant(adam_states=1),
            ),
            Misconception(
                "the float32 master copy forgotten",
                "In mixed precision the optimizer does not update the 16-bit weights directly (small updates "
                "would round away): it updates a float32 copy and rounds that down, 4 more bytes per parameter.",
                _bytes_variant(master=False),
            ),
        ),
    ),
    Question(
        id="14.4", sheet=SHEET, title="The compute-optimal model for a budget", func_name="chinchilla_optimal",
        points=2, reference=chinchilla_reference, make_cases=_chinchilla_cases, call=_pair_call, kind="derive",
        rtol=1e-9, atol=0.0,
        hints=(
            "Two equations, two unknowns: the budget fixes the product of parameters and tokens, and the rule of "
            "thumb fixes their ratio.",
            "With C = 6 N D and D = 20 N, substitute D into the budget: an equation in N alone, of degree two.",
            "Solve for N with a square root, then get D from the ratio; return both as a pair.",
        ),
        misconceptions=(
            Misconception(
                "the budget counted at 2ND (forward only)",
                "Training FLOPs are about 6 N D (forward and backward); with 2 N D the same budget seems to buy "
                "three times the product N D.",
                _chinchilla_variant(flops_per_param_token=2.0),
            ),
            Misconception(
                "the ratio inverted (N = 20 D)",
                "The compute-optimal models of Hoffmann et al. see about twenty tokens per parameter: many more "
                "tokens than parameters, not the reverse.",
                _chinchilla_variant(tokens_per_param=1 / 20),
            ),
            Misconception(
                "as many tokens as parameters",
                "Splitting the budget as N = D ignores the measured ratio: such a model is far too large for the "
                "data it sees, the situation Hoffmann et al. found in earlier large models.",
                _chinchilla_variant(tokens_per_param=1.0),
            ),
        ),
    ),
]
