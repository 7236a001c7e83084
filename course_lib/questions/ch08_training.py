"""Questions of chapter 08 · Training deep networks (sheet ``08_training``): the Kaiming
standard deviation for a ReLU layer (derived), batch norm's forward pass in training and
evaluation, debugging a running-statistics update against ``nn.BatchNorm2d``, batch norm's
backward pass (derived), predicting how far the signal falls through a deep ReLU network under
PyTorch's default, Xavier's and Kaiming's initialisation, and gradient clipping by the global
norm. Each question carries its typical mistakes (misconceptions) and three hint
tiers (the idea, the shapes, a nudge towards code)."""

from __future__ import annotations

import math
from typing import Any, List, Sequence, Tuple

import torch

from course_lib import init, norm, regularize
from course_lib.questions import Case, Misconception, Question, rand, randn

SHEET = "08_training"
F64 = torch.float64


def _uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(rand(gen))


def _int(gen: torch.Generator, lo: int, hi: int) -> int:
    """A random int in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=gen))


def _channel_view(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A (C,) tensor shaped (1, C, 1, ...) to broadcast against x (N, C, ...)."""
    return t.reshape((1, -1) + (1,) * (x.dim() - 2))


def _dims(x: torch.Tensor) -> List[int]:
    """Every dimension of x (N, C, ...) but the channel dimension 1."""
    return [0] + list(range(2, x.dim()))


# --- 08.1 the Kaiming standard deviation (derived) -------------------------------------------------
def _fans(shape: Sequence[int]) -> Tuple[int, int]:
    """(fan_in, fan_out) of a weight (out, in, *kernel), as torch.nn.init computes them."""
    receptive = math.prod(int(s) for s in shape[2:])
    return int(shape[1]) * receptive, int(shape[0]) * receptive


def kaiming_std_reference(shape: Sequence[int]) -> float:
    """The std of Kaiming/He normal initialisation (fan-in mode, ReLU) for a weight of ``shape``
    (out_features, in_features) or (C_out, C_in, k_h, k_w): sqrt(2) / sqrt(fan_in)."""
    fan_in, fan_out = _fans(shape)
    return init.init_std(fan_in, fan_out, "kaiming", "relu")


def _kaiming_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("Linear(784, 256): weight (256, 784)", ((256, 784),)),
        Case("Linear(256, 10): weight (10, 256)", ((10, 256),)),
        Case("Conv2d(3, 64, 3): weight (64, 3, 3, 3)", ((64, 3, 3, 3),)),
        Case("Conv2d(16, 32, 5): weight (32, 16, 5, 5)", ((32, 16, 5, 5),)),
        Case("Linear(1, 1): weight (1, 1)", ((1, 1),)),
        Case("Conv2d(8, 8, 1), a 1x1 convolution: weight (8, 8, 1, 1)", ((8, 8, 1, 1),)),
    ]
    if hidden:
        for i in range(8):
            fan_out, fan_in = _int(gen, 1, 600), _int(gen, 3, 600)
            if i % 2:
                k = _int(gen, 2, 7)
                cases.append(Case(f"Conv2d({fan_in}, {fan_out}, {k}): weight ({fan_out}, {fan_in}, {k}, {k})",
                                  ((fan_out, fan_in, k, k),)))
            else:
                cases.append(Case(f"Linear({fan_in}, {fan_out}): weight ({fan_out}, {fan_in})", ((fan_out, fan_in),)))
    return cases


def _kaiming_xavier(shape):
    fan_in, fan_out = _fans(shape)
    return init.init_std(fan_in, fan_out, "xavier", "linear")  # sqrt(2 / (fan_in + fan_out))


def _kaiming_fan_out(shape):
    fan_in, fan_out = _fans(shape)
    return init.init_std(fan_out, fan_in, "kaiming", "relu")


def _kaiming_no_gain(shape):
    fan_in, fan_out = _fans(shape)
    return init.init_std(fan_in, fan_out, "kaiming", "linear")  # 1 / sqrt(fan_in)


def _kaiming_variance(shape):
    return kaiming_std_reference(shape) ** 2


