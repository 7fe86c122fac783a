"""Hydra callback that reports every sweep job as it ends and keeps a status file.

Enabled in conf/hydra/default.yaml. For each job it prints one line (completed with its
optimized metric, or failed with the reason) and appends a JSON line to `<sweep dir>/jobs.jsonl`;
at the end of a sweep it prints the tally. A failed job does not stop the others: Hydra runs
the whole sweep and reports the failure when it ends.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class SweepReport(Callback):
    """Per-job status lines and `jobs.jsonl` for multiruns."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        hydra_cfg = job_return.hydra_cfg.hydra if job_return.hydra_cfg else None
        if hydra_cfg is None or str(hydra_cfg.mode) != "RunMode.MULTIRUN":
            return
        if os.environ.get("SLURM_PROCID", "0") != "0":  # hydra/launcher=slurm: one record per job, from task 0
            return
        run_dir = Path(hydra_cfg.runtime.output_dir)
        name = run_dir.name
        record: dict[str, Any] = {"job": name, "run_dir": str(run_dir)}
        try:
            value = job_return.return_value  # a failed job's exception is raised again here
        except Exception as err:
            reason = " ".join(str(err).split())[:300]
            record.update(status="failed", error=reason)
            print(f"[sweep] {name}: FAILED ({reason}); details in {run_dir}", flush=True)
        else:
            record.update(status="completed", value=value)
            print(f"[sweep] {name}: completed ({config.get('optimized_metric')}={value})", flush=True)
        with (run_dir.parent / "jobs.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=str) + "\n")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        status = sweep_dir / "jobs.jsonl"  # jobs of parallel launchers end in other processes
        records = [json.loads(line) for line in status.read_text().splitlines()] if status.is_file() else []
        failed = [r["job"] for r in records if r.get("status") == "failed"]
        print(f"[sweep] {len(records) - len(failed)} completed, {len(failed)} failed: {sweep_dir}", flush=True)
        print(f"[sweep] compare with: python -m seqsent.compare {sweep_dir}", flush=True)
