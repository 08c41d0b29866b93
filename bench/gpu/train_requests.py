"""The train requests the GPU benchmarks send, as bench/gpu/train_requests.ts built them with the product's own code
(spec schema defaults, resolveTrainingSetup, the planner's fastest-fit choice): never written by hand here."""

import json
import os
from pathlib import Path

REQUESTS = Path(__file__).resolve().parent / "inputs/train-requests.json"
CUDA = os.environ.get("TUNEFLOW_DRY_RUN_ON_CPU") != "1"


def device_target() -> str:
    """The worker the requests were planned for: this card, by the name torch reports, or the CPU of a dry run."""
    if not CUDA:
        return "cpu"
    import torch

    name = torch.cuda.get_device_name(0).lower()
    for known in ("h100", "h200"):
        if known in name:
            return known
    raise SystemExit(f"no planned requests for {name}: add its facts to bench/gpu/train_requests.ts")


def planned(benchmark: str, *keys: str) -> dict:
    """{spec, setup, plan} for one run of `benchmark` on this device (keys: precision, run...)."""
    entry = json.loads(REQUESTS.read_text())[benchmark][device_target()]
    for key in keys:
        entry = entry[key]
    return json.loads(json.dumps(entry))
