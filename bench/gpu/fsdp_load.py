"""How much of the model each FSDP rank's GPU holds while the model is loaded and sharded by tuneflow's FSDP loader
(the base in host memory, fully_shard moving and quantising one layer at a time), against the size of the whole
4-bit model, which a plain QLoRA load would put on every GPU before sharding it.

The ranks (--ranks, 2 by default) share the one GPU of the lent machine (gloo; only loading and sharding run, no collective). Llama-3.1-8B's
shape built by multi_process.py (/tmp/tf-models/llama-3.1-8b), 4-bit NF4, LoRA r=64 on all linear layers.

Device, after multi_process.py has built the model:
    python3 bench/gpu/fsdp_load.py --out $OUT
CPU check (`npm run bench:dry-run`): what it measures needs CUDA and bitsandbytes' 4-bit weights, so the dry run
only parses its request (multi_process_requests.ts's qlora-fsdp-2, made by the product) into the worker's typed
payloads, as the loader receives it, and checks it is the FSDP setup this script measures:
    python3 bench/gpu/fsdp_load.py --check
"""

import argparse
import json
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import multi_process

MODEL = Path("/tmp/tf-models/llama-3.1-8b")
GIB = 2**30


def rank(rank_index: int, variant: str, directory: str, results: str, ranks: int) -> None:
    import psutil
    import torch
    import torch.distributed as dist

    import tuneflow_activities.offline  # noqa: F401
    from tuneflow_activities import sharding
    from tuneflow_activities.loaders import load_for_training
    from tuneflow_activities.payloads import TrainRequest, parse

    torch.cuda.set_device(0)
    dist.init_process_group("gloo", init_method=Path(directory, "rendezvous").as_uri(), rank=rank_index, world_size=ranks)
    request = multi_process.REQUESTS["qlora-fsdp-2"]
    parsed = parse(TrainRequest, request)
    loaded = load_for_training(MODEL, parsed.spec, parsed.setup)
    loaded_peak = torch.cuda.max_memory_allocated()
    sharding.fully_shard_model(loaded.model, "cuda")
    torch.cuda.synchronize()
    record = {
        "rank": rank_index,
        "peak_allocated_gib_while_loading_and_sharding": torch.cuda.max_memory_allocated() / GIB,
        "peak_allocated_gib_after_load_before_sharding": loaded_peak / GIB,
        "allocated_gib_after_sharding": torch.cuda.memory_allocated() / GIB,
        "host_rss_gib_after_sharding": psutil.Process().memory_info().rss / GIB,
        # The sharded parameters' global sizes: the whole model as stored (4-bit weights packed), adapter included.
        "whole_model_gib": sum(parameter.numel() * parameter.element_size() for parameter in loaded.model.parameters()) / GIB,
    }
    Path(results, f"{variant}-{rank_index}.json").write_text(json.dumps(record))
    dist.destroy_process_group()


def check_request() -> None:
    """The request the ranks load with, parsed as the worker parses a train request (the device's, not the CPU's)."""
    from tuneflow_activities.payloads import Spec, TrainingSetup, parse

    request = json.loads((Path(__file__).resolve().parent / "inputs" / "multi-process-requests.json").read_text())["requests"]["qlora-fsdp-2"]
    spec, setup = parse(Spec, request["spec"]), parse(TrainingSetup, request["setup"])
    if (setup.parallelism, setup.quantization, setup.processes) != ("fsdp", "4bit", 2):
        raise SystemExit(f"fsdp_load.py measures 4-bit FSDP over 2 ranks; the request's setup is {setup}")
    print(f"fsdp_load --check: qlora-fsdp-2 parses ({spec.model.source}, {setup.backend} {setup.quantization} {setup.parallelism} × {setup.processes})")


def main() -> None:
    import torch.multiprocessing

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--check", action="store_true", help="parse the request and exit (no CUDA needed)")
    arguments = parser.parse_args()
    if arguments.check:
        check_request()
        return
    if arguments.out is None:
        parser.error("--out is required")
    report = {
        "date": datetime.now(timezone.utc).isoformat(),
        "command": f"python3 bench/gpu/fsdp_load.py --out $OUT --ranks {arguments.ranks}",
        "model": str(MODEL),
        "variants": {},
    }
    if not (MODEL / "config.json").exists():
        multi_process.real_data.build(Path(tempfile.mkdtemp()), Path(".device/tokenizer"), multi_process.REQUESTS["qlora-1"]["spec"])
    for variant in ("tuneflow",):
        with tempfile.TemporaryDirectory() as directory, tempfile.TemporaryDirectory() as results:
            torch.multiprocessing.start_processes(rank, args=(variant, directory, results, arguments.ranks), nprocs=arguments.ranks, start_method="spawn")
            report["variants"][variant] = [json.loads(Path(results, f"{variant}-{index}.json").read_text()) for index in range(arguments.ranks)]
        print(variant, json.dumps(report["variants"][variant]), flush=True)
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / f"fsdp-load-{arguments.ranks}-ranks.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
