"""Test a checkpoint: python -m seqsent.eval ckpt_path=outputs/.../checkpoints/last.ckpt

The vocabulary, max_len and padding sides come from the checkpoint. The data is the one the run
trained on (its settings are recorded in the checkpoint), with any `data.<key>=` overrides on top;
`data=<name>` tests on another dataset instead (checkpoints without the record: the command's data,
default IMDB). Prints the test metrics and writes `metrics.json` into the run dir.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from seqsent.allocator import keep_freed_memory
from seqsent.builders import build_trainer, checkpoint_datamodule, recorded_data
from seqsent.callbacks import progress_bar
from seqsent.checkpoint import load_classifier
from seqsent.errors import SeqsentError, check_types, report_errors, report_job_errors
from seqsent.utils import check_run_dir_free, config_dir, quiet_lightning, register_resolvers, write_json, write_record

register_resolvers()


@report_job_errors
def evaluate(cfg: DictConfig) -> dict:
    """Test metrics of `cfg.ckpt_path` on the test split of `cfg.data`."""
    keep_freed_memory()
    check_types(L.seed_everything, {"seed": cfg.seed})
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    fix = "leave hydra.run.dir unset (each evaluation gets a new directory) or choose an empty one"
    check_run_dir_free(run_dir, "evaluation", fix)
    write_record(cfg)
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise SeqsentError(f"no checkpoint given: {USAGE}")
    model = load_classifier(cfg.ckpt_path)
    L.seed_everything(cfg.seed, verbose=False)
    data_cfg = recorded_data(cfg.data, model.data_settings, HydraConfig.get().overrides.task)
    datamodule = checkpoint_datamodule(data_cfg, model, cfg.ckpt_path)
    trainer = build_trainer(cfg, [progress_bar()], [])
    results = trainer.test(model, datamodule=datamodule, verbose=False)
    metrics = {k: float(v) for k, v in results[0].items()}
    metrics.update({"ckpt_path": str(Path(cfg.ckpt_path).resolve()), "data_path": datamodule.path})
    write_json(run_dir / "metrics.json", metrics)
    shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith("test/"))
    print(f"\n== seqsent eval ==\n  {shown}\n  metrics: {run_dir / 'metrics.json'}", flush=True)
    return metrics


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="eval")
def _hydra_main(cfg: DictConfig) -> float:
    return evaluate(cfg)["test/acc"]


USAGE = "python -m seqsent.eval ckpt_path=RUN/checkpoints/last.ckpt"


def check_ckpt_given(argv: list[str]) -> None:
    """Say that the checkpoint (eval's one setting without a default) is missing before Hydra does (a traceback)."""
    if any(a.startswith(("-h", "--help", "--cfg", "-c", "--info", "--hydra-help")) for a in argv):
        return
    if not any(a.lstrip("+").startswith("ckpt_path=") for a in argv):
        raise SeqsentError(f"no checkpoint given: {USAGE}")


def main() -> None:
    """Console entry point: a one-line error for a missing checkpoint, then Hydra's command line."""
    report_errors(check_ckpt_given)(sys.argv[1:])
    quiet_lightning()
    _hydra_main()


if __name__ == "__main__":
    main()
