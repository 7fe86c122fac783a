"""Speed measurements behind `benchmarks/benchmark.py` (not part of the installed package).

Data preparation (cold and cached), training and inference throughput of the recurrent
classifiers, the fp32 matmul rate of the same machine, and the wall time until a model reaches a
test accuracy. Every timing synchronizes the device before reading the clock.
"""

from .accuracy import check_recipe, evaluate_accuracy, parse_recipe, time_to_accuracy
from .common import (
    AUTOCAST_DTYPES,
    CELLS,
    DATA_KEYS,
    DEFAULT_RECIPE,
    EPOCH_REVIEWS,
    FLOPS_COUNTING,
    GATES,
    MODEL_KEYS,
    NULLABLE,
    PRECISIONS,
    SEED_SIZES,
    TARGET_ACC,
    autocast,
    describe_device,
    log,
    peak_rss_mb,
    reset_peak_rss,
    resolve_device,
    synchronize,
)
from .data import datasets_cache, imdb_like_reviews, synthetic_imdb_dir, time_prep
from .graphed import GraphedTrainStep, benchmark_epoch, measure_epoch
from .paired import paired_lstm_fraction
from .throughput import (
    benchmark_cell,
    gate_flops,
    matmul_gflops,
    measure_inference,
    measure_layer,
    measure_training,
    sample_batches,
    seed_model,
)

__all__ = [
    "AUTOCAST_DTYPES",
    "CELLS",
    "DATA_KEYS",
    "DEFAULT_RECIPE",
    "EPOCH_REVIEWS",
    "FLOPS_COUNTING",
    "GATES",
    "GraphedTrainStep",
    "MODEL_KEYS",
    "NULLABLE",
    "SEED_SIZES",
    "PRECISIONS",
    "TARGET_ACC",
    "autocast",
    "benchmark_cell",
    "benchmark_epoch",
    "check_recipe",
    "datasets_cache",
    "describe_device",
    "evaluate_accuracy",
    "gate_flops",
    "imdb_like_reviews",
    "log",
    "matmul_gflops",
    "measure_epoch",
    "measure_inference",
    "measure_layer",
    "measure_training",
    "paired_lstm_fraction",
    "parse_recipe",
    "peak_rss_mb",
    "reset_peak_rss",
    "resolve_device",
    "sample_batches",
    "seed_model",
    "synchronize",
    "synthetic_imdb_dir",
    "time_prep",
    "time_to_accuracy",
]
