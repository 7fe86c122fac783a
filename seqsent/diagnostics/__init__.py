"""Research diagnostics: gradient flow over time and LSTM gate statistics (callback and functions)."""

from seqsent.diagnostics.analysis import GradFlow, gradient_flow, gradient_flow_over, lstm_gates
from seqsent.diagnostics.gradflow import GradientFlow
from seqsent.diagnostics.plots import plot_gradient_flow

__all__ = ["GradFlow", "GradientFlow", "gradient_flow", "gradient_flow_over", "lstm_gates", "plot_gradient_flow"]
