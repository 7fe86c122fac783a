"""Plot how the loss gradient reaches earlier steps of a review, for trained checkpoints.

    python -m seqsent.gradflow ckpt_path=outputs/.../checkpoints/last.ckpt
    python -m seqsent.gradflow ckpt_paths=[RNN_RUN/checkpoints/last.ckpt,LSTM_RUN/checkpoints/last.ckpt] \\
        labels=[RNN,LSTM] out=gradflow.png split=val num_reviews=512

For each checkpoint: the first `num_reviews` reviews of the `split` (val|test) of `data` (default
IMDB from $SEQSENT_IMDB_DIR), encoded with the checkpoint's own vocabulary, max_len and padding;
mean ||dLoss/dh_t|| of the top layer's per-step states against steps before each review's last token
(`seqsent.diagnostics.gradient_flow`), and LSTM/GRU gate statistics as a second panel. A checkpoint
whose encoder has no per-step states (cnn, nbow) is reported as such and left out of the figure.
Writes the PNG (`out`, default <run dir>/gradflow.png) and the numbers as `gradflow.json` in the run dir.
"""

from __future__ import annotations

import math
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from seqsent.allocator import keep_freed_memory
from seqsent.builders import checkpoint_datamodule
from seqsent.checkpoint import load_classifier
from seqsent.diagnostics import GradFlow, encoder_label, gradient_flow_over, no_step_states, plot_gradient_flow
from seqsent.errors import SeqsentError, report_errors
from seqsent.utils import (
    RUN_MARKERS,
    check_new_output,
    check_run_dir_free,
    config_dir,
    output_error,
    register_resolvers,
    write_json,
    write_record,
)

register_resolvers()

SHOWN = (0, 10, 25, 50, 100, 199)  # distances printed in the summary
NUMBERS = "gradflow.json"  # written into the run dir


@report_errors
def gradflow(cfg: DictConfig) -> dict:
    """Analyze every checkpoint of `cfg`, write the figure and `gradflow.json`; returns the numbers."""
    keep_freed_memory()
    paths = [str(p) for p in (cfg.get("ckpt_paths") or [])] + ([str(cfg.ckpt_path)] if cfg.get("ckpt_path") else [])
    labels = [str(label) for label in (cfg.get("labels") or [])]
    _check_args(cfg, paths, labels)
    device = torch.device(cfg.device)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    out = Path(cfg.out).expanduser()
    fix = "leave hydra.run.dir out (each gradflow gets a new directory) or choose a new one"
    check_run_dir_free(run_dir, "gradflow output", fix, (*RUN_MARKERS, NUMBERS))
    check_new_output(out, "out=")
    write_record(cfg)
    L.seed_everything(cfg.seed)
    flows: dict[str, GradFlow] = {}
    report: dict = {"split": cfg.split, "num_reviews": cfg.num_reviews, "models": {}}
    title = None  # the reviews read, once a checkpoint has read them
    for k, path in enumerate(paths):
        model = load_classifier(path, map_location=device)
        encoder = encoder_label(model)
        label = labels[k] if labels else f"{encoder} ({Path(path).resolve().parent.parent.name})"
        report["models"][label] = {"ckpt_path": str(Path(path).resolve()), "encoder": encoder}
        if (problem := no_step_states(model)) is not None:
            report["models"][label]["no_step_states"] = problem
            print(f"{label}: {problem}", flush=True)
            continue
        datamodule = checkpoint_datamodule(cfg.data, model, path)  # set up, the checkpoint's vocabulary and padding
        dataset, collate = datamodule.val_set if cfg.split == "val" else datamodule.test_set, datamodule.collator
        n = min(cfg.num_reviews, len(dataset))
        batches = (
            collate([dataset[i] for i in range(start, min(start + cfg.batch_size, n))])
            for start in range(0, n, cfg.batch_size)
        )
        report["data_path"] = str(datamodule.path)
        flow = gradient_flow_over(model, batches)
        flows[label] = flow
        report["models"][label].update(_describe(flow))
        print(f"{label}: {_summary_line(flow)}", flush=True)
        split = "validation" if cfg.split == "val" else "test"
        title = f"the first {n} {split} reviews of {Path(report['data_path']).name}"
    figure = "none (no checkpoint's encoder has per-step states)"
    if flows:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            plot_gradient_flow(flows, title=title).savefig(out, dpi=cfg.dpi)
        except OSError as err:
            raise output_error(out, err, "out=") from err
        figure = str(out)
    write_json(run_dir / NUMBERS, report, "hydra.run.dir")
    print(f"\n== seqsent gradflow ==\n  figure: {figure}\n  numbers: {run_dir / NUMBERS}", flush=True)
    return report


def _check_args(cfg: DictConfig, paths: list[str], labels: list[str]) -> None:
    usage = "python -m seqsent.gradflow ckpt_path=RUN/checkpoints/last.ckpt (or ckpt_paths=[a,b] labels=[A,B])"
    if not paths:
        raise SeqsentError(f"no checkpoint given: {usage}")
    if labels and len(labels) != len(paths):
        raise SeqsentError(f"{len(labels)} labels for {len(paths)} checkpoints: give one label per checkpoint")
    if len(set(labels)) != len(labels):
        raise SeqsentError(f"labels={labels} repeat a name: give each checkpoint its own label")
    if cfg.split not in ("val", "test"):
        raise SeqsentError(f"split={cfg.split!r}: use val or test")
    if cfg.num_reviews < 1 or cfg.batch_size < 1:
        raise SeqsentError(f"num_reviews={cfg.num_reviews}, batch_size={cfg.batch_size}: use whole numbers >= 1")
    if str(cfg.device).startswith("cuda") and not torch.cuda.is_available():
        raise SeqsentError("device=cuda but no CUDA GPU is available: use device=cpu")


def _describe(flow: GradFlow) -> dict:
    return {
        "mean_grad_norm_by_distance": [None if math.isnan(v) else v for v in flow.mean_norms().tolist()],
        "geomean_grad_norm_by_distance": [None if math.isnan(v) else v for v in flow.geomean_norms().tolist()],
        "reviews_by_distance": flow.count.tolist(),
        "gates": flow.gate_stats(),
    }


def _summary_line(flow: GradFlow) -> str:
    geo, mean = flow.geomean_norms(), flow.mean_norms()
    shown = [d for d in SHOWN if d < len(mean) and flow.count[d] > 0]
    parts = [f"d{d} {geo[d].item():.1e} ({mean[d].item():.1e})" for d in shown]
    gates = flow.gate_stats()
    kept = ("forget_mean", "update_mean")  # how much of its state a layer keeps: LSTM forget, GRU update gate
    forget = [f"{k.replace('/', ' ').removesuffix('_mean')} {v:.2f}" for k, v in gates.items() if k.endswith(kept)]
    line = "||dLoss/dh_t|| at steps before the end, geometric mean (mean): " + ", ".join(parts)
    return line + ("; " + ", ".join(forget) if forget else "")


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="gradflow")
def main(cfg: DictConfig) -> None:
    """Console entry point: Hydra's command line (`--help`; Hydra names unknown keys and options)."""
    gradflow(cfg)


if __name__ == "__main__":
    main()
