"""The accelerator activities' requests as typed, frozen objects: parsed once where a request enters the worker.

The shapes are the contract's (src/contract, generated into schemas/*.json and validated there first); this module
gives them attributes, so the engine, the objectives and the loaders read `request.spec.train.seed`, not string
keys. The parsed spec has every default applied by TypeScript: a field the schema requires is required here too, and
an optional one is None when absent. tests/test_payloads.py proves every class names exactly its schema's
properties and required fields, so the two cannot drift apart.
"""

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Literal, TypeVar, Union, cast, get_args, get_origin, get_type_hints

from .contract import FailureType
from .errors import failure

T = TypeVar("T")

Overlong = Literal["drop", "truncate", "fail"]
LossOn = Literal["responses", "all"]
Device = Literal["cuda", "cpu"]
Backend = Literal["unsloth", "hf-peft"]
Quantization = Literal["none", "4bit", "8bit"]
Dtype = Literal["bfloat16", "float16", "float32"]
Optimizer = Literal["adamw_torch", "adamw_8bit", "paged_adamw_8bit"]
Parallelism = Literal["single", "ddp", "fsdp"]


@dataclass(frozen=True)
class ModelSpec:
    source: str
    max_seq_length: int


@dataclass(frozen=True)
class DatasetSpec:
    path: str
    # The prepare stage (TypeScript) reads the format; the worker only sees normalised rows.
    format: str
    seed: int
    max_invalid_fraction: float
    overlong: Overlong
    val_path: str | None = None
    val_fraction: float | None = None
    val_count: int | None = None


@dataclass(frozen=True)
class LoraSpec:
    r: int
    alpha: float
    dropout: float
    target_modules: Literal["all-linear"] | list[str]
    use_rslora: bool


@dataclass(frozen=True)
class SftObjective:
    kind: Literal["sft"]


@dataclass(frozen=True)
class DpoObjective:
    kind: Literal["dpo"]
    beta: float
    loss_type: Literal["sigmoid", "ipo"]
    label_smoothing: float


Objective = SftObjective | DpoObjective


@dataclass(frozen=True)
class RollbackSpec:
    """train.rollback: the loss-spike and NaN rule (rollback.py)."""

    enabled: bool
    window_steps: int
    min_history_steps: int
    z_threshold: float
    max_rollbacks: int
    learning_rate_factor: float
    gradient_norm_z_threshold: float | None


@dataclass(frozen=True)
class TrainSpec:
    epochs: float
    # A number or 'auto', and the effective batch: the worker trains with the setup's decided split
    # (TrainingSetup.micro_batch_size and gradient_accumulation_steps), never these.
    micro_batch_size: int | str
    learning_rate: float
    lr_scheduler: Literal["linear", "cosine", "constant"]
    warmup_steps: int
    weight_decay: float
    max_grad_norm: float
    # 'auto' or a name: the worker trains with the setup's resolved values (TrainingSetup), never these.
    optimizer: str
    gradient_checkpointing: bool | str
    packing: bool | str
    loss_on: LossOn
    seed: int
    heartbeat_timeout_seconds: int
    log_every_steps: int
    objective: Objective
    rollback: RollbackSpec
    max_steps: int | None = None
    gradient_accumulation_steps: int | None = None
    batch_size: int | None = None


@dataclass(frozen=True)
class CheckpointSpec:
    every_steps: int
    keep_last: int
    keep_best: bool
    every_minutes: float | None = None


@dataclass(frozen=True)
class ValidationSpec:
    every_steps: int | None
    early_stopping_patience: int | None
    early_stopping_min_delta: float
    max_rows: int | None = None


@dataclass(frozen=True)
class MergeSpec:
    enabled: bool
    dtype: Literal["auto", "float32", "bfloat16", "float16"]


@dataclass(frozen=True)
class EvaluateSpec:
    enabled: bool
    sample_prompts: list[str]
    max_new_tokens: int
    # Each suite as its JSON object (src/quality/suites.ts; the JSON Schema checked its shape): suites.py reads them.
    suites: list[dict[str, object]]
    suite_rows: int
    # The promotion gates: TypeScript judges them (src/quality/gates.ts); the worker never reads them.
    gates: list[dict[str, object]]
    max_rows: int | None = None
    references_path: str | None = None