def _kaiming_kernel_ignored(shape):
    return init.init_std(int(shape[1]), int(shape[0]), "kaiming", "relu")


# --- 08.2 batch norm forward, training and evaluation ----------------------------------------------
def batch_norm_forward_reference(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                                 running_mean: torch.Tensor, running_var: torch.Tensor, training: bool,
                                 eps: float = 1e-5) -> torch.Tensor:
    """y = gamma * (x - mu) / sqrt(var + eps) + beta per channel; batch statistics (biased
    variance) in training, the running estimates in evaluation. x (N, C, ...) -> like x.
    The running estimates are not changed (sheet question 08.3 updates them)."""
    return norm.batch_norm(x, running_mean.clone(), running_var.clone(), gamma, beta, training, eps=eps)


def _bn_inputs(gen: torch.Generator, shape: Tuple[int, ...], spread: float = 1.0) -> Tuple[torch.Tensor, ...]:
    """x of ``shape`` with a different mean and scale per channel; gamma, beta, running_mean,
    running_var (C,) (running_var in [0.5, 2.5))."""
    C = shape[1]
    view = (1, C) + (1,) * (len(shape) - 2)
    scale = (0.5 + 2 * rand(gen, C)).reshape(view) * spread
    x = randn(gen, *shape) * scale + randn(gen, C, scale=2.0).reshape(view)
    gamma, beta = 1 + 0.5 * randn(gen, C), randn(gen, C)
    running_mean, running_var = randn(gen, C), 0.5 + 2 * rand(gen, C)
    return x, gamma, beta, running_mean, running_var


def _bn_forward_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def case(label: str, shape: Tuple[int, ...], training: bool, spread: float = 1.0, **kw: Any) -> Case:
        return Case(label, (*_bn_inputs(gen, shape, spread), training), kw)

    cases = [
        case("training, x (8, 3)", (8, 3), True),
        case("evaluation, x (8, 3): the running estimates normalise", (8, 3), False),
        case("training, images x (4, 2, 3, 3): statistics over N, H and W", (4, 2, 3, 3), True),
        case("evaluation, images x (2, 3, 2, 2)", (2, 3, 2, 2), False),
        case("training, a batch of 2, x (2, 4)", (2, 4), True),
        case("training, one image x (1, 2, 3, 3): statistics over its pixels", (1, 2, 3, 3), True),
        case("training, channels with a tiny spread (std ~ 1e-3: where does eps go?)", (6, 2), True, spread=1e-3),
        case("evaluation, eps=0.5", (5, 3), False, eps=0.5),
    ]
    if hidden:
        for i in range(8):
            rank = (2, 4)[i % 2]  # (N, C) or (N, C, H, W)
            shape = (_int(gen, 2, 9), _int(gen, 1, 5)) + tuple(_int(gen, 1, 4) for _ in range(rank - 2))
            training = i % 4 != 3
            eps = [1e-5, 1e-3, 0.1, 1e-5][i % 4]
            cases.append(case(f"{'training' if training else 'evaluation'}, x {shape}, eps={eps:g}", shape, training,
                              spread=[1.0, 0.01, 3.0][i % 3], eps=eps))
    return cases


def _bn_eval_batch_stats(x, gamma, beta, running_mean, running_var, training, eps=1e-5):
    return batch_norm_forward_reference(x, gamma, beta, running_mean, running_var, True, eps)


def _bn_unbiased(x, gamma, beta, running_mean, running_var, training, eps=1e-5):
    if not training:
        return batch_norm_forward_reference(x, gamma, beta, running_mean, running_var, False, eps)
    dims = _dims(x)
    mean, var = x.mean(dim=dims), x.var(dim=dims)  # divides by m - 1
    xhat = (x - _channel_view(mean, x)) / torch.sqrt(_channel_view(var, x) + eps)
    return _channel_view(gamma, x) * xhat + _channel_view(beta, x)


def _bn_eps_outside(x, gamma, beta, running_mean, running_var, training, eps=1e-5):
    dims = _dims(x)
    if training:
        mean, var = x.mean(dim=dims), x.var(dim=dims, correction=0)
    else:
        mean, var = running_mean, running_var
    xhat = (x - _channel_view(mean, x)) / (torch.sqrt(_channel_view(var, x)) + eps)
    return _channel_view(gamma, x) * xhat + _channel_view(beta, x)


