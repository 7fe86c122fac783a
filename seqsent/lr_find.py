"""Find a learning rate with Lightning's range test (`Tuner.lr_find`, the `LearningRateFinder`'s search):
a short training whose rate grows from `lr_find.min_lr` to `lr_find.max_lr`, suggesting the rate where
the loss falls fastest.

    python -m seqsent.lr_find                                 # the default recipe
    python -m seqsent.lr_find model/encoder=gru data=sst2     # any seqsent.train override
    python -m seqsent.train model.lr=<suggested> [the same overrides]   # then train with it

Writes into a directory of its own (`outputs/<date>/<time>_lr_find_<encoder>_<id>`, no `.hydra` record
and no metrics.json: seqsent.compare never takes it for a run): `lr_find.json` (the suggested rate,
the range, the loss at each rate tried, the command's overrides) and `lr_find.png` (loss against rate,
the suggestion marked).
"""

from __future__ import annotations

from pathlib import Path

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateFinder
from lightning.pytorch.tuner import Tuner
from omegaconf import DictConfig, OmegaConf

from seqsent.builders import build_trainer
from seqsent.errors import SeqsentError, check_types, report_job_errors
from seqsent.train import check_model, num_classes
from seqsent.utils import RUN_MARKERS, check_run_dir_free, config_dir, quiet_lightning, register_resolvers, write_json

register_resolvers()
HELD = (*RUN_MARKERS, "lr_find.json", "lr_find.png")  # what its directory must not hold yet


@report_job_errors
def find_lr(cfg: DictConfig) -> dict:
    """Run the range test on `cfg`'s model and data; write and return its result."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    check_run_dir_free(run_dir, "learning-rate search", "leave hydra.run.dir unset or choose an empty one", HELD)
    search = OmegaConf.to_container(cfg.lr_find, resolve=True)
    check_types(LearningRateFinder.__init__, search, "lr_find.")  # the same settings as Tuner.lr_find
    if not 0 < search["min_lr"] < search["max_lr"]:
        raise SeqsentError(f"lr_find.min_lr={search['min_lr']}, max_lr={search['max_lr']}: use 0 < min_lr < max_lr")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    check_model(cfg.model)
    model = instantiate(cfg.model, num_classes=num_classes(datamodule, cfg.model.get("num_classes")))
    trainer = build_trainer(cfg, [], [])  # no checkpoints, no loggers: nothing but the search
    finder = Tuner(trainer).lr_find(model, datamodule=datamodule, update_attr=False, **search)
    suggested = finder.suggestion() if finder is not None else None
    result = {
        "suggested_lr": suggested,
        "configured_lr": cfg.model.get("lr"),
        **search,
        "lrs": finder.results["lr"],
        "losses": finder.results["loss"],
        "overrides": list(HydraConfig.get().overrides.task),
    }
    write_json(run_dir / "lr_find.json", result)
    figure = finder.plot(suggest=suggested is not None)
    figure.savefig(run_dir / "lr_find.png", dpi=120, bbox_inches="tight")
    found = f"suggested model.lr={suggested:.3g}" if suggested is not None else "no suggestion (too few losses)"
    print(f"\n== seqsent lr_find ==\n  {found} (configured: {result['configured_lr']})", flush=True)
    print(f"  {run_dir / 'lr_find.json'}\n  {run_dir / 'lr_find.png'}", flush=True)
    return result


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="lr_find")
def _hydra_main(cfg: DictConfig) -> None:
    find_lr(cfg)


def main() -> None:
    """Console entry point (Hydra's command line)."""
    quiet_lightning()
    _hydra_main()


if __name__ == "__main__":
    main()
