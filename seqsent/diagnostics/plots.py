"""Figures of gradient flow over time (log-scale norms by distance from the end) and gate statistics."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from seqsent.diagnostics.analysis import GATES, SATURATION, GradFlow

GATE_NAMES = [label for gates in GATES.values() for label in gates.values()]  # forget, input, output, reset, update


def plot_gradient_flow(flows: dict[str, GradFlow], title: str | None = None, min_count: int = 1) -> Figure:
    """Per model: ||dLoss/dh_t|| against steps before the review's last token (log y), geometric mean
    over reviews solid, mean dashed, for distances at least `min_count` reviews reach; a second panel
    with the gate statistics when any model has LSTM or GRU layers."""
    has_gates = any(flow.gate_count for flow in flows.values())
    fig = Figure(figsize=(12.0 if has_gates else 6.5, 4.4), layout="constrained")
    axes = fig.subplots(1, 2 if has_gates else 1, squeeze=False)[0]
    ax = axes[0]
    for label, flow in flows.items():
        geo, mean = flow.geomean_norms().numpy(), flow.mean_norms().numpy()
        keep = (flow.count.numpy() >= min_count) & (geo > 0)
        steps = np.arange(len(geo))
        (line,) = ax.plot(steps[keep], geo[keep], label=label, linewidth=1.6)
        ax.plot(steps[keep], mean[keep], color=line.get_color(), linewidth=0.9, linestyle="--", alpha=0.7)
    ax.set_yscale("log")
    ax.set_xlabel("steps before the review's last token (0 = last token)")
    ax.set_ylabel("||dLoss / dh_t||: geometric mean (solid), mean (dashed)")
    ax.set_title("gradient reaching each step's state\n(the top layer's; recurrent encoders: forward direction)")
    ax.grid(True, which="both", alpha=0.3)
    if flows:
        ax.legend()
    if has_gates:
        _plot_gates(axes[1], flows)
    if title:
        fig.suptitle(title)
    return fig


def _plot_gates(ax, flows: dict[str, GradFlow]) -> None:
    series = [
        (f"{label} {layer}", flow.gate_stats(), layer) for label, flow in flows.items() for layer in flow.gate_count
    ]
    present = {key.split("/", 1)[1] for _, stats, _ in series for key in stats}
    columns = [f"{gate}_{what}" for what in ("mean", "saturated") for gate in GATE_NAMES if f"{gate}_{what}" in present]
    x = np.arange(len(columns))
    width = 0.8 / max(len(series), 1)
    for k, (name, stats, layer) in enumerate(series):
        values = [stats.get(f"{layer}/{column}", np.nan) for column in columns]  # nan: a gate its cell lacks
        bars = ax.bar(x + (k - (len(series) - 1) / 2) * width, values, width, label=name)
        if len(series) <= 4:
            ax.bar_label(bars, labels=["" if np.isnan(v) else f"{v:.2f}" for v in values], fontsize=7)
    low, high = SATURATION
    ax.set_xticks(x, [c.replace("_", "\n") for c in columns])
    ax.set_ylim(0, 1.08)
    ax.set_ylabel(f"mean gate value / fraction < {low} or > {high}")
    ax.set_title("gates over valid steps")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