def _bn_per_position(x, gamma, beta, running_mean, running_var, training, eps=1e-5):
    if not training:
        return batch_norm_forward_reference(x, gamma, beta, running_mean, running_var, False, eps)
    mean, var = x.mean(dim=0, keepdim=True), x.var(dim=0, correction=0, keepdim=True)
    return _channel_view(gamma, x) * (x - mean) / torch.sqrt(var + eps) + _channel_view(beta, x)


# --- 08.3 debug the running-statistics update ------------------------------------------------------
def update_running_stats_reference(x: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor,
                                   momentum: float = 0.1) -> Tuple[torch.Tensor, torch.Tensor]:
    """The running estimates after one training step of nn.BatchNorm on x (N, C, ...):
    new = (1 - momentum) * old + momentum * batch statistic, with the unbiased batch variance.
    running_mean, running_var (C,) are not modified; returns new (C,) tensors."""
    new_mean, new_var = running_mean.clone(), running_var.clone()
    norm.batch_norm(x, new_mean, new_var, None, None, True, momentum=momentum)
    return new_mean, new_var


def update_running_stats_listing(x, running_mean, running_var, momentum=0.1):
    """The buggy running-statistics update of sheet 08 (question 08.3), as printed there."""
    dims = [0] + list(range(2, x.dim()))  # every dim but the channels
    mean = x.mean(dim=dims)  # (C,)
    shape = [1, -1] + [1] * (x.dim() - 2)  # to broadcast a (C,) tensor against x
    var = ((x - mean.reshape(shape)) ** 2).mean(dim=dims)  # the variance that normalises the batch
    new_mean = momentum * running_mean + (1 - momentum) * mean
    new_var = momentum * running_var + (1 - momentum) * var
    return new_mean, new_var


def _running_biased(x, running_mean, running_var, momentum=0.1):
    dims = _dims(x)
    mean, var = x.mean(dim=dims), x.var(dim=dims, correction=0)
    return (1 - momentum) * running_mean + momentum * mean, (1 - momentum) * running_var + momentum * var


def _running_reversed(x, running_mean, running_var, momentum=0.1):
    dims = _dims(x)
    mean, var = x.mean(dim=dims), x.var(dim=dims)
    return momentum * running_mean + (1 - momentum) * mean, momentum * running_var + (1 - momentum) * var


def _running_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def case(label: str, shape: Tuple[int, ...], momentum: float) -> Case:
        x, _, _, running_mean, running_var = _bn_inputs(gen, shape)
        return Case(label, (x, running_mean, running_var, momentum))

    cases = [
        case("x (8, 3), momentum=0.1", (8, 3), 0.1),
        case("images x (4, 2, 3, 3), momentum=0.1", (4, 2, 3, 3), 0.1),
        case("a batch of 2, x (2, 3), momentum=0.3", (2, 3), 0.3),
        case("momentum=1: the estimate becomes the batch's", (6, 2), 1.0),
        case("momentum=0: the estimate stays", (5, 2), 0.0),
        case("one image x (1, 3, 2, 2), momentum=0.2", (1, 3, 2, 2), 0.2),
    ]
    if hidden:
        for i in range(8):
            rank = (2, 4)[i % 2]  # (N, C) or (N, C, H, W)
            shape = (_int(gen, 2, 12), _int(gen, 1, 5)) + tuple(_int(gen, 1, 4) for _ in range(rank - 2))
            momentum = [0.1, 0.01, 0.7, 0.25][i % 4]
            cases.append(case(f"x {shape}, momentum={momentum}", shape, momentum))
    return cases


