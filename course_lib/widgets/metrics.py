"""Explorer and figures of chapter 07: evaluating a classifier.

* :class:`ThresholdExplorer`: one class against the rest; a threshold slider moves
  along the precision-recall curve and shows the counts TP/FP/FN/TN and precision,
  recall and F1 at that threshold.
* :func:`plot_confusion_matrix` and :func:`plot_misclassified`: static figures for
  a confusion matrix and for the most confidently wrong images.

Every number shown comes from :mod:`course_lib.metrics`.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from course_lib import metrics
from course_lib.validate import expect
from course_lib.widgets.base import Explorer

BLUE, ORANGE, GREEN, RED = "#4c72b0", "#dd8452", "#55a868", "#c44e52"


@functools.lru_cache(maxsize=1)
def default_scores() -> Tuple[torch.Tensor, torch.Tensor]:
    """Scores of a model-free classifier on the digits' test split: ``(scores, y_true)``,
    scores (450, 10) float64 = softmax over classes of minus the squared distance to
    each class's mean training image; y_true (450,). About 0.90 accuracy; seeded split."""
    from course_lib import data

    split = data.digits(dtype=torch.float64)
    means = torch.stack([split.X_train[split.y_train == c].mean(dim=0) for c in range(10)])  # (10, 64)
    sq_dist = ((split.X_test[:, None, :] - means[None, :, :]) ** 2).sum(dim=2)  # (450, 10)
    return torch.softmax(-sq_dist, dim=1), split.y_test


def _check_scores(fn: str, scores: torch.Tensor, y_true: torch.Tensor) -> None:
    dims = expect(fn, "scores", scores, ("N", "K"), floating=True)
    expect(fn, "y_true", y_true, ("N",), dims, integer=True)
    if dims["N"] == 0:
        raise ValueError(f"{fn}: got no samples")
    if not bool(((scores >= 0) & (scores <= 1)).all()):
        raise ValueError(f"{fn}: scores should be probabilities in [0, 1] (apply softmax to logits), got values in "
                         f"[{float(scores.min()):.3g}, {float(scores.max()):.3g}]")
    if int(y_true.min()) < 0 or int(y_true.max()) >= dims["K"]:
        raise ValueError(f"{fn}: y_true should hold labels 0..{dims['K'] - 1} (scores has K={dims['K']} columns), "
                         f"got labels {int(y_true.min())}..{int(y_true.max())}")


