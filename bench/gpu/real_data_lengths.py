"""Writes bench/gpu/results/real-data-lengths.json: the length histograms token_statistics returns for the
benchmark's datasets, for bench/gpu/plan_real_data.ts to plan the measured runs on their real lengths.

    $PY bench/gpu/real_data_lengths.py

No tokenizer needed: real_data.py's rows are generated to token lengths drawn from one seeded log-normal, and the
measured statistics confirm them (the script fails unless the regenerated lengths give exactly the committed
tokens_trained, median, p95 and max of bench/gpu/results/real-data/2026-12-01-h200-4bit-merged.json). Rows over the
sequence are truncated, as dataset.overlong: truncate does.
"""

import json
import math
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent.parent / "python-activities")]
import real_data  # noqa: E402

from tuneflow_activities.data import length_histogram  # noqa: E402

drawn = np.clip(np.random.default_rng(12).lognormal(math.log(real_data.REAL_MEDIAN), real_data.REAL_SIGMA, real_data.REAL_ROWS), 16, 3000).astype(int)
trained = {"real": [min(int(length), real_data.SEQUENCE) for length in drawn], "fixed": [real_data.SEQUENCE] * real_data.FIXED_ROWS}
measured = json.loads((HERE / "results" / "real-data" / "2026-12-01-h200-4bit-merged.json").read_text())["data"]["lengths"]
for name, lengths in trained.items():
    sorted_drawn = sorted(int(length) for length in drawn) if name == "real" else [real_data.SEQUENCE + 64] * real_data.FIXED_ROWS
    regenerated = {"tokens_trained": sum(lengths), "max": sorted_drawn[-1], "p95": sorted_drawn[math.ceil(0.95 * len(sorted_drawn)) - 1]}
    for field, value in regenerated.items():
        if value != measured[name][field]:
            raise SystemExit(f"{name}: regenerated {field} {value} != measured {measured[name][field]}")
histograms = {name: length_histogram(lengths) for name, lengths in trained.items()}
(HERE / "results" / "real-data-lengths.json").write_text(
    json.dumps({"command": "bench/gpu/real_data_lengths.py", "length_histogram": histograms}, indent=1) + "\n"
)
print({name: len(histogram) for name, histogram in histograms.items()})