# --- 08.4 batch norm backward (derived) ------------------------------------------------------------
def batch_norm_backward_reference(dy: torch.Tensor, x: torch.Tensor, gamma: torch.Tensor,
                                  eps: float = 1e-5) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dx (N, C), dgamma (C,), dbeta (C,)) of training-mode batch norm for x, dy (N, C)."""
    return norm.batch_norm_backward(dy, x, gamma, eps)


def _bn_parts(x: torch.Tensor, eps: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """(xhat (N, C), 1 / sqrt(var + eps) (C,)) with the biased batch variance; x (N, C)."""
    mean, var = x.mean(dim=0), x.var(dim=0, correction=0)
    s = 1 / torch.sqrt(var + eps)
    return (x - mean) * s, s


def _bn_back_constants(dy, x, gamma, eps=1e-5):
    xhat, s = _bn_parts(x, eps)
    return dy * gamma * s, (dy * xhat).sum(0), dy.sum(0)


def _bn_back_var_constant(dy, x, gamma, eps=1e-5):
    xhat, s = _bn_parts(x, eps)
    return gamma * s * (dy - dy.mean(0)), (dy * xhat).sum(0), dy.sum(0)


def _bn_back_dgamma_without_xhat(dy, x, gamma, eps=1e-5):
    dx, _, dbeta = batch_norm_backward_reference(dy, x, gamma, eps)
    return dx, dy.sum(0), dbeta


def _bn_back_no_gamma(dy, x, gamma, eps=1e-5):
    dx, dgamma, dbeta = batch_norm_backward_reference(dy, x, torch.ones_like(gamma), eps)
    return dx, dgamma, dbeta


def _bn_backward_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def case(label: str, shape: Tuple[int, int], dy: Any = None, gamma: Any = None, **kw: Any) -> Case:
        x, g, _, _, _ = _bn_inputs(gen, shape)
        dy = randn(gen, *shape) if dy is None else dy
        return Case(label, (dy, x, g if gamma is None else gamma), kw)

    cases = [
        case("x, dy (8, 3)", (8, 3)),
        case("a batch of 2, one channel: x, dy (2, 1)", (2, 1)),
        case("dy the same for every sample (shifting x changes nothing)", (5, 3), dy=randn(gen, 1, 3).expand(5, 3).clone()),
        case("gamma with a zero and a negative entry", (6, 3), gamma=torch.tensor([0.0, -1.5, 2.0], dtype=F64)),
        case("gamma = 1 (no scaling)", (4, 2), gamma=torch.ones(2, dtype=F64)),
        case("large eps=0.1, x, dy (7, 2)", (7, 2), eps=0.1),
    ]
    if hidden:
        for i in range(8):
            shape = (_int(gen, 2, 20), _int(gen, 1, 6))
            cases.append(case(f"x, dy {shape}, eps={[1e-5, 1e-3][i % 2]:g}", shape, eps=[1e-5, 1e-3][i % 2]))
    return cases


# --- 08.5 predict how far the signal falls (predict) -----------------------------------------------
#: the weights' initialisation in 08.5 -> (course_lib.init scheme, whose gain)
STD_RATIO_SCHEMES = {"pytorch": ("pytorch", "relu"), "xavier": ("xavier", "linear"), "kaiming": ("kaiming", "relu")}


def std_ratio_reference(depth: int, width: int, scheme: str) -> float:
    """The predicted std(z_depth) / std(z_1) of a bias-free MLP of ``depth`` layers ``width -> width``,
    z_l = W_l relu(z_{l-1}), z_1 = W_1 x, with the weights' ``scheme``: ``"pytorch"`` (nn.Linear's
    U(-1/sqrt(n), 1/sqrt(n))), ``"xavier"`` (gain 1: N(0, 2 / (n_in + n_out))) or ``"kaiming"``
    (N(0, 2 / n_in)). Each of the depth - 1 steps multiplies the variance by
    width * Var(w) * 1/2 (a ReLU keeps half the second moment of a symmetric input)."""
    name, gain_of = STD_RATIO_SCHEMES[scheme]
    per_step_variance = width * init.init_std(width, width, name, gain_of) ** 2 / 2
    return math.sqrt(per_step_variance) ** (depth - 1)


def _std_ratio_variant(per_step: dict, power: float = 1.0, extra_step: int = 0):
    """A wrong prediction: ``per_step[scheme] ** ((depth - 1 + extra_step) * power)``."""
    def std_ratio(depth, width, scheme):
        return per_step[scheme] ** ((depth - 1 + extra_step) * power)

    return std_ratio


_PER_STEP = {"pytorch": 1 / math.sqrt(6), "xavier": 1 / math.sqrt(2), "kaiming": 1.0}
_std_ratio_bound = _std_ratio_variant({"pytorch": 1 / math.sqrt(2), "xavier": 1 / math.sqrt(2), "kaiming": 1.0})
_std_ratio_no_relu = _std_ratio_variant({"pytorch": 1 / math.sqrt(3), "xavier": 1.0, "kaiming": math.sqrt(2)})
_std_ratio_variance = _std_ratio_variant(_PER_STEP, power=2.0)
_std_ratio_extra_step = _std_ratio_variant(_PER_STEP, extra_step=1)


def _std_ratio_call(func: Any, case: Case) -> float:
    """The student's prediction as a float (an int 1 counts like 1.0)."""
    return float(func(*case.args, **case.kwargs))