class ThresholdExplorer(Explorer):
    """One class against the rest: "positive" means ``scores[:, class] >= threshold``.

    Left: the precision-recall curve of that class with the current threshold's point.
    Middle: precision, recall and F1 as functions of the threshold. Right: the counts
    TP, FP, FN, TN. ``scores`` (N, K) probabilities and ``y_true`` (N,) labels; without
    them, :func:`default_scores` (a nearest-class-mean classifier on the digits).
    ``start_class`` is the class shown first (default: the one with the lowest F1 at
    threshold 0.5, the most interesting). After a render ``self.counts`` and
    ``self.values`` hold the numbers shown. A threshold above every score predicts nothing: precision is then 0/0, shown as 1
    (``zero_division=1.0``), the curve's last point.
    """

    figsize = (10.0, 3.3)
    check_control = "threshold"
    grid_size = 201

    def __init__(self, scores: Optional[torch.Tensor] = None, y_true: Optional[torch.Tensor] = None,
                 class_names: Optional[Sequence[str]] = None, start_class: Optional[int] = None) -> None:
        if (scores is None) != (y_true is None):
            raise ValueError("ThresholdExplorer: give both scores and y_true, or neither (default scores)")
        if scores is None:
            scores, y_true = default_scores()
        _check_scores("ThresholdExplorer", scores, y_true)
        self.scores, self.y_true = scores.detach().to(torch.float64), y_true
        k = scores.shape[1]
        self.class_names = [str(c) for c in (class_names if class_names is not None else range(k))]
        if len(self.class_names) != k:
            raise ValueError(f"ThresholdExplorer: {len(self.class_names)} class_names for K={k} classes")
        self.grid = torch.linspace(0.0, 1.0, self.grid_size, dtype=torch.float64)
        if start_class is None:
            f1 = [self.compute(c, 0.5)[1]["f1"] for c in range(k)]
            start_class = min(range(k), key=lambda c: f1[c])
        if not (isinstance(start_class, int) and 0 <= start_class < k):
            raise ValueError(f"ThresholdExplorer: start_class should be a class 0..{k - 1}, got {start_class!r}")
        self.start_class = start_class
        self.counts: Dict[str, int] = {}
        self.values: Dict[str, float] = {}
        super().__init__()

    def curves(self, cls: int) -> Dict[str, torch.Tensor]:
        """The PR curve of class ``cls`` (:func:`course_lib.metrics.precision_recall_curve`) and,
        read off it, precision, recall and F1 on ``self.grid`` of thresholds (each (201,))."""
        positive = self.y_true == cls
        precision, recall, thresholds = metrics.precision_recall_curve(positive, self.scores[:, cls])
        # threshold t gives the counts of the smallest distinct score >= t (index T: nothing predicted)
        idx = torch.searchsorted(thresholds, self.grid)
        p, r = precision[idx], recall[idx]
        denom = torch.where(p + r > 0, p + r, torch.ones_like(p))
        return {"precision": precision, "recall": recall, "thresholds": thresholds,
                "p_grid": p, "r_grid": r, "f1_grid": torch.where(p + r > 0, 2 * p * r / denom, torch.zeros_like(p))}

    def build(self, fig: Any) -> None:
        fig.subplots_adjust(left=0.06, right=0.99, bottom=0.16, top=0.84, wspace=0.35)
        self.ax_pr, self.ax_t, self.ax_c = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.0, 1.25, 0.75]})
        ax = self.ax_pr
        (self.pr_line,) = ax.plot([], [], "-", color=BLUE, lw=1.5, drawstyle="steps-post")
        (self.pr_point,) = ax.plot([], [], "o", color=RED, ms=8, mec="black", mew=0.8)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.05)
        ax.set_xlabel("recall", labelpad=1)
        ax.set_ylabel("precision", labelpad=1)
        ax.grid(alpha=0.3)
        ax = self.ax_t
        (self.p_line,) = ax.plot(self.grid, self.grid, color=BLUE, lw=1.4, label="precision")
        (self.r_line,) = ax.plot(self.grid, self.grid, color=ORANGE, lw=1.4, label="recall")
        (self.f_line,) = ax.plot(self.grid, self.grid, color=GREEN, lw=1.4, label="F1")
        self.t_line = ax.axvline(0.5, color="black", lw=1.0, ls="--")
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.02, 1.05)
        ax.set_xlabel("threshold $t$", labelpad=1)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=8, frameon=False, handlelength=1.5)
        ax.grid(alpha=0.3)
        ax = self.ax_c
        self.cells = ax.imshow([[0, 0], [0, 0]], cmap="Blues", vmin=0, vmax=len(self.y_true), aspect="auto")
        ax.set_xticks([0, 1])
        ax.set_xticklabels(["pred. +", "pred. −"])
        ax.set_yticks([0, 1])
        ax.set_yticklabels(["true +", "true −"])
        ax.tick_params(length=0)
        self.cell_text = {name: ax.text(j, i, "", ha="center", va="center", fontsize=11)
                          for name, (i, j) in {"TP": (0, 0), "FN": (0, 1), "FP": (1, 0), "TN": (1, 1)}.items()}
        self.title = fig.text(0.5, 0.92, "", ha="center", fontsize=11)
        self.class_title = self.ax_pr.text(0.5, 1.03, "", ha="center", va="bottom", fontsize=10, transform=self.ax_pr.transAxes)
        # everything that changes with the class or the threshold is redrawn over a fixed background
        self.dynamic = [self.pr_line, self.p_line, self.r_line, self.f_line, self.pr_point, self.t_line, self.cells,
                        *self.cell_text.values(), self.title, self.class_title]
        self._curves_for: Optional[int] = None

    def make_controls(self) -> Dict[str, Any]:
        import ipywidgets as widgets

        return {
            "cls": widgets.Dropdown(options=[(f"class {name}", c) for c, name in enumerate(self.class_names)],
                                    value=self.start_class,
                                    description="positive"),
            "threshold": widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.01, description="threshold t",
                                             readout_format=".2f", continuous_update=True),
        }

    def compute(self, cls: int, threshold: float) -> Tuple[Dict[str, int], Dict[str, float]]:
        """Counts and precision/recall/F1 of "positive if score >= threshold" for class ``cls``."""
        y_bin = (self.y_true == cls).long()
        pred_bin = (self.scores[:, cls] >= threshold).long()
        cm = metrics.confusion_matrix(y_bin, pred_bin, num_classes=2)  # rows true 0/1, columns predicted 0/1
        p, r, f = metrics.precision_recall_f1(y_bin, pred_bin, num_classes=2, zero_division=1.0)
        counts = {"TP": int(cm[1, 1]), "FP": int(cm[0, 1]), "FN": int(cm[1, 0]), "TN": int(cm[0, 0])}
        return counts, {"precision": float(p[1]), "recall": float(r[1]), "f1": float(f[1])}

    def render(self, cls: int, threshold: float) -> None:
        cls = int(cls)
        if cls != self._curves_for:
            self._curves_for = cls
            c = self.curves(cls)
            self.pr_line.set_data(c["recall"].numpy(), c["precision"].numpy())
            self.p_line.set_ydata(c["p_grid"].numpy())
            self.r_line.set_ydata(c["r_grid"].numpy())
            self.f_line.set_ydata(c["f1_grid"].numpy())
            n_pos = int((self.y_true == cls).sum())
            self.class_title.set_text(f"class {self.class_names[cls]}: {n_pos} of {len(self.y_true)} positive")
        self.counts, self.values = self.compute(cls, threshold)
        k, v = self.counts, self.values
        self.pr_point.set_data([v["recall"]], [v["precision"]])
        self.t_line.set_xdata([threshold, threshold])
        self.cells.set_array([[k["TP"], k["FN"]], [k["FP"], k["TN"]]])
        for name, text in self.cell_text.items():
            text.set_text(f"{name}\n{k[name]}")
            text.set_color("white" if k[name] > 0.6 * len(self.y_true) else "black")
        self.title.set_text(f"t = {threshold:.2f}:  precision {v['precision']:.3f}   recall {v['recall']:.3f}   F1 {v['f1']:.3f}")