@dataclass(frozen=True)
class DeviceSpec:
    type: Literal["auto", "cpu", "cuda"]
    gpu: str
    gpu_count: int
    parallelism: Literal["auto", "ddp", "fsdp"]
    cpu_processes: int
    backend: Literal["auto", "unsloth", "hf-peft"]
    quantization: Quantization
    gpu_memory_gib: float | None = None


@dataclass(frozen=True)
class Spec:
    model: ModelSpec
    dataset: DatasetSpec
    lora: LoraSpec
    train: TrainSpec
    checkpoint: CheckpointSpec
    validation: ValidationSpec
    merge: MergeSpec
    evaluate: EvaluateSpec
    device: DeviceSpec
    name: str | None = None
    # A sweep's grid: TypeScript expands it into trials (src/sweep); the worker never reads it, so it stays plain JSON
    # (validated against the JSON Schema like the rest of the request).
    sweep: dict[str, object] | None = None

    TYPESCRIPT_ONLY: typing.ClassVar = ("sweep",)


@dataclass(frozen=True)
class TrainingSetup:
    """The resolved training setup (TypeScript's resolveTrainingSetup): no `auto`, so the worker cannot decide
    differently from the plan."""

    device: Device
    backend: Backend
    quantization: Quantization
    dtype: Dtype
    gradient_checkpointing: bool
    # Sequences per forward pass and passes per optimizer step, per process: decided by the planner (fastest-fit.ts)
    # or fixed by the spec, and lowered by an out-of-memory recovery with their product kept.
    micro_batch_size: int
    gradient_accumulation_steps: int
    optimizer: Optimizer
    packing: bool
    # Processes that train the run (one per GPU) and how they share it (distributed.py, sharding.py).
    processes: int
    parallelism: Parallelism

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)

    @property
    def pads_to_fixed_shapes(self) -> bool:
        """Unsloth compiles each decoder block per input shape (15-30 s each on an H200): batches are padded to
        a few fixed lengths instead of to their longest row."""
        return self.backend == "unsloth"

    def for_evaluation(self) -> "TrainingSetup":
        """The setup evaluation scores with: training's, each example on its own (no packs: the objectives score
        packed rows only while training)."""
        return dataclasses.replace(self, packing=False)

    def for_merging(self, dtype: Dtype) -> "TrainingSetup":
        """The setup a merge loads the base with: hf-peft on the CPU, unquantised, in `dtype`.

        A quantised run merges into the 16-bit base, never into its 4/8-bit weights: merging into quantised weights
        would round the adapter's update back onto the quantisation grid (and bitsandbytes layers cannot be saved as
        a plain checkpoint), while the original weights plus the adapter are the model that was meant. The adapter was
        trained against the dequantised weights, so the merged model differs from the trained one by the base's
        quantisation error, which is what every QLoRA merge accepts. The CPU holds the whole base wherever it trains.
        """
        return dataclasses.replace(self, device="cpu", backend="hf-peft", quantization="none", dtype=dtype, processes=1, parallelism="single")


@dataclass(frozen=True)
class ResolveModelRequest:
    spec: Spec


@dataclass(frozen=True)
class TokenStatisticsRequest:
    spec: Spec
    model_uri: str
    tokenizer_identity: str
    train_uri: str
    val_uri: str


@dataclass(frozen=True)
class TrainRequest:
    spec: Spec
    setup: TrainingSetup
    model_uri: str
    run_uri: str
    train_tokens_uri: str
    val_tokens_uri: str
    # A sweep's rung: train to this step, checkpoint and stop; training again later resumes there.
    stop_at_step: int | None = None
    # Not in the contract: the worker adds them. The activity's attempt (which attempt trained which step), and, on
    # object storage, the URIs in the store of the inputs it trains on from a local copy (object_store.py).
    attempt: int = 1
    stored_uris: dict[str, str] = field(default_factory=dict)

    WORKER_FIELDS: typing.ClassVar = ("attempt", "stored_uris")


@dataclass(frozen=True)
class MergeRequest:
    spec: Spec
    setup: TrainingSetup
    model_uri: str
    adapter_uri: str
    run_uri: str


@dataclass(frozen=True)
class VerifyCheckpointsRequest:
    run_uri: str