def _std_ratio_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("PyTorch's default, 2 layers of width 64", (2, 64, "pytorch")),
        Case("PyTorch's default, 10 layers of width 64 (the lecture's deep network, without biases)", (10, 64, "pytorch")),
        Case("PyTorch's default, 20 layers of width 512", (20, 512, "pytorch")),
        Case("Xavier with gain 1, 10 layers of width 128", (10, 128, "xavier")),
        Case("Kaiming, 20 layers of width 128", (20, 128, "kaiming")),
        Case("PyTorch's default, a single layer", (1, 32, "pytorch")),
    ]
    if hidden:
        for i in range(8):
            depth, width = _int(gen, 2, 30), _int(gen, 1, 1000)
            scheme = list(STD_RATIO_SCHEMES)[i % 3]
            cases.append(Case(f"{scheme}, {depth} layers of width {width}", (depth, width, scheme)))
    return cases


# --- 08.6 gradient clipping by the global norm -----------------------------------------------------
def clip_grad_norm_reference(grads: List[torch.Tensor], max_norm: float) -> Tuple[List[torch.Tensor], float]:
    """Clipped copies of ``grads`` (one factor for all, torch.nn.utils.clip_grad_norm_'s) and
    the global 2-norm before clipping."""
    return regularize.clip_grad_norm(grads, max_norm)


def _global_norm(grads: List[torch.Tensor]) -> float:
    return math.sqrt(sum(float((g * g).sum()) for g in grads))


def _clip_per_tensor(grads, max_norm):
    out = [g * min(1.0, max_norm / (float(torch.linalg.vector_norm(g)) + 1e-6)) for g in grads]
    return out, _global_norm(grads)


def _clip_scale_up(grads, max_norm):
    total = _global_norm(grads)
    return [g * (max_norm / (total + 1e-6)) for g in grads], total


def _clip_sum_of_norms(grads, max_norm):
    total = sum(float(torch.linalg.vector_norm(g)) for g in grads)
    return [g * min(1.0, max_norm / (total + 1e-6)) for g in grads], total


def _clip_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def scaled(*shape: int, norm_: float) -> torch.Tensor:
        g = randn(gen, *shape)
        return g * (norm_ / float(torch.linalg.vector_norm(g)))

    t = torch.tensor
    cases = [
        Case("two tensors, global norm 5 > max_norm=1", ([scaled(3, 2, norm_=3.0), scaled(4, norm_=4.0)], 1.0)),
        Case("global norm 0.5 < max_norm=1: nothing changes", ([scaled(2, 2, norm_=0.3), scaled(3, norm_=0.4)], 1.0)),
        Case("one tensor (5,), norm 6, max_norm=2", ([scaled(5, norm_=6.0)], 2.0)),
        Case("each tensor's norm 0.8 < max_norm=1, the global norm 1.13 > 1",
             ([scaled(4, 3, norm_=0.8), scaled(2, norm_=0.8)], 1.0)),
        Case("three tensors, one 0-d, max_norm=0.5", ([randn(gen, 2, 3), t(2.0, dtype=F64), randn(gen, 1)], 0.5)),
        Case("every gradient zero", ([torch.zeros(3, dtype=F64), torch.zeros(2, 2, dtype=F64)], 1.0)),
    ]
    if hidden:
        for i in range(8):
            k = _int(gen, 1, 4)
            grads = [randn(gen, *(_int(gen, 1, 5) for _ in range(_int(gen, 1, 3))), scale=_uniform(gen, 0.05, 3.0))
                     for _ in range(k)]
            total = _global_norm(grads)
            max_norm = round(total * (_uniform(gen, 0.1, 0.9) if i % 2 else _uniform(gen, 1.1, 3.0)), 3)
            cases.append(Case(f"{k} tensor(s), max_norm={max_norm} ({'below' if i % 2 else 'above'} the global norm)",
                              (grads, max_norm)))
    return cases


