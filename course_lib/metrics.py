"""Evaluation metrics for classifiers, from scratch, matching scikit-learn.

Labels are integer tensors ``(N,)`` of any integer dtype with classes ``0 .. K-1``. ``K`` is
``num_classes`` when given, otherwise ``max label + 1`` (so a class that never
occurs below the largest one still gets its row and column, unlike scikit-learn
without ``labels=``, which keeps only the labels it sees). With ``K`` classes:

* ``C = confusion_matrix(y_true, y_pred)``, (K, K): ``C[i, j]`` counts the samples of
  true class ``i`` predicted as ``j`` (rows true, columns predicted, as scikit-learn);
* per class ``k``: ``TP_k = C[k, k]``, predicted ``P_k = sum_i C[i, k]``, true (support)
  ``S_k = sum_j C[k, j]``; precision ``TP_k / P_k``, recall ``TP_k / S_k``,
  F1 ``2 TP_k / (P_k + S_k)`` (the harmonic mean of precision and recall);
* a 0/0 (a class never predicted: precision; never present: recall; both: F1) is
  replaced by ``zero_division`` (0.0 or 1.0). scikit-learn's default ``"warn"`` acts
  like 0.0 and also warns; here ``"warn"`` is accepted and acts like 0.0, silently.

Every function returns the same numbers as ``sklearn.metrics`` called with
``labels=range(K)`` (averages up to the last bit: the order of a floating-point sum).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch

from course_lib.validate import ShapeError, expect

AVERAGES = (None, "macro", "micro", "weighted")
Scores = Union[torch.Tensor, float]


# --- arguments --------------------------------------------------------------------------------
def _as_long(fn: str, name: str, y: torch.Tensor) -> torch.Tensor:
    """Integer labels as torch.long. Every integer dtype is accepted (the unsigned 16/32/64-bit
    ones support few operations, hence the conversion); a uint64 label beyond the int64 range
    is refused."""
    if y.dtype == torch.int64:
        return y
    y64 = y.to(torch.int64)
    if y.dtype == getattr(torch, "uint64", None) and bool((y64 < 0).any()):
        raise ValueError(f"{fn}: {name} holds a uint64 label above 2**63 - 1; labels should be class indices 0..K-1")
    return y64


def _labels(fn: str, y_true: torch.Tensor, y_pred: torch.Tensor) -> None:
    """Both (N,) integer tensors (any integer dtype) of the same length N >= 1 with labels >= 0."""
    dims = expect(fn, "y_true", y_true, ("N",), integer=True)
    expect(fn, "y_pred", y_pred, ("N",), dims, integer=True)
    if dims["N"] == 0:
        raise ValueError(f"{fn}: y_true and y_pred are empty; need at least one sample")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        smallest = int(_as_long(fn, name, y).min())
        if smallest < 0:
            raise ValueError(f"{fn}: {name} should hold class labels 0..K-1, got {smallest}")


def _num_classes(fn: str, y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: Optional[int]) -> int:
    """``num_classes`` checked against the labels, or ``max label + 1``."""
    _labels(fn, y_true, y_pred)
    largest = max(int(_as_long(fn, "y_true", y_true).max()), int(_as_long(fn, "y_pred", y_pred).max()))
    if num_classes is None:
        return largest + 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"{fn}: num_classes should be a positive int, got {num_classes!r}")
    if largest >= num_classes:
        raise ValueError(f"{fn}: labels should lie in 0..{num_classes - 1} (num_classes={num_classes}), got label {largest}")
    return num_classes


def _zero_division(fn: str, zero_division: Union[float, str]) -> float:
    if isinstance(zero_division, str) and zero_division == "warn":
        return 0.0
    if not isinstance(zero_division, bool) and isinstance(zero_division, (int, float)) and zero_division in (0, 1):
        return float(zero_division)
    raise ValueError(f"{fn}: zero_division should be 0.0, 1.0 or 'warn' (acts like 0.0), got {zero_division!r}")


def _divide(num: torch.Tensor, den: torch.Tensor, zero_division: float) -> torch.Tensor:
    """num / den in float64, with ``zero_division`` where den == 0."""
    num, den = num.to(torch.float64), den.to(torch.float64)
    safe = torch.where(den == 0, torch.ones_like(den), den)
    return torch.where(den == 0, torch.full_like(num, zero_division), num / safe)


# --- the metrics ------------------------------------------------------------------------------
def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: Optional[int] = None) -> torch.Tensor:
    """Counts (K, K), torch.long: entry [i, j] = number of samples with true class i
    predicted as class j. y_true, y_pred (N,) integer labels in 0..K-1."""
    k = _num_classes("confusion_matrix", y_true, y_pred, num_classes)
    pairs = y_true.long() * k + y_pred.long()  # one index per (true, predicted) pair
    return torch.bincount(pairs, minlength=k * k).reshape(k, k)


def accuracy(y_true: torch.Tensor, y_pred: torch.Tensor) -> float:
    """Fraction of samples whose predicted label equals the true one. y_true, y_pred (N,).

    (Argument order as scikit-learn's ``accuracy_score``; ``course_lib.train.accuracy``
    takes ``(scores, y)`` instead.)"""
    _labels("accuracy", y_true, y_pred)
    return int((_as_long("accuracy", "y_true", y_true) == _as_long("accuracy", "y_pred", y_pred)).sum()) / len(y_true)


def precision_recall_f1(
    y_true: torch.Tensor,
    y_pred: torch.Tensor,
    num_classes: Optional[int] = None,
    average: Optional[str] = None,
    zero_division: Union[float, str] = 0.0,
) -> Tuple[Scores, Scores, Scores]:
    """``(precision, recall, f1)`` of a K-class prediction. y_true, y_pred (N,).

    ``average=None``: per-class float64 tensors (K,). Otherwise floats:
    ``"macro"`` the plain mean over the K classes; ``"weighted"`` the mean weighted by
    each class's support S_k (its number of true samples); ``"micro"`` precision,
    recall and F1 of the summed counts (TP, P, S summed over classes), which for
    single-label data all equal the accuracy. A 0/0 takes the value ``zero_division``.
    """
    fn = "precision_recall_f1"
    if average not in AVERAGES:
        raise ValueError(f"{fn}: average should be one of {AVERAGES}, got {average!r}")
    zd = _zero_division(fn, zero_division)
    cm = confusion_matrix(y_true, y_pred, _num_classes(fn, y_true, y_pred, num_classes))
    tp = cm.diag()
    predicted = cm.sum(dim=0)  # P_k: column sums
    support = cm.sum(dim=1)  # S_k: row sums
    if average == "micro":
        tp, predicted, support = tp.sum(), predicted.sum(), support.sum()
    precision = _divide(tp, predicted, zd)
    recall = _divide(tp, support, zd)
    f1 = _divide(2 * tp, predicted + support, zd)
    if average is None:
        return precision, recall, f1
    if average == "micro":
        return float(precision), float(recall), float(f1)
    if average == "macro":
        return float(precision.mean()), float(recall.mean()), float(f1.mean())
    weights = support.to(torch.float64)
    return tuple(float((v * weights).sum() / weights.sum()) for v in (precision, recall, f1))  # type: ignore[return-value]


def classification_report(
    y_true: torch.Tensor,
    y_pred: torch.Tensor,
    class_names: Optional[Sequence[str]] = None,
    digits: int = 3,
    num_classes: Optional[int] = None,
    zero_division: Union[float, str] = 0.0,
) -> str:
    """A text table: precision, recall, F1 and support per class, then the accuracy and
    the macro and weighted averages (the layout of scikit-learn's ``classification_report``).

    ``class_names`` (one per class) label the rows and fix K = len(class_names).
    """
    fn = "classification_report"
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        if num_classes is not None and num_classes != len(class_names):
            raise ValueError(f"{fn}: num_classes={num_classes} but {len(class_names)} class_names")
        num_classes = len(class_names)
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 0:
        raise ValueError(f"{fn}: digits should be an int >= 0, got {digits!r}")
    k = _num_classes(fn, y_true, y_pred, num_classes)
    names = class_names or [str(c) for c in range(k)]
    p, r, f, support = *precision_recall_f1(y_true, y_pred, k, None, zero_division), confusion_matrix(y_true, y_pred, k).sum(dim=1)
    width = max(max(len(n) for n in names), len("weighted avg"), digits)
    row = "{:>{w}s} " + " {:>9.{d}f}" * 3 + " {:>9}\n"
    lines: List[str] = ["{:>{w}s} ".format("", w=width) + "".join(f" {h:>9}" for h in ("precision", "recall", "f1-score", "support")) + "\n\n"]
    for i, name in enumerate(names):
        lines.append(row.format(name, float(p[i]), float(r[i]), float(f[i]), int(support[i]), w=width, d=digits))
    lines.append("\n")
    n = int(support.sum())
    acc = precision_recall_f1(y_true, y_pred, k, "micro", zero_division)[2]
    lines.append(("{:>{w}s} " + " {:>9.{d}}" * 2 + " {:>9.{d}f} {:>9}\n").format("accuracy", "", "", acc, n, w=width, d=digits))
    for average in ("macro", "weighted"):
        avg = precision_recall_f1(y_true, y_pred, k, average, zero_division)
        lines.append(row.format(f"{average} avg", *avg, n, w=width, d=digits))
    return "".join(lines)


def precision_recall_curve(y_true_binary: torch.Tensor, scores: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Precision and recall of the rule "positive if score >= t" for every threshold t.

    y_true_binary (N,) 0/1 (integer or bool), scores (N,) floating. Returns
    ``(precision, recall, thresholds)``: thresholds (T,) the T distinct scores in
    increasing order; precision, recall (T + 1,) float64, entry i for thresholds[i],
    plus a last point (precision 1, recall 0) where nothing is predicted positive.
    With no positive sample recall is 1 everywhere. Equals
    ``sklearn.metrics.precision_recall_curve``.
    """
    fn = "precision_recall_curve"
    dims = expect(fn, "y_true_binary", y_true_binary, ("N",))
    expect(fn, "scores", scores, ("N",), dims, floating=True)
    if y_true_binary.is_floating_point() or y_true_binary.is_complex():
        raise ShapeError(f"{fn}: y_true_binary should be an integer or bool tensor of 0/1, got dtype {y_true_binary.dtype}")
    if dims["N"] == 0:
        raise ValueError(f"{fn}: got no samples")
    y = y_true_binary.long()
    if bool(((y != 0) & (y != 1)).any()):
        raise ValueError(f"{fn}: y_true_binary should hold only 0 and 1, got the values {torch.unique(y).tolist()}")
    if not bool(torch.isfinite(scores).all()):
        raise ValueError(f"{fn}: scores should be finite, got NaN or infinity")
    order = torch.argsort(scores, descending=True, stable=True)
    s, hits = scores[order], y[order].to(torch.float64)
    # the last position of every run of equal scores: there the threshold t = s[i] takes all of them
    last = torch.cat([torch.nonzero(s[1:] != s[:-1]).flatten(), torch.tensor([len(s) - 1])])
    tp = torch.cumsum(hits, dim=0)[last]  # true positives when predicting the first last[i] + 1 as positive
    predicted = (last + 1).to(torch.float64)  # = TP + FP
    precision = tp / predicted
    recall = tp / tp[-1] if tp[-1] > 0 else torch.ones_like(tp)
    one, zero = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    return torch.cat([precision.flip(0), one]), torch.cat([recall.flip(0), zero]), s[last].flip(0)
