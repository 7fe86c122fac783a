"""The comparison figure: validation accuracy per epoch and test accuracy per architecture."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from seqsent.analysis.runs import Run, arch_sort_key


def comparison_figure(runs: list[Run]) -> Figure:
    """Left: val/acc per epoch, one line per run (dashed: not completed). Right: test/acc per architecture.

    Built without pyplot, so it works in scripts (no display needed) and shows inline in notebooks.
    """
    colors = {arch: f"C{i % 10}" for i, arch in enumerate(sorted({r.arch for r in runs}, key=arch_sort_key))}
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    curves_ax, box_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})

    for run in runs:
        if run.val_curve:
            epochs, values = zip(*run.val_curve)
            style = "-" if run.completed else "--"
            curves_ax.plot(epochs, values, style, marker="o", ms=3, lw=1.2, alpha=0.8, color=colors[run.arch])
    handles = [Line2D([], [], color=c, label=a) for a, c in colors.items()]
    if any(r.val_curve and not r.completed for r in runs):
        handles.append(Line2D([], [], color="grey", ls="--", label="not completed"))
    if not any(r.val_curve for r in runs):
        curves_ax.text(0.5, 0.5, "no val/acc in TensorBoard events", ha="center", va="center")
    curves_ax.legend(handles=handles, loc="best", fontsize="small")
    curves_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    curves_ax.set(xlabel="epoch", ylabel="validation accuracy", title="val/acc per epoch (one line per run)")
    curves_ax.grid(alpha=0.3)

    archs = list(colors)
    values = [[r.test_acc for r in runs if r.arch == a and r.completed and r.test_acc is not None] for a in archs]
    positions = list(range(1, len(archs) + 1))
    boxed = [(p, v) for p, v in zip(positions, values) if v]
    if boxed:
        box_positions, box_values = zip(*boxed)
        box_ax.boxplot(box_values, positions=box_positions, widths=0.5, showfliers=False, medianprops={"color": "k"})
    for position, arch, points in zip(positions, archs, values):
        if not points:
            box_ax.annotate(
                "none completed", (position, 0.5), xycoords=("data", "axes fraction"), ha="center", color="grey"
            )
            continue
        offsets = [0.0] if len(points) == 1 else [-0.12 + 0.24 * i / (len(points) - 1) for i in range(len(points))]
        box_ax.scatter([position + o for o in offsets], points, color=colors[arch], zorder=3, s=24)
    box_ax.set_xticks(positions, labels=[f"{a}\n(n={len(v)})" for a, v in zip(archs, values)])
    box_ax.set_xlim(0.5, len(archs) + 0.5)
    box_ax.set(ylabel="test accuracy", title="test/acc per architecture (completed runs)")
    box_ax.grid(alpha=0.3, axis="y")
    return fig


def save_figure(fig: Figure, path: Path, dpi: int = 120) -> Path:
    """Write the figure as PNG (through a temporary file, so a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=dpi)
    tmp.replace(path)
    return path
