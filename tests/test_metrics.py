"""course_lib.metrics against sklearn.metrics: random labels (classes missing from y_true,
from y_pred or from both), every average, both zero_division values; clear errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import sklearn.metrics as skm
import torch
from hypothesis import given
from hypothesis import strategies as st

from course_lib import metrics
from course_lib.validate import ShapeError

SEEDS = st.integers(0, 2**31 - 1)


@st.composite
def labelled(draw):
    """(y_true, y_pred, K): N in 1..60 labels in 0..K-1 where some classes are often missing."""
    k = draw(st.integers(1, 7))
    n = draw(st.integers(1, 60))
    gen = torch.Generator().manual_seed(draw(SEEDS))
    # draw each label from a few allowed classes so that classes go missing
    allowed_true = torch.randperm(k, generator=gen)[: draw(st.integers(1, k))]
    allowed_pred = torch.randperm(k, generator=gen)[: draw(st.integers(1, k))]
    y_true = allowed_true[torch.randint(len(allowed_true), (n,), generator=gen)]
    y_pred = allowed_pred[torch.randint(len(allowed_pred), (n,), generator=gen)]
    agree = torch.rand(n, generator=gen) < draw(st.sampled_from([0.0, 0.5, 0.9]))
    y_pred = torch.where(agree, y_true, y_pred)  # make some predictions right
    return y_true, y_pred, k


def sk(fn, y_true, y_pred, k, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(y_true.numpy(), y_pred.numpy(), labels=list(range(k)), **kw)


def same_float(ours: float, ref: float) -> None:
    """Equal up to the order of a floating-point sum (a few units in the last place)."""
    assert isinstance(ours, float)
    assert math.isclose(ours, float(ref), rel_tol=4e-16, abs_tol=4e-16), (ours, float(ref))


@given(labelled())
def test_confusion_matrix_and_accuracy_equal_sklearn(case):
    y_true, y_pred, k = case
    cm = metrics.confusion_matrix(y_true, y_pred, num_classes=k)
    assert cm.dtype == torch.long and cm.shape == (k, k)
    assert np.array_equal(cm.numpy(), sk(skm.confusion_matrix, y_true, y_pred, k))
    assert cm.sum() == len(y_true)
    assert metrics.accuracy(y_true, y_pred) == skm.accuracy_score(y_true.numpy(), y_pred.numpy())
    # without num_classes, K is the largest label + 1
    inferred = metrics.confusion_matrix(y_true, y_pred)
    assert inferred.shape[0] == max(int(y_true.max()), int(y_pred.max())) + 1
    assert torch.equal(inferred, cm[: inferred.shape[0], : inferred.shape[0]])


@given(labelled(), st.sampled_from([0.0, 1.0]))
def test_per_class_precision_recall_f1_equal_sklearn_exactly(case, zero_division):
    y_true, y_pred, k = case
    p, r, f = metrics.precision_recall_f1(y_true, y_pred, k, zero_division=zero_division)
    ref = sk(skm.precision_recall_fscore_support, y_true, y_pred, k, zero_division=zero_division)
    for ours, theirs in zip((p, r, f), ref[:3]):
        assert ours.dtype == torch.float64 and ours.shape == (k,)
        assert np.array_equal(ours.numpy(), theirs), (ours, theirs)


@given(labelled(), st.sampled_from(["macro", "micro", "weighted"]), st.sampled_from([0.0, 1.0]))
def test_averages_equal_sklearn(case, average, zero_division):
    y_true, y_pred, k = case
    ours = metrics.precision_recall_f1(y_true, y_pred, k, average=average, zero_division=zero_division)
    ref = sk(skm.precision_recall_fscore_support, y_true, y_pred, k, average=average, zero_division=zero_division)
    for a, b in zip(ours, ref[:3]):
        same_float(a, b)
    if average == "micro":  # single-label data: micro P = R = F1 = accuracy, exactly
        assert ours[0] == ours[1] == ours[2] == metrics.accuracy(y_true, y_pred)


def test_zero_division_cases_by_hand():
    # class 0: predicted but never true; class 1: right; class 2: true but never predicted; class 3: absent
    y_true = torch.tensor([1, 1, 2, 2])
    y_pred = torch.tensor([0, 1, 1, 1])
    for zd in (0.0, 1.0):
        p, r, f = metrics.precision_recall_f1(y_true, y_pred, 4, zero_division=zd)
        assert p.tolist() == [0.0, 1 / 3, zd, zd]  # precision 0/0 for classes 2 and 3
        assert r.tolist() == [zd, 0.5, 0.0, zd]  # recall 0/0 for classes 0 and 3
        assert f.tolist() == [0.0, 0.4, 0.0, zd]  # F1 is 0/0 only when the class is neither true nor predicted
    assert metrics.precision_recall_f1(y_true, y_pred, 4, zero_division="warn")[0].tolist() == [0.0, 1 / 3, 0.0, 0.0]


@given(labelled(), st.sampled_from([0.0, 1.0]), st.integers(1, 4))
def test_classification_report_is_sklearns_text(case, zero_division, digits):
    y_true, y_pred, k = case
    names = [f"digit {c}" for c in range(k)] if k % 2 else None
    ours = metrics.classification_report(y_true, y_pred, class_names=names, digits=digits, num_classes=k,
                                         zero_division=zero_division)
    ref = sk(skm.classification_report, y_true, y_pred, k, target_names=names, digits=digits, zero_division=zero_division)
    if bool((y_true == y_pred).any()):
        assert ours == ref
    else:  # no correct prediction: sklearn (1.9) then prints its supports as floats, "1.0"
        ours_lines, ref_lines = ours.splitlines(), ref.splitlines()
        assert len(ours_lines) == len(ref_lines)
        for a, b in zip(ours_lines[1:], ref_lines[1:]):  # after the header: same numbers, support as int
            assert a.split()[:-1] == b.split()[:-1]
            assert a.split()[-1:] == [str(int(float(v))) for v in b.split()[-1:]]


def test_classification_report_reads_well():
    y_true = torch.tensor([0, 0, 1, 1, 2, 2])
    y_pred = torch.tensor([0, 1, 1, 1, 2, 0])
    text = metrics.classification_report(y_true, y_pred, class_names=["zero", "one", "two"])
    lines = text.splitlines()
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    assert lines[2].split() == ["zero", "0.500", "0.500", "0.500", "2"]
    assert lines[-3].split() == ["accuracy", "0.667", "6"]
    assert lines[-2].split()[:2] == ["macro", "avg"] and lines[-1].split()[:2] == ["weighted", "avg"]


@st.composite
def scored(draw):
    n = draw(st.integers(1, 50))
    gen = torch.Generator().manual_seed(draw(SEEDS))
    y = (torch.rand(n, generator=gen) < draw(st.sampled_from([0.0, 0.3, 0.7, 1.0]))).long()
    levels = draw(st.sampled_from([3, 10, 1000]))  # few levels: many tied scores
    scores = torch.randint(levels, (n,), generator=gen).to(torch.float64) / levels + 0.2 * y * draw(st.sampled_from([0.0, 1.0]))
    if draw(st.booleans()):
        scores = scores.float()
    return y, scores


@given(scored())
def test_precision_recall_curve_equals_sklearn(case):
    y, scores = case
    p, r, t = metrics.precision_recall_curve(y, scores)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no positive class found": recall 1 everywhere
        ref = skm.precision_recall_curve(y.numpy(), scores.numpy())
    assert p.dtype == r.dtype == torch.float64 and t.dtype == scores.dtype
    for ours, theirs in zip((p, r, t), ref):
        assert ours.shape == theirs.shape and np.array_equal(ours.numpy(), theirs), (ours, theirs)
    assert torch.equal(metrics.precision_recall_curve(y.bool(), scores)[0], p)


def test_precision_recall_curve_by_hand():
    y = torch.tensor([0, 1, 1, 0, 1])
    scores = torch.tensor([0.1, 0.9, 0.4, 0.4, 0.8])
    p, r, t = metrics.precision_recall_curve(y, scores)
    assert t.tolist() == pytest.approx([0.1, 0.4, 0.8, 0.9])
    assert p.tolist() == pytest.approx([3 / 5, 3 / 4, 1.0, 1.0, 1.0])
    assert r.tolist() == pytest.approx([1.0, 1.0, 2 / 3, 1 / 3, 0.0])


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: metrics.confusion_matrix(torch.tensor([0, 1, 2]), torch.tensor([0, 1])), ShapeError, "y_pred should have shape (N,)"),
        (lambda: metrics.accuracy(torch.tensor([0.0, 1.0]), torch.tensor([0, 1])), ShapeError, "y_true should be an integer tensor"),
        (lambda: metrics.precision_recall_f1(torch.tensor([0, 1]), torch.tensor([0.5, 1.0])), ShapeError, "y_pred should be an integer tensor"),
        (lambda: metrics.confusion_matrix(torch.tensor([0, 3]), torch.tensor([0, 1]), num_classes=3), ValueError, "labels should lie in 0..2 (num_classes=3), got label 3"),
        (lambda: metrics.confusion_matrix(torch.tensor([[0, 1]]), torch.tensor([[0, 1]])), ShapeError, "should have 1 dimension(s) (N,), got 2: shape (1, 2)"),
        (lambda: metrics.confusion_matrix(torch.tensor([0, -1]), torch.tensor([0, 1])), ValueError, "class labels 0..K-1, got -1"),
        (lambda: metrics.accuracy(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long)), ValueError, "need at least one sample"),
        (lambda: metrics.precision_recall_f1(torch.tensor([0]), torch.tensor([0]), average="binary"), ValueError, "average should be one of"),
        (lambda: metrics.precision_recall_f1(torch.tensor([0]), torch.tensor([0]), zero_division=float("nan")), ValueError, "zero_division should be 0.0, 1.0"),
        (lambda: metrics.precision_recall_f1(torch.tensor([0]), torch.tensor([0]), num_classes=0), ValueError, "num_classes should be a positive int"),
        (lambda: metrics.classification_report(torch.tensor([0, 2]), torch.tensor([0, 1]), class_names=["a", "b"]), ValueError, "labels should lie in 0..1"),
        (lambda: metrics.precision_recall_curve(torch.tensor([0, 2]), torch.tensor([0.1, 0.2])), ValueError, "only 0 and 1"),
        (lambda: metrics.precision_recall_curve(torch.tensor([0.0, 1.0]), torch.tensor([0.1, 0.2])), ShapeError, "integer or bool"),
        (lambda: metrics.precision_recall_curve(torch.tensor([0, 1]), torch.tensor([1, 2])), ShapeError, "scores should be a floating-point"),
        (lambda: metrics.precision_recall_curve(torch.tensor([0, 1, 1]), torch.tensor([0.1, 0.2])), ShapeError, "scores should have shape (N,)"),
        (lambda: metrics.precision_recall_curve(torch.tensor([0, 1]), torch.tensor([0.1, float("nan")])), ValueError, "finite"),
    ],
)
def test_bad_input_gets_a_clear_error(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value)
    assert str(info.value).split(":")[0] in {"confusion_matrix", "accuracy", "precision_recall_f1", "classification_report", "precision_recall_curve"}


# --- the chapter's explorer and figures (course_lib.widgets.metrics) ------------------------------
def _toy_scores():
    """Probabilities (60, 3) of a noisy classifier and labels (60,): some mistakes, some ties-free scores."""
    gen = torch.Generator().manual_seed(3)
    y = torch.arange(60) % 3
    logits = torch.randn(60, 3, generator=gen, dtype=torch.float64) + 1.5 * torch.nn.functional.one_hot(y, 3)
    return torch.softmax(logits, dim=1), y


def test_threshold_explorer_shows_what_the_metrics_compute():
    from course_lib.widgets.metrics import ThresholdExplorer

    scores, y = _toy_scores()
    ex = ThresholdExplorer(scores, y, class_names=["a", "b", "c"], start_class=1)
    assert ex.state() == {"cls": 1, "threshold": 0.5}
    for cls, t in [(1, 0.5), (2, 0.3), (0, 0.0), (0, 1.0)]:
        ex.set_state(cls=cls, threshold=t)
        pos, pred = y == cls, scores[:, cls] >= t
        assert ex.counts == {"TP": int((pos & pred).sum()), "FP": int((~pos & pred).sum()),
                             "FN": int((pos & ~pred).sum()), "TN": int((~pos & ~pred).sum())}
        tp, p_all = ex.counts["TP"], ex.counts["TP"] + ex.counts["FP"]
        assert ex.values["precision"] == (tp / p_all if p_all else 1.0)  # nothing predicted: shown as 1
        assert ex.values["recall"] == tp / int(pos.sum())
        assert f"t = {t:.2f}" in ex.title.get_text()
    # the curves read off the PR curve equal the metrics at every threshold of the grid
    c = ex.curves(2)
    for i in range(0, len(ex.grid), 7):
        counts, values = ex.compute(2, float(ex.grid[i]))
        assert float(c["p_grid"][i]) == values["precision"] and float(c["r_grid"][i]) == values["recall"]
        assert float(c["f1_grid"][i]) == pytest.approx(values["f1"], abs=1e-15)


def test_threshold_explorer_default_and_start_class():
    from course_lib.widgets.metrics import ThresholdExplorer, default_scores

    scores, y = default_scores()
    assert scores.shape == (450, 10) and scores.dtype == torch.float64 and y.shape == (450,)
    assert torch.allclose(scores.sum(dim=1), torch.ones(450, dtype=torch.float64))
    assert 0.85 < metrics.accuracy(y, scores.argmax(dim=1)) < 0.95
    ex = ThresholdExplorer()
    worst = min(range(10), key=lambda k: ex.compute(k, 0.5)[1]["f1"])
    assert ex.state()["cls"] == worst


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(scores=torch.full((4, 2), 2.0, dtype=torch.float64), y_true=torch.tensor([0, 1, 0, 1])), "probabilities in [0, 1]"),
        (dict(scores=torch.full((4, 2), 0.5, dtype=torch.float64), y_true=torch.tensor([0, 1, 2, 1])), "labels 0..1"),
        (dict(scores=torch.full((4, 2), 0.5, dtype=torch.float64), y_true=torch.tensor([0, 1, 1])), "y_true should have shape (N,)"),
        (dict(scores=torch.full((4, 2), 0.5, dtype=torch.float64)), "give both scores and y_true"),
        (dict(scores=torch.full((4, 2), 0.5, dtype=torch.float64), y_true=torch.tensor([0, 1, 0, 1]), class_names=["a"]), "1 class_names for K=2"),
        (dict(scores=torch.full((4, 2), 0.5, dtype=torch.float64), y_true=torch.tensor([0, 1, 0, 1]), start_class=2), "start_class should be a class 0..1"),
    ],
)
def test_threshold_explorer_bad_input(kwargs, message):
    from course_lib.widgets.metrics import ThresholdExplorer

    with pytest.raises(ValueError) as info:
        ThresholdExplorer(**kwargs)
    assert message in str(info.value) and str(info.value).startswith("ThresholdExplorer")


def test_misclassified_gallery_and_confusion_plot():
    from matplotlib.figure import Figure

    from course_lib.widgets.metrics import misclassified, plot_confusion_matrix, plot_misclassified

    scores, y = _toy_scores()
    wrong = misclassified(y, scores)
    pred, confidence = scores.argmax(dim=1), scores.max(dim=1).values
    assert set(wrong.tolist()) == set(torch.nonzero(pred != y).flatten().tolist())
    assert bool((confidence[wrong][:-1] >= confidence[wrong][1:]).all())  # most confident first
    fig = Figure()
    axes = fig.subplots(1, 4)
    images = torch.rand(60, 36)  # 6x6 images as rows
    shown = plot_misclassified(axes, images, y, scores, class_names=["a", "b", "c"])
    assert shown == wrong[:4].tolist()
    i = shown[0]
    assert axes[0].get_title() == f"{'abc'[int(y[i])]} → {'abc'[int(pred[i])]} ({float(confidence[i]):.2f})"
    ax = Figure().subplots()
    cm = metrics.confusion_matrix(y, pred, 3)
    plot_confusion_matrix(ax, cm)
    assert sorted(int(t.get_text()) for t in ax.texts) == sorted(int(v) for v in cm.flatten() if v > 0)
    with pytest.raises(ShapeError, match="plot_confusion_matrix: cm should have shape"):
        plot_confusion_matrix(ax, torch.zeros(2, 3, dtype=torch.long))
