"""The typed requests (payloads.py) name exactly the fields of the contract's JSON Schemas, and a bad payload is
refused naming the field's path."""

import copy
import dataclasses
import json
import types
import typing

import pytest
from conftest import CPU_SETUP, TINY_SPEC
from temporalio.exceptions import ApplicationError

from tuneflow_activities.contract import FailureType
from tuneflow_activities.payloads import (
    DpoObjective,
    EvaluateRequest,
    ExportGgufRequest,
    MergeRequest,
    ResolveModelRequest,
    SftObjective,
    TokenStatisticsRequest,
    TrainRequest,
    VerifyCheckpointsRequest,
    parse,
)
from tuneflow_activities.validation import SCHEMAS_DIRECTORY

REQUESTS = {
    "train": TrainRequest,
    "evaluate": EvaluateRequest,
    "merge": MergeRequest,
    "token_statistics": TokenStatisticsRequest,
    "resolve_model": ResolveModelRequest,
    "verify_checkpoints": VerifyCheckpointsRequest,
    "export_gguf": ExportGgufRequest,
}


def differences(kind, schema: dict, path: str) -> list[str]:
    """Where a dataclass and a JSON Schema object disagree: property names, required-ness, nested objects."""
    if "oneOf" in schema or "anyOf" in schema:
        options = schema.get("oneOf") or schema.get("anyOf")
        objects = [option for option in options if option.get("type") == "object"]
        classes = [option for option in typing.get_args(kind) if dataclasses.is_dataclass(option)]
        if objects and classes:
            by_kind = {typing.get_args(typing.get_type_hints(option)["kind"])[0]: option for option in classes}
            found = [f"{path}: kinds {sorted(by_kind)} != {sorted(o['properties']['kind']['const'] for o in objects)}"]
            if sorted(by_kind) != sorted(option["properties"]["kind"]["const"] for option in objects):
                return found
            return [entry for option in objects for entry in differences(by_kind[option["properties"]["kind"]["const"]], option, path)]
        return []
    if schema.get("type") != "object" or "properties" not in schema:
        return []
    while typing.get_origin(kind) in (typing.Union, types.UnionType):
        kind = next(option for option in typing.get_args(kind) if option is not type(None))
    if not dataclasses.is_dataclass(kind):
        return [f"{path}: an object in the schema, {kind} here"]
    fields = {entry.name: entry for entry in dataclasses.fields(kind) if entry.name not in getattr(kind, "WORKER_FIELDS", ())}
    found = []
    if set(fields) != set(schema["properties"]):
        found.append(f"{path}: fields {sorted(set(fields) ^ set(schema['properties']))} differ")
    hints = typing.get_type_hints(kind)
    for name, entry in fields.items():
        if name not in schema["properties"]:
            continue
        required_here = entry.default is dataclasses.MISSING and entry.default_factory is dataclasses.MISSING
        if required_here != (name in schema.get("required", [])):
            found.append(f"{path}.{name}: required {required_here} here, {not required_here} in the schema")
        # A section only TypeScript reads travels as plain JSON: its shape is checked by the JSON Schema alone.
        if name not in getattr(kind, "TYPESCRIPT_ONLY", ()):
            found += differences(hints[name], schema["properties"][name], f"{path}.{name}")
    return found


@pytest.mark.parametrize("activity", sorted(REQUESTS))
def test_each_typed_request_names_exactly_the_fields_of_its_schema(activity):
    schema = json.loads((SCHEMAS_DIRECTORY / f"{activity}.request.json").read_text())
    assert differences(REQUESTS[activity], schema, "request") == []


def payload(**spec_changes) -> dict:
    spec = copy.deepcopy(TINY_SPEC)
    for path, value in spec_changes.items():
        section, name = path.split("__")
        spec[section][name] = value
    return {"spec": spec, "setup": CPU_SETUP, "model_uri": "file:///m", "run_uri": "file:///r", "train_tokens_uri": "file:///t", "val_tokens_uri": "file:///v"}


def test_a_train_payload_parses_into_attributes():
    request = parse(TrainRequest, payload(train__objective={"kind": "dpo", "beta": 0.2, "loss_type": "ipo", "label_smoothing": 0}))
    assert request.spec.train.objective == DpoObjective(kind="dpo", beta=0.2, loss_type="ipo", label_smoothing=0.0)
    assert request.spec.lora.target_modules == "all-linear" and request.setup.optimizer == "adamw_torch" and request.attempt == 1
    assert parse(TrainRequest, payload()).spec.train.objective == SftObjective(kind="sft")


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"train__objective": {"kind": "dpo", "beta": "high", "loss_type": "sigmoid", "label_smoothing": 0}}, "request.spec.train.objective.beta", "a number"),
        ({"train__objective": {"kind": "ppo"}}, "request.spec.train.objective.kind", "'sft', 'dpo'"),
        ({"train__objective": {"kind": "dpo", "beta": 0.1, "loss_type": "hinge", "label_smoothing": 0}}, "request.spec.train.objective.loss_type", "'ipo'"),
        ({"train__micro_batch_size": 2.5}, "request.spec.train.micro_batch_size", "an integer"),
        ({"train__seed": True}, "request.spec.train.seed", "an integer"),
        ({"lora__target_modules": ["q_proj", 3]}, "request.spec.lora.target_modules", "'all-linear'"),
        ({"train__surprise": 1}, "request.spec.train.surprise", "not a field"),
    ],
)
def test_a_bad_payload_is_refused_naming_the_field(changes, field, says):
    with pytest.raises(ApplicationError) as refused:
        parse(TrainRequest, payload(**changes))
    assert refused.value.type == FailureType.CONTRACT_VIOLATION.value and refused.value.non_retryable
    assert refused.value.message.startswith(f"{field}:") and says in refused.value.message
    assert refused.value.details[0]["field"] == field


def test_a_missing_field_is_refused_naming_it():
    broken = payload()
    del broken["spec"]["train"]["objective"]
    with pytest.raises(ApplicationError) as refused:
        parse(TrainRequest, broken)
    assert refused.value.message == "request.spec.train.objective: is missing"