@dataclass(frozen=True)
class ExportGgufRequest:
    model_uri: str
    run_uri: str
    # Checked by the exporter, which names the formats it writes (exporting.GGUF_FORMATS).
    formats: list[str]
    name: str


@dataclass(frozen=True)
class ReferenceAnswer:
    # The reference row's place in its source (suites.ReferenceRow.row).
    row: int
    answer: str


@dataclass(frozen=True)
class ChallengerAnswers:
    """Retraining: the evaluated adapter is champion v`champion_version`; its judge suites compare the challenger's
    answers (from the challenger's own evaluation) with the champion's."""

    champion_version: int
    answers: list[ReferenceAnswer]


@dataclass(frozen=True)
class EvaluateRequest:
    spec: Spec
    setup: TrainingSetup
    model_uri: str
    adapter_uri: str
    val_tokens_uri: str
    challenger: ChallengerAnswers | None = None


def parse(kind: type[T], payload: object, path: str = "request") -> T:
    """`payload` (decoded JSON) as a `kind`, checked field by field; a missing, unexpected or mistyped field fails
    non-retryably, naming its path (`request.spec.train.objective.beta`)."""
    # _parse builds a `kind` from the payload or raises; its own return type is the union of all it can build.
    return cast(T, _parse(kind, payload, path))


def _refuse(path: str, message: str) -> Exception:
    return failure(FailureType.CONTRACT_VIOLATION, f"{path}: {message}", field=path)


def _parse(kind, value, path: str):
    origin = get_origin(kind)
    if dataclasses.is_dataclass(kind):
        return _parse_object(kind, value, path)
    if origin is Literal:
        if value not in get_args(kind):
            raise _refuse(path, f"is {value!r}; expected one of {', '.join(map(repr, get_args(kind)))}")
        return value
    if origin in (Union, types.UnionType):
        return _parse_union(get_args(kind), value, path)
    if origin is list:
        if not isinstance(value, list):
            raise _refuse(path, f"is {type(value).__name__}; expected a list")
        (item,) = get_args(kind)
        return [_parse(item, element, f"{path}[{index}]") for index, element in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _refuse(path, f"is {type(value).__name__}; expected an object")
        return dict(value)
    if kind is type(None):
        if value is not None:
            raise _refuse(path, f"is {value!r}; expected null")
        return None
    # JSON numbers: an int is a float too, a bool is neither.
    accepted = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}[kind]
    if not isinstance(value, accepted) or (isinstance(value, bool) and kind is not bool):
        raise _refuse(path, f"is {value!r}; expected {'a number' if kind is float else 'an integer' if kind is int else 'a ' + kind.__name__}")
    return float(value) if kind is float else value


def _parse_object(kind, value, path: str):
    if not isinstance(value, dict):
        raise _refuse(path, f"is {type(value).__name__}; expected an object")
    fields = {entry.name: entry for entry in dataclasses.fields(kind)}
    unexpected = sorted(set(value) - set(fields))
    if unexpected:
        raise _refuse(f"{path}.{unexpected[0]}", "is not a field of the contract")
    hints = get_type_hints(kind)
    parsed = {}
    for name, entry in fields.items():
        if name in value:
            parsed[name] = _parse(hints[name], value[name], f"{path}.{name}")
        elif entry.default is dataclasses.MISSING and entry.default_factory is dataclasses.MISSING:
            raise _refuse(f"{path}.{name}", "is missing")
    return kind(**parsed)


def _parse_union(options: tuple, value, path: str):
    if value is None and type(None) in options:
        return None
    present = [option for option in options if option is not type(None)]
    if len(present) == 1:
        # An optional field: its one type names its errors.
        return _parse(present[0], value, path)
    # A discriminated union (the objective): the `kind` field picks the class.
    objects = [option for option in options if dataclasses.is_dataclass(option)]
    if objects and isinstance(value, dict):
        kinds = {get_args(get_type_hints(option)["kind"])[0]: option for option in objects}
        if value.get("kind") not in kinds:
            raise _refuse(f"{path}.kind", f"is {value.get('kind')!r}; expected one of {', '.join(map(repr, kinds))}")
        return _parse_object(kinds[value["kind"]], value, path)
    failures = []
    for option in present:
        try:
            return _parse(option, value, path)
        except Exception as error:
            failures.append(str(error).removeprefix(f"{path}: "))
    raise _refuse(path, " or ".join(failures))
