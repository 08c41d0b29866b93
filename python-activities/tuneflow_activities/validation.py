"""Payloads checked against the contract at the activity boundary.

The shapes are the JSON Schema files in schemas/, generated from the TypeScript contract's zod schemas
(`npm run generate:schemas`; a test keeps them current). Every activity validates its request on entry and its
result on exit, so a drift between the languages fails at once, naming the activity, the field and why, instead
of as a KeyError deep in training.
"""

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

from .contract import AcceleratorActivity, FailureType, WorkflowMessage
from .errors import failure

SCHEMAS_DIRECTORY = Path(__file__).parent / "schemas"


@functools.cache
def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS_DIRECTORY / f"{name}.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


# A JSON value as json.loads or Temporal's converter makes it (dicts, lists, strings, numbers, booleans, None).
JsonPayload = Any
# An activity's request or result: a JSON object.
JsonObject = dict[str, Any]


def validate(name: str, payload: JsonPayload, described_as: str) -> None:
    """Raises a non-retryable TuneflowContractViolation naming the first violation's JSON path."""
    # jsonschema's stub leaves one parameter of iter_errors' deprecated overload unannotated, hence the ignore.
    found: list[ValidationError] = list(_validator(name).iter_errors(payload))  # pyright: ignore[reportUnknownMemberType]
    errors = sorted(found, key=lambda error: list(error.absolute_path))
    if errors:
        first = errors[0]
        raise failure(
            FailureType.CONTRACT_VIOLATION,
            f"{described_as} violates the contract at {first.json_path}: {first.message}" + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
            schema=f"{name}.json",
            path=first.json_path,
            violations=[{"path": error.json_path, "message": error.message} for error in errors[:20]],
        )


def validate_request(activity: AcceleratorActivity, request: JsonPayload) -> None:
    validate(f"{activity.value}.request", request, f"the {activity.value} request")


def validate_result(activity: AcceleratorActivity, result: JsonPayload) -> None:
    validate(f"{activity.value}.result", result, f"the {activity.value} result")


def validate_message(message: WorkflowMessage, payload: JsonPayload) -> None:
    validate(f"{message.value}.message", payload, f"the {message.value} message")


def validate_train_heartbeat(details: JsonPayload) -> None:
    validate("train.heartbeat", details, "the train heartbeat")


def validate_phase_heartbeat(details: JsonPayload) -> None:
    validate("phase.heartbeat", details, "the heartbeat")


def checked(activity: AcceleratorActivity) -> Callable[[Callable[[JsonObject], JsonObject]], Callable[[JsonObject], JsonObject]]:
    """Wraps an activity body: its request is validated before it runs and its result before it returns."""

    def decorate(body: Callable[[JsonObject], JsonObject]) -> Callable[[JsonObject], JsonObject]:
        @functools.wraps(body)
        def run(request: JsonObject) -> JsonObject:
            validate_request(activity, request)
            result = body(request)
            validate_result(activity, result)
            return result

        return run

    return decorate
