import copy
import ctypes
import json
import os
import shutil
from pathlib import Path

import pytest

import tuneflow_activities.offline  # noqa: F401  (before any Hugging Face import)
from tuneflow_activities.artifacts import uri_to_path
from tuneflow_activities.data import tokenize_dataset
from tuneflow_activities.models import (
    TINY_RANDOM_LLAMA,
    model_uri,
    resolve_model_directory,
    tokenizer_identity,
)
from tuneflow_activities.training import train


def _keep_freed_memory_in_the_heap() -> None:
    """The test process only: glibc keeps freed buffers in the heap instead of handing them back to the kernel.

    By default glibc serves a large allocation (a step's ~80 MB logits) with its own mmap and unmaps it when freed;
    the next step maps it again and faults in every page anew. Over the suite that was 160 of its 446 s of CPU, spent
    in the kernel (78 million page faults). With both thresholds at 1 GiB the buffers stay in the heap and are reused. The
    product's worker keeps MALLOC_MMAP_THRESHOLD_=65536 (src/runtime/gpu-worker.ts): there the planner predicts the
    memory in use, so freed memory must go back; no test here measures the resident memory. The processes the tests
    start (distributed ranks, the launchers of test_distributed and test_training) get the same through the variables
    below, which they inherit; where the environment already sets one, the children keep that value."""
    threshold = 1 << 30
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc: nothing to tune
    libc.mallopt(-3, threshold)  # M_MMAP_THRESHOLD
    libc.mallopt(-1, threshold)  # M_TRIM_THRESHOLD
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(threshold))
    os.environ.setdefault("MALLOC_TRIM_THRESHOLD_", str(threshold))


_keep_freed_memory_in_the_heap()


QUICKSTART_DATA = Path(__file__).resolve().parents[2] / "examples" / "quickstart" / "data.jsonl"

