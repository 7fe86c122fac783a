"""Research diagnostics: gradient flow over time and gate statistics (callback and functions)."""

from seqsent.diagnostics.analysis import (
    GradFlow,
    NoStepStates,
    encoder_label,
    gate_values,
    gradient_flow,
    gradient_flow_over,
    no_step_states,
)
from seqsent.diagnostics.gradflow import GradientFlow
from seqsent.diagnostics.plots import plot_gradient_flow

__all__ = [
    "GradFlow",
    "GradientFlow",
    "NoStepStates",
    "encoder_label",
    "gate_values",
    "gradient_flow",
    "gradient_flow_over",
    "no_step_states",
    "plot_gradient_flow",
]
