"""Cold and cached data preparation (`IMDBDataModule.prepare_data` + `setup`) at the default recipe's
and the notebook's settings, each on a new cache directory and then on the filled one. Prints JSON.

    OMP_NUM_THREADS=2 python benchmarks/prep.py /path/to/imdb
"""

from __future__ import annotations

import json
import sys
import tempfile
import time

from seqsent.data import IMDBDataModule

SETTINGS = {"default": {"vocab_size": 50_000, "max_len": 500}, "seed": {"vocab_size": 10_000, "max_len": 200}}


def main(path: str) -> dict[str, float]:
    out = {}
    for name, settings in SETTINGS.items():
        with tempfile.TemporaryDirectory() as cache:
            for phase in ("cold", "cached"):
                dm = IMDBDataModule(path=path, cache_dir=cache, **settings)
                start = time.perf_counter()
                dm.prepare_data()
                dm.setup("fit")
                out[f"{name}_{phase}"] = round(time.perf_counter() - start, 2)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python benchmarks/prep.py IMDB_DIR")
    print(json.dumps(main(sys.argv[1])))
