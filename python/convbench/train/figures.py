"""The figures of the reports, as PNG. Drawn on matplotlib Figure objects
directly, without pyplot: no display is needed, and importing this module
leaves the user's matplotlib backend and open figures alone."""
from __future__ import annotations

import contextlib
import os
import textwrap
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def _subplots(nrows=1, ncols=1, figsize=None, **kw):
    """pyplot.subplots without pyplot: (Figure, axes)."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kw)


_FOOTNOTE = None


@contextlib.contextmanager
def footnote(text):
    """Stamp `text` (e.g. "stand-in data, not CIFAR-10") under every figure drawn inside the block,
    so a figure copied out of its directory still says what it shows. A callable is asked at
    each save (experiments that load their data as they go)."""
    global _FOOTNOTE
    old, _FOOTNOTE = _FOOTNOTE, (text or None)
    try:
        yield
    finally:
        _FOOTNOTE = old


def _style_x(ax, xlabel):
    if xlabel == "epoch":  # whole epochs only, no 1.25
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _save(fig, path) -> Path:
    """Render to a temporary name and rename, so a figure on disk is always complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = _FOOTNOTE() if callable(_FOOTNOTE) else _FOOTNOTE
    if text:
        width = max(60, int(fig.get_figwidth() * 15))  # ~15 characters per inch at 7 pt
        fig.text(0.01, 0.0, "\n".join(textwrap.fill(t, width) for t in text.split("\n")),
                 fontsize=7, color="firebrick", ha="left", va="top")
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)
    return path


def lines(series, path, title, xlabel="step", ylabel="", logy=False, marks=()) -> Path:
    """series: list of (label, x, y); marks: (x, label) drawn as dotted vertical lines (e.g. the
    steps where a learning-rate schedule dropped the rate)."""
    fig, ax = _subplots(figsize=(7, 4.2))
    for label, x, y in series:
        ax.plot(x, y, label=label, lw=1.2, marker="o" if len(x) <= 30 else None, ms=3)
    for i, (x, label) in enumerate(marks):
        ax.axvline(x, ls=":", lw=1, color=f"C{(len(series) + i) % 10}", label=label)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    _style_x(ax, xlabel)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    return _save(fig, path)