# A parsed spec: every default applied, as the workflow sends it.
TINY_SPEC = {
    "model": {"source": TINY_RANDOM_LLAMA, "max_seq_length": 128},
    "dataset": {"path": str(QUICKSTART_DATA), "format": "auto", "seed": 42, "max_invalid_fraction": 0.01, "overlong": "truncate"},
    "lora": {"r": 8, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear", "use_rslora": False},
    "train": {
        "epochs": 1,
        "max_steps": 12,
        "micro_batch_size": 4,
        "gradient_accumulation_steps": 2,
        "learning_rate": 0.02,
        "lr_scheduler": "cosine",
        "warmup_steps": 2,
        "weight_decay": 0.01,
        "max_grad_norm": 1.0,
        "optimizer": "auto",
        "gradient_checkpointing": "auto",
        "packing": "auto",
        "loss_on": "responses",
        "seed": 42,
        "heartbeat_timeout_seconds": 120,
        "log_every_steps": 1,
        "objective": {"kind": "sft"},
        "rollback": {
            "enabled": True,
            "window_steps": 50,
            "min_history_steps": 20,
            "z_threshold": 10,
            "max_rollbacks": 3,
            "learning_rate_factor": 1,
            "gradient_norm_z_threshold": None,
        },
    },
    "checkpoint": {"every_steps": 4, "keep_last": 5, "keep_best": True},
    "validation": {"every_steps": None, "early_stopping_patience": None, "early_stopping_min_delta": 0.0},
    "merge": {"enabled": True, "dtype": "auto"},
    "evaluate": {
        "enabled": True,
        "sample_prompts": ["Extract the person as JSON.\n\nAnna, 52, baker in Gdansk."],
        "max_new_tokens": 6,
        "suites": [],
        "suite_rows": 64,
        "gates": [],
    },
    "device": {"type": "cpu", "gpu": "auto", "gpu_count": 1, "parallelism": "auto", "cpu_processes": 1, "backend": "auto", "quantization": "none"},
}

# What TypeScript's resolveTrainingSetup decides for TINY_SPEC on a CPU worker; requests carry it, never `auto`.
CPU_SETUP = {
    "device": "cpu",
    "backend": "hf-peft",
    "quantization": "none",
    "dtype": "float32",
    "gradient_checkpointing": False,
    "micro_batch_size": 4,
    "gradient_accumulation_steps": 2,
    "optimizer": "adamw_torch",
    "packing": False,
    "processes": 1,
    "parallelism": "single",
}


def with_spec_batch(setup: dict, spec: dict) -> dict:
    """The setup with the spec's fixed micro-batch and accumulation: what resolveTrainingSetup decides for a spec that
    fixes them, so a test that changes the spec's batch trains with it."""
    train = spec["train"]
    return setup | {"micro_batch_size": train["micro_batch_size"], "gradient_accumulation_steps": train.get("gradient_accumulation_steps", 1)}


def chat_row(number: int, row: dict) -> dict:
    return {
        "kind": "chat",
        "source": {"file": "data.jsonl", "row": number},
        "messages": [
            {"role": "user", "content": f"{row['instruction']}\n\n{row['input']}"},
            {"role": "assistant", "content": row["output"]},
        ],
    }


@pytest.fixture(scope="session")
def prepared(tmp_path_factory) -> dict:
    """The quickstart rows in the prepared (normalised) format the TypeScript prepare stage writes."""
    directory = tmp_path_factory.mktemp("datasets") / "0123abcd"
    directory.mkdir()
    rows = [chat_row(number, json.loads(line)) for number, line in enumerate(QUICKSTART_DATA.read_text().splitlines(), 1)]
    (directory / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[:96]))
    (directory / "val.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[96:112]))
    return {"train_uri": (directory / "train.jsonl").as_uri(), "val_uri": (directory / "val.jsonl").as_uri()}


def preference_row(number: int, row: dict, wrong: dict) -> dict:
    """A quickstart row as a preference pair: its own answer chosen, another person's answer rejected."""
    return {
        "kind": "preference",
        "source": {"file": "data.jsonl", "row": number},
        "prompt": [{"role": "user", "content": f"{row['instruction']}\n\n{row['input']}"}],
        "chosen": [{"role": "assistant", "content": row["output"]}],
        "rejected": [{"role": "assistant", "content": wrong["output"]}],
    }


@pytest.fixture(scope="session")
def preference_prepared(tmp_path_factory) -> dict:
    """The quickstart rows as prepared preference pairs (what prepare writes for a preference dataset)."""
    directory = tmp_path_factory.mktemp("datasets") / "4567cdef"
    directory.mkdir()
    rows = [json.loads(line) for line in QUICKSTART_DATA.read_text().splitlines()]
    pairs = [preference_row(number, row, rows[(number + 7) % len(rows)]) for number, row in enumerate(rows, 1)]
    # Few pairs, seen over several epochs: the tiny random model learns them, it cannot generalise in a dozen steps.
    (directory / "train.jsonl").write_text("".join(json.dumps(pair) + "\n" for pair in pairs[:8]))
    # 8 held-out pairs: every dpo validation scores each pair under the policy and the reference, and no test needs more.
    (directory / "val.jsonl").write_text("".join(json.dumps(pair) + "\n" for pair in pairs[96:104]))
    return {"train_uri": (directory / "train.jsonl").as_uri(), "val_uri": (directory / "val.jsonl").as_uri()}


@pytest.fixture(scope="session")
def tiny_model_uri() -> str:
    return model_uri(resolve_model_directory(TINY_RANDOM_LLAMA))


def token_statistics(prepared: dict, model_uri: str) -> dict:
    """What the token_statistics activity returns for prepared rows: statistics and the token ids' URIs."""
    request = {
        "spec": TINY_SPEC,
        "model_uri": model_uri,
        "tokenizer_identity": tokenizer_identity(resolve_model_directory(TINY_RANDOM_LLAMA).directory),
        **prepared,
    }
    return tokenize_dataset(request)


@pytest.fixture(scope="session")
def tokens(prepared, tiny_model_uri) -> dict:
    return token_statistics(prepared, tiny_model_uri)


@pytest.fixture(scope="session")
def preference_tokens(preference_prepared, tiny_model_uri) -> dict:
    return token_statistics(preference_prepared, tiny_model_uri)


@pytest.fixture
def spec() -> dict:
    return copy.deepcopy(TINY_SPEC)


@pytest.fixture
def setup() -> dict:
    return dict(CPU_SETUP)


def request_for(spec: dict, setup: dict, tokens: dict, model_uri: str, run_directory: Path, **overrides) -> dict:
    """A train request as the workflow sends it: the spec, the setup decided for it, the token ids and the run's URI."""
    return {
        "spec": spec,
        "setup": with_spec_batch(setup, spec),
        "model_uri": model_uri,
        "train_tokens_uri": tokens["train_tokens_uri"],
        "val_tokens_uri": tokens["val_tokens_uri"],
        "run_uri": run_directory.as_uri(),
        **overrides,
    }


@pytest.fixture
def train_request(spec, setup, tokens, tiny_model_uri, tmp_path):
    def build(run_name: str = "run", **overrides) -> dict:
        return request_for(spec, setup, tokens, tiny_model_uri, tmp_path / run_name, **overrides)

    return build


@pytest.fixture(scope="session")
def straight_run(tokens, tiny_model_uri, tmp_path_factory) -> tuple[dict, dict]:
    """One uninterrupted run of TINY_SPEC (12 steps, checkpoints at 4, 8 and 12), its request and its result, trained
    once for the tests that need that run: an interrupted run must end with its adapter, a corrupt or incompatible
    checkpoint is made in a copy of it (copied_run), test_outputs_load loads its adapter. No test writes into it."""
    request = request_for(copy.deepcopy(TINY_SPEC), dict(CPU_SETUP), tokens, tiny_model_uri, tmp_path_factory.mktemp("straight") / "run")
    return request, train(request)


def copied_run(request: dict, directory: Path) -> dict:
    """The request with its run directory (checkpoints, log, adapter) copied to `directory`: a test that changes a
    run's checkpoints, or resumes it, does so in a copy and leaves the shared run as it was."""
    shutil.copytree(uri_to_path(request["run_uri"]), directory)
    return copy.deepcopy(request) | {"run_uri": directory.as_uri()}