# --- static figures ------------------------------------------------------------------------------
def plot_confusion_matrix(ax: Any, cm: torch.Tensor, class_names: Optional[Sequence[str]] = None) -> Any:
    """Draw the counts ``cm`` (K, K) (rows true, columns predicted) on ``ax``, with the
    off-diagonal cells (the mistakes) in colour and every count written in its cell."""
    expect("plot_confusion_matrix", "cm", cm, ("K", "K"))
    k = cm.shape[0]
    names = [str(c) for c in (class_names if class_names is not None else range(k))]
    mistakes = cm.clone().double()
    mistakes.fill_diagonal_(0)
    image = ax.imshow(mistakes.numpy(), cmap="Reds", vmin=0, vmax=max(1.0, float(mistakes.max())))
    for i in range(k):
        for j in range(k):
            count = int(cm[i, j])
            if count:
                ax.text(j, i, str(count), ha="center", va="center", fontsize=8,
                        color="black" if i == j or count < 0.6 * float(mistakes.max()) else "white",
                        fontweight="bold" if i == j else "normal")
    ax.set_xticks(range(k))
    ax.set_xticklabels(names)
    ax.set_yticks(range(k))
    ax.set_yticklabels(names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    return image


def misclassified(y_true: torch.Tensor, proba: torch.Tensor) -> torch.Tensor:
    """Indices of the wrongly classified samples, most confident first. y_true (N,), proba (N, K)."""
    _check_scores("misclassified", proba, y_true)
    confidence, pred = proba.max(dim=1)
    wrong = torch.nonzero(pred != y_true).flatten()
    return wrong[torch.argsort(confidence[wrong], descending=True, stable=True)]


def plot_misclassified(axes: Sequence[Any], images: torch.Tensor, y_true: torch.Tensor, proba: torch.Tensor,
                       class_names: Optional[Sequence[str]] = None) -> List[int]:
    """Fill ``axes`` (any number) with the most confidently misclassified images, each titled
    "true → predicted (confidence)"; unused axes are blanked. images (N, H, W) or (N, H*W) for
    square images, y_true (N,), proba (N, K). Returns the indices shown."""
    if images.dim() == 2:
        side = int(round(images.shape[1] ** 0.5))
        images = images.reshape(-1, side, side)
    dims = expect("plot_misclassified", "images", images, ("N", None, None))
    expect("plot_misclassified", "proba", proba, ("N", None), dims)
    names = [str(c) for c in (class_names if class_names is not None else range(proba.shape[1]))]
    order = misclassified(y_true, proba).tolist()
    axes = list(axes)
    for ax, i in zip(axes, order):
        p = int(proba[i].argmax())
        ax.imshow(images[i].numpy(), cmap="gray_r")
        ax.set_title(f"{names[int(y_true[i])]} → {names[p]} ({float(proba[i, p]):.2f})", fontsize=8)
    for ax in axes:
        ax.set_axis_off()
    return order[: len(axes)]