QUESTIONS = [
    Question(
        id="08.1", sheet=SHEET, title="Derive the Kaiming std for a ReLU layer", func_name="kaiming_std", points=1,
        reference=kaiming_std_reference, make_cases=_kaiming_cases, kind="derive",
        hints=(
            "Write the variance of one output of the layer as a sum of fan_in independent products w * x, then use "
            "that a ReLU of a zero-mean symmetric input keeps half of its second moment. Ask for the variance of the "
            "pre-activations to stay the same from layer to layer and solve for the weights' variance.",
            "A weight (out_features, in_features) or (C_out, C_in, k_h, k_w): one output sums over the input "
            "features, or over the input channels AND the kernel's positions; the first dimension counts outputs, "
            "not inputs. The answer is one Python float, a standard deviation.",
            "Var(w x) = Var(w) E[x^2] for independent zero-mean w; E[relu(z)^2] = Var(z) / 2. Equate "
            "fan_in * Var(w) * Var(z) / 2 with Var(z), then take the square root of the Var(w) you found.",
        ),
        misconceptions=(
            Misconception(
                "Xavier's formula",
                "Glorot and Bengio's std averages fan_in and fan_out for a layer without ReLU; it has no factor for "
                "the half of the inputs a ReLU sets to zero, so it is too small for a ReLU network.",
                _kaiming_xavier,
            ),
            Misconception(
                "fan_out instead of fan_in",
                "Each output sums fan_in products, so fan_in sets the forward variance; fan_out (the first "
                "dimension of the weight) counts the outputs and is the backward pass's choice.",
                _kaiming_fan_out,
            ),
            Misconception(
                "the gain of 2 left out",
                "1 / fan_in keeps the variance of a linear layer; after a ReLU only half of the second moment "
                "survives, and the weights' variance must double to make up for it.",
                _kaiming_no_gain,
            ),
            Misconception(
                "the variance returned instead of the std",
                "The derivation gives the weights' variance; initialisers (torch.randn(...) * std, "
                "torch.nn.init.normal_(w, std=...)) take the standard deviation, its square root.",
                _kaiming_variance,
            ),
            Misconception(
                "the kernel's size ignored",
                "A convolution's output sums over every input channel at every kernel position, so its fan_in is "
                "C_in times the kernel's area, not C_in alone.",
                _kaiming_kernel_ignored,
            ),
        ),
    ),
    Question(
        id="08.2", sheet=SHEET, title="Batch norm forward, training and evaluation", func_name="batch_norm_forward",
        points=2, reference=batch_norm_forward_reference, make_cases=_bn_forward_cases, kind="implement",
        hints=(
            "Per channel: subtract a mean, divide by a standard deviation, then scale by gamma and shift by beta. "
            "In training both statistics come from the batch; in evaluation they are the stored running estimates.",
            "x is (N, C) or (N, C, H, W); every statistic is (C,): reduce over every dimension except dim 1, then "
            "reshape the (C,) tensors to (1, C) or (1, C, 1, 1) so that they broadcast against x.",
            "x.mean(dim=...) and x.var(dim=..., correction=...) accept a list of dims; the variance that normalises "
            "divides by the number of values per channel, and eps is added before the square root is taken.",
        ),
        misconceptions=(
            Misconception(
                "evaluation with batch statistics",
                "In evaluation the output must not depend on the other samples in the batch (a single test image "
                "has no batch statistics); the running estimates gathered in training take their place.",
                _bn_eval_batch_stats,
            ),
            Misconception(
                "the unbiased variance normalises",
                "Training normalises with the batch's own variance, the mean squared deviation over the m values "
                "per channel (divided by m, so the normalised batch has mean 0 and variance almost exactly 1); the "
                "unbiased estimate, divided by m - 1, belongs to the running statistics only.",
                _bn_unbiased,
            ),
            Misconception(
                "eps outside the square root",
                "eps belongs to the variance, under the square root, where it keeps the divisor above sqrt(eps) for "
                "a channel without spread; added to the standard deviation it plays a different role, and the two "
                "outputs differ most where a channel's spread is small.",
                _bn_eps_outside,
            ),
            Misconception(
                "statistics per position, over the batch only",
                "For images batch norm shares one mean and one variance per channel across all pixels (N H W "
                "values), like a convolution shares its weights; reducing over N alone normalises every pixel "
                "separately.",
                _bn_per_position,
            ),
        ),
    ),
    Question(
        id="08.3", sheet=SHEET, title="Debug the running-statistics update", func_name="update_running_stats", points=1,
        reference=update_running_stats_reference, make_cases=_running_cases, kind="debug",
        hints=(
            "Compare with nn.BatchNorm2d at momentum = 1 first: there the running estimates become the batch's "
            "own statistics, so only the statistics themselves can be wrong. Then compare at momentum = 0.1.",
            "With m = N * H * W values per channel, the ratio of the module's running variance to the listing's "
            "batch variance is a simple function of m; and which of the two, old estimate or batch statistic, "
            "gets the weight momentum in PyTorch?",
            "Read the note on momentum in the documentation of nn.BatchNorm1d: it is not the optimiser's momentum. "
            "The running variance uses Bessel's correction (divide by m - 1).",
        ),
        misconceptions=(
            Misconception(
                "the listing unchanged",
                "The listing weights the old estimate by momentum and stores the biased variance; PyTorch gives the "
                "new batch statistic the weight momentum and stores the unbiased variance.",
                update_running_stats_listing,
            ),
            Misconception(
                "biased variance in the running estimate",
                "The running variance estimates the variance of the whole data set from many batches, so PyTorch "
                "stores the unbiased batch variance (divided by m - 1), even though the batch is normalised with the "
                "biased one.",
                _running_biased,
            ),
            Misconception(
                "momentum weighting reversed",
                "In batch norm momentum is the weight of the NEW observation: momentum=0.1 moves the estimate a "
                "tenth of the way towards the batch statistic; an optimiser's momentum weights the old value.",
                _running_reversed,
            ),
        ),
    ),
    Question(
        id="08.4", sheet=SHEET, title="Derive batch norm's backward pass", func_name="batch_norm_backward", points=2,
        reference=batch_norm_backward_reference, make_cases=_bn_backward_cases, kind="derive",
        hints=(
            "Every x contributes to y three ways: directly, through the batch mean and through the batch variance. "
            "The chain rule sums the three paths; gamma and beta receive their gradients from y = gamma xhat + beta.",
            "dy and x are (N, C), gamma is (C,); dx is (N, C), dgamma and dbeta are (C,): sums over the batch "
            "dimension. The intermediate gradients with respect to the mean and the variance are (C,) too.",
            "First d/dxhat = dy * gamma; then d/dvar sums it times (x - mu) times the derivative of (var + eps) ** -0.5; "
            "d/dmu collects the direct path and the one through var; check the result against autograd on a small x.",
        ),
        misconceptions=(
            Misconception(
                "mean and variance treated as constants",
                "In training the mean and the variance are computed from the same batch, so moving one x moves them "
                "too; their paths remove from dx the parts of dy that a shift or a scaling of the batch would explain.",
                _bn_back_constants,
            ),
            Misconception(
                "the variance treated as a constant",
                "The mean's path is there but the variance's is missing: the batch variance depends on every x as "
                "well, and its path removes the part of dy along the normalised input.",
                _bn_back_var_constant,
            ),
            Misconception(
                "dgamma without the normalised input",
                "gamma multiplies the normalised input, so its gradient weights each dy by that input; summing dy "
                "alone is beta's gradient.",
                _bn_back_dgamma_without_xhat,
            ),
            Misconception(
                "gamma left out of dx",
                "y = gamma * xhat + beta: every path from y back to x passes through the factor gamma, so dx "
                "scales with gamma (a channel with gamma = 0 passes no gradient back).",
                _bn_back_no_gamma,
            ),
        ),
    ),
    Question(
        id="08.5", sheet=SHEET, title="Predict how far the signal falls through depth", func_name="std_ratio",
        points=1, reference=std_ratio_reference, make_cases=_std_ratio_cases, call=_std_ratio_call, kind="predict",
        atol=0.0, rtol=1e-9,
        hints=(
            "Follow the variance of one pre-activation from one layer to the next: it is a sum of width products "
            "w * h, and a ReLU keeps only part of the second moment of a symmetric input. Each step multiplies the "
            "variance by the same factor, so the answer is a power of one number.",
            "A network of depth layers has depth pre-activations z_1, ..., z_depth, so from the first to the last "
            "there are depth - 1 steps. The width enters a step twice, in the number of terms and in the weights' "
            "variance; see whether it survives.",
            "A uniform distribution on [-b, b] has variance b ** 2 / 3. One step multiplies the variance by width "
            "times Var(w) times what the ReLU keeps; the question asks for a ratio of standard deviations.",
        ),
        misconceptions=(
            Misconception(
                "the uniform bound taken for the std",
                "nn.Linear draws from U(-1/sqrt(n), 1/sqrt(n)): 1/sqrt(n) is the bound of the interval, and the "
                "standard deviation of a uniform distribution is its bound divided by sqrt(3).",
                _std_ratio_bound,
            ),
            Misconception(
                "the ReLU keeps the whole variance",
                "A ReLU sets the negative half of a symmetric input to zero, so the next layer sees only half of "
                "the second moment; every step loses that factor of 2 in variance.",
                _std_ratio_no_relu,
            ),
            Misconception(
                "a ratio of variances, not of stds",
                "The variance argument gives the factor by which each step multiplies the VARIANCE; the question "
                "asks for standard deviations, whose factor is its square root.",
                _std_ratio_variance,
            ),
            Misconception(
                "one step too many",
                "z_1 is the first pre-activation and z_depth the last: between them lie depth - 1 layer-to-layer "
                "steps, not depth (a single layer has ratio 1).",
                _std_ratio_extra_step,
            ),
        ),
    ),
    Question(
        id="08.6", sheet=SHEET, title="Gradient clipping by the global norm", func_name="clip_grad_norm", points=1,
        reference=clip_grad_norm_reference, make_cases=_clip_cases, kind="implement",
        hints=(
            "Treat all the gradients as one long vector: measure its length once, and if it is longer than "
            "max_norm shrink every tensor by the same factor, so the direction of the step is kept.",
            "grads is a list of tensors of different shapes (a 0-d one too); the norm is one number over all of "
            "their entries. Return a list of new tensors with the same shapes and the norm before clipping.",
            "Sum the squares of every entry of every tensor, take one square root, then cap the factor at 1: a "
            "gradient that is already short enough is never made longer.",
        ),
        misconceptions=(
            Misconception(
                "per-tensor norms instead of one global norm",
                "Clipping each tensor by its own norm changes the direction of the update (a layer with a small "
                "gradient keeps it while a large one shrinks) and lets the whole step exceed max_norm.",
                _clip_per_tensor,
            ),
            Misconception(
                "scaling up when below max_norm",
                "Clipping only ever shrinks: the factor is capped at 1, so a gradient shorter than max_norm passes "
                "unchanged instead of being stretched to length max_norm.",
                _clip_scale_up,
            ),
            Misconception(
                "tensor norms added",
                "The global norm is the length of all entries together: the square root of the sum of the squared "
                "tensor norms (Pythagoras), not their sum, which is longer whenever there are two or more tensors.",
                _clip_sum_of_norms,
            ),
        ),
    ),
]