def panels(panel_series, path, title, xlabel="step", ylabels=None, ncols=2, logy=False,
           marks=()) -> Path:
    """Several `lines` plots side by side: panel_series = list of (panel title, series); marks
    as in `lines`, drawn on every panel."""
    n = len(panel_series)
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = _subplots(nrows, ncols, figsize=(5.5 * ncols, 3.6 * nrows), squeeze=False)
    for i, (ptitle, series) in enumerate(panel_series):
        ax = axes[i // ncols][i % ncols]
        for label, x, y in series:
            ax.plot(x, y, label=label, lw=1.1, marker="o" if len(x) <= 30 else None, ms=3)
        for k, (x, label) in enumerate(marks):
            ax.axvline(x, ls=":", lw=1, color=f"C{(len(series) + k) % 10}", label=label)
        ax.set(title=ptitle, xlabel=xlabel, ylabel=(ylabels[i] if ylabels else ""))
        _style_x(ax, xlabel)
        if logy:  # gradient norms span decades (vanishing sigmoid gradients)
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if series:
            ax.legend(fontsize=7)
    for j in range(n, nrows * ncols):
        axes[j // ncols][j % ncols].axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def epoch_curves(rec, path, title, subtitle) -> Path:
    """1RT720 style: per-epoch training/test cost and accuracy, hyper-parameters in the subtitle."""
    e = rec["epochs"]
    x = np.arange(1, len(e["train_loss"]) + 1)
    fig, (a, b) = _subplots(1, 2, figsize=(10, 3.8))
    # the report's legends carry each curve's final value
    a.plot(x, e["train_loss"], label=f"train (final {e['train_loss'][-1]:.4f})")
    if e.get("test_loss"):
        a.plot(x, e["test_loss"], label=f"test (final {e['test_loss'][-1]:.4f})")
    b.plot(x, e["train_acc"], label=f"train (final {e['train_acc'][-1]:.2f}%)")
    if e.get("test_acc"):
        b.plot(x, e["test_acc"], label=f"test (final {e['test_acc'][-1]:.2f}%)")
    a.set(xlabel="epoch", ylabel="cost (cross-entropy)")
    b.set(xlabel="epoch", ylabel="accuracy (%)")
    for ax in (a, b):
        _style_x(ax, "epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{title}\n{subtitle}", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def bars(labels, values, path, title, ylabel="", fmt="{:.1f}") -> Path:
    fig, ax = _subplots(figsize=(max(5, 0.9 * len(labels) + 2), 4))
    pos = np.arange(len(labels))
    ax.bar(pos, values, color="tab:blue")
    for p, v in zip(pos, values):
        ax.text(p, v, fmt.format(v), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(pos)
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set(title=title, ylabel=ylabel)
    return _save(fig, path)


def grouped_bars(groups, series, path, title, ylabel="") -> Path:
    """groups: x labels; series: dict label -> values (one per group; None = missing)."""
    fig, ax = _subplots(figsize=(max(5, 1.4 * len(groups) + 2), 4))
    width = 0.8 / max(len(series), 1)
    for i, (label, vals) in enumerate(series.items()):
        pos = np.arange(len(groups)) + i * width
        ax.bar(pos, [np.nan if v is None else v for v in vals], width, label=label)
    ax.set_xticks(np.arange(len(groups)) + width * (len(series) - 1) / 2)
    ax.set_xticklabels(groups, rotation=20, ha="right", fontsize=8)
    ax.set(title=title, ylabel=ylabel)
    ax.legend()
    return _save(fig, path)


def _grid(images, ncols=None, rgb=False):
    """[n, H, W] (or [n, H, W, 3] with rgb) laid out as [rows, ncols, ...], padded with NaN."""
    imgs = np.asarray(images, dtype=np.float64)
    if imgs.ndim == (4 if rgb else 3):
        n = len(imgs)
        ncols = ncols or int(np.ceil(np.sqrt(n)))
        rows = (n + ncols - 1) // ncols
        pad = np.full((rows * ncols - n, *imgs.shape[1:]), np.nan)
        imgs = np.concatenate([imgs, pad]).reshape(rows, ncols, *imgs.shape[1:])
    return imgs


def _draw_grid(fig_or_sub, imgs, cmap, row_labels=None, col_labels=None):
    rows, cols = imgs.shape[:2]
    axes = fig_or_sub.subplots(rows, cols, squeeze=False)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.axis("off")
            if np.isfinite(imgs[r, c]).any():
                ax.imshow(imgs[r, c], cmap=None if imgs.ndim == 5 else cmap)
            if col_labels is not None and r == 0 and c < len(col_labels):
                ax.set_title(col_labels[c], fontsize=7)
            if row_labels is not None and c == 0 and r < len(row_labels):
                ax.text(-0.1, 0.5, row_labels[r], transform=ax.transAxes, ha="right", va="center",
                        fontsize=7)


def image_grid(images, path, title, row_labels=None, col_labels=None, cmap="gray", ncols=None,
               rgb=False) -> Path:
    """images: array [rows, cols, H, W] (or [n, H, W] laid out in ncols columns); with rgb, a
    trailing axis of 3 colour channels in [0, 1]."""
    imgs = _grid(images, ncols, rgb)
    rows, cols = imgs.shape[:2]
    fig = Figure(figsize=(1.3 * cols + 0.5, 1.3 * rows + 0.6))
    _draw_grid(fig, imgs, cmap, row_labels, col_labels)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def weight_images(weights, input_shape, rgb=True):
    """First-layer weights as images [n, H, W], or [n, H, W, 3] for colour input: conv filters
    [K, C, kh, kw] or Linear rows [out, C*H*W] reshaped to the input image. Colour filters are
    shown as RGB (each scaled to [0, 1] on its own), as report 001 drew them; rgb=False averages
    the channels, as the M124 report merged them."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 4:
        w = w.reshape(len(w), *input_shape)
    if w.shape[1] != 3 or not rgb:
        return w.mean(axis=1), False
    lo = w.min(axis=(1, 2, 3), keepdims=True)
    span = w.max(axis=(1, 2, 3), keepdims=True) - lo
    return ((w - lo) / np.where(span > 0, span, 1)).transpose(0, 2, 3, 1), True


def weight_grid(weights, input_shape, path, title, initial=None, rgb=True) -> Path:
    """A grid of first-layer weights; with `initial`, the weights before training drawn beside
    them (report 000's initial/final weight figures)."""
    final, rgb = weight_images(weights, input_shape, rgb)
    if initial is None:
        return image_grid(final, path, title, cmap="viridis", rgb=rgb)
    grids = [(_grid(weight_images(initial, input_shape, rgb)[0], rgb=rgb), "initial (before training)"),
             (_grid(final, rgb=rgb), "final (after training)")]
    rows, cols = grids[0][0].shape[:2]
    fig = Figure(figsize=(2 * (1.3 * cols + 0.5), 1.3 * rows + 0.9))
    for sub, (imgs, label) in zip(fig.subfigures(1, 2, wspace=0.05), grids):
        _draw_grid(sub, imgs, "viridis")
        sub.suptitle(label, fontsize=9)
    fig.suptitle(title, fontsize=10, y=1.04)
    return _save(fig, path)


def confusion(cm, classes, path, title) -> Path:
    cm = np.asarray(cm)
    fig, ax = _subplots(figsize=(0.55 * len(classes) + 2.5, 0.55 * len(classes) + 2))
    ax.imshow(cm, cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks(range(len(classes)))
    ax.set_yticks(range(len(classes)))
    ax.set_xticklabels(classes, fontsize=8)
    ax.set_yticklabels(classes, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return _save(fig, path)


def misclassified(items, classes, path, title) -> Path:
    imgs = [np.asarray(it["image"]).mean(axis=0) for it in items]
    labels = [f"true {classes[it['label']]} / pred {classes[it['pred']]}" for it in items]
    if not imgs:
        imgs, labels = [np.zeros((2, 2))], ["none misclassified"]
    fig, axes = _subplots(1, len(imgs), figsize=(1.6 * len(imgs) + 0.4, 2.2), squeeze=False)
    for ax, im, lab in zip(axes[0], imgs, labels):
        ax.imshow(im, cmap="gray")
        ax.set_title(lab, fontsize=6)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def scatter_val_train(series, path, title) -> Path:
    """EE449 validation-vs-training accuracy: one trajectory per network."""
    fig, ax = _subplots(figsize=(5.5, 5))
    lo, hi = 100.0, 0.0
    for label, tr, va in series:
        ax.plot(tr, va, ".-", ms=3, lw=0.8, label=label)
        if len(tr):
            lo, hi = min(lo, min(tr), min(va)), max(hi, max(tr), max(va))
    if hi > lo:
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.7, label="val = train")
    ax.set(xlabel="training accuracy (%)", ylabel="validation accuracy (%)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def points(labels, x, y, path, title, xlabel, ylabel) -> Path:
    """One labelled point per item (report 001's test-vs-training accuracy), the diagonal for
    reference."""
    fig, ax = _subplots(figsize=(5.5, 5))
    for i, (label, a, b) in enumerate(zip(labels, x, y)):
        ax.scatter([a], [b], color=f"C{i % 10}", label=f"{label} ({a:.1f}, {b:.1f})")
        ax.annotate(label, (a, b), textcoords="offset points", xytext=(4, 4), fontsize=8)
    lo, hi = min([*x, *y], default=0), max([*x, *y], default=100)
    if hi > lo:
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.7, label="test = training")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def decision_boundaries(panels_, gx, gy, x, y, path, title) -> Path:
    """panels_: list of (title, P) with P the predicted probability on the grid gx, gy; the
    training points x [N, 2] coloured by label y on top."""
    n = len(panels_)
    fig, axes = _subplots(1, n, figsize=(4.2 * n, 4), squeeze=False)
    for ax, (ptitle, prob) in zip(axes[0], panels_):
        ax.contourf(gx, gy, prob, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.6)
        ax.contour(gx, gy, prob, levels=[0.5], colors="k", linewidths=1)
        ax.scatter(x[:, 0], x[:, 1], c=y, cmap="RdBu_r", s=8, edgecolors="k", linewidths=0.3)
        ax.set(title=ptitle, xlabel="x1", ylabel="x2")
        ax.title.set_fontsize(9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
