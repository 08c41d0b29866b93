"""Every payload of a real run on the tiny model matches the contract's generated JSON Schema, and a payload that
does not is refused at the boundary with a typed, non-retryable failure naming the activity and the field.

The run is driven through the Temporal activities (ActivityEnvironment) with requests built as the workflow builds
them: the spec parsed by the TypeScript spec schema, the setup decided by TypeScript's resolveTrainingSetup from the
facts resolve_model reported.
"""

import json
import subprocess
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from tuneflow_activities import activities
from tuneflow_activities.contract import AcceleratorActivity, FailureType, WorkflowMessage
from tuneflow_activities.models import TINY_RANDOM_LLAMA
from tuneflow_activities.validation import (
    validate_message,
    validate_phase_heartbeat,
    validate_request,
    validate_result,
    validate_train_heartbeat,
)

REPOSITORY = Path(__file__).resolve().parents[2]

# Parses a spec and decides its setup exactly as the workflow's stages do (runSpecSchema, resolveTrainingSetup).
DECIDE_AS_THE_WORKFLOW = """
import { runSpecSchema } from './src/spec/schema.ts';
import { resolveTrainingSetup } from './src/setup/index.ts';
let input = '';
for await (const chunk of process.stdin) input += chunk;
const { spec_input, facts } = JSON.parse(input);
const spec = runSpecSchema.parse(spec_input);
console.log(JSON.stringify({ spec, setup: facts ? resolveTrainingSetup(spec, facts) : null }));
"""


def decide_as_the_workflow(spec_input: dict, facts: dict | None = None) -> dict:
    completed = subprocess.run(
        [str(REPOSITORY / "node_modules" / ".bin" / "tsx"), "--input-type=module", "-e", DECIDE_AS_THE_WORKFLOW],
        input=json.dumps({"spec_input": spec_input, "facts": facts}),
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        check=True,
    )
    return json.loads(completed.stdout)


class RecordingWorkflowLink:
    """Stands in for the workflow the train activity talks to: records its signals, answers its control query."""

    def __init__(self):
        self.signals: list[tuple[WorkflowMessage, dict]] = []
        self.control = {"paused": False, "checkpoint_requests": 0}

    def signal(self, name: WorkflowMessage, payload: dict) -> None:
        self.signals.append((name, payload))

    def ask(self, name: WorkflowMessage) -> dict:
        return self.control

    def poll(self, name: WorkflowMessage) -> dict:
        return self.control

    def flush(self) -> None:
        pass


@pytest.fixture(scope="module")
def run(prepared, tmp_path_factory) -> dict:
    """One real run through every activity: each activity's request, result and heartbeats, and the train messages."""
    spec_input = {
        "model": {"source": TINY_RANDOM_LLAMA, "max_seq_length": 128},
        "dataset": {"path": str(Path(prepared["train_uri"].removeprefix("file://")))},
        "lora": {"r": 4},
        "train": {"max_steps": 4, "micro_batch_size": 4, "learning_rate": 0.01},
        "checkpoint": {"every_steps": 2},
        "evaluate": {"sample_prompts": ["Extract the person as JSON.\n\nAnna, 52, baker in Gdansk."], "max_new_tokens": 4},
        "device": {"type": "cpu"},
    }
    spec = decide_as_the_workflow(spec_input)["spec"]
    run_uri = (tmp_path_factory.mktemp("contract") / "run").as_uri()
    recorded: dict = {"heartbeats": {}}
    link = RecordingWorkflowLink()

    def call(name: str, function, request: dict) -> dict:
        environment = ActivityEnvironment()
        heartbeats: list = []
        environment.on_heartbeat = lambda *details: heartbeats.extend(details)
        result = environment.run(function, request)
        recorded[name] = {"request": request, "result": result}
        recorded["heartbeats"][name] = heartbeats
        return result

    facts = call("resolve_model", activities.resolve_model, {"spec": spec})
    setup = decide_as_the_workflow(spec_input, facts)["setup"]
    model_uri = facts["model_uri"]
    statistics_request = {"spec": spec, "model_uri": model_uri, "tokenizer_identity": facts["tokenizer_identity"], **prepared}
    tokens = call("token_statistics", activities.token_statistics, statistics_request)
    token_uris = {"train_tokens_uri": tokens["train_tokens_uri"], "val_tokens_uri": tokens["val_tokens_uri"]}
    previous_link, activities._workflow_link = activities._workflow_link, link
    try:
        trained = call("train", activities.train, {"spec": spec, "setup": setup, "model_uri": model_uri, **token_uris, "run_uri": run_uri})
    finally:
        activities._workflow_link = previous_link
    adapter_uri = trained["adapter_uri"]
    call("verify_checkpoints", activities.verify_checkpoints, {"run_uri": run_uri})
    merged = call("merge", activities.merge, {"spec": spec, "setup": setup, "model_uri": model_uri, "adapter_uri": adapter_uri, "run_uri": run_uri})
    call("export_gguf", activities.export_gguf, {"model_uri": merged["merged_uri"], "run_uri": run_uri, "formats": ["q8_0"], "name": "tiny"})
    evaluate_request = {"spec": spec, "setup": setup, "model_uri": model_uri, "adapter_uri": adapter_uri, "val_tokens_uri": tokens["val_tokens_uri"]}
    call("evaluate", activities.evaluate, evaluate_request)
    recorded["signals"] = link.signals
    recorded["control"] = link.control
    return recorded


@pytest.mark.parametrize("activity", list(AcceleratorActivity))
def test_every_request_and_result_of_a_real_run_matches_the_schema(run, activity):
    validate_request(activity, run[activity.value]["request"])
    validate_result(activity, run[activity.value]["result"])


def test_resolve_model_reports_facts_and_decides_nothing(run):
    facts = run["resolve_model"]["result"]
    assert facts["config"]["model_type"] == "llama"
    assert facts["device"]["kind"] == "cpu"
    assert "training" not in facts and "architecture" not in facts


def test_heartbeats_and_progress_messages_match_the_schema(run):
    for activity, heartbeats in run["heartbeats"].items():
        assert heartbeats, f"{activity} never heartbeat"
        for details in heartbeats:
            if activity == "train" and "phase" not in details:
                validate_train_heartbeat(details)
            else:
                validate_phase_heartbeat(details)
    assert any("step" in details for details in run["heartbeats"]["train"])
    # A checkpoint every 2 of 4 steps: two progress messages.
    assert [payload["step"] for name, payload in run["signals"] if name == WorkflowMessage.TRAINING_PROGRESS] == [2, 4]
    for name, payload in run["signals"]:
        validate_message(name, payload)
    validate_message(WorkflowMessage.TRAINING_CONTROL, run["control"])


def contract_violation(function, request: dict) -> ApplicationError:
    with pytest.raises(ApplicationError) as raised:
        ActivityEnvironment().run(function, request)
    error = raised.value
    assert error.type == FailureType.CONTRACT_VIOLATION.value
    assert error.non_retryable
    return error


def test_a_request_missing_a_field_fails_naming_the_activity_and_the_field(run):
    spec = json.loads(json.dumps(run["resolve_model"]["request"]["spec"]))
    del spec["model"]["source"]
    error = contract_violation(activities.resolve_model, {"spec": spec})
    assert "resolve_model request" in error.message
    assert "$.spec.model" in error.message and "'source' is a required property" in error.message


def test_a_train_request_with_an_undecided_setup_is_refused_before_training(run):
    request = json.loads(json.dumps(run["train"]["request"]))
    request["setup"]["backend"] = "auto"
    error = contract_violation(activities.train, request)
    assert "train request" in error.message and "$.setup.backend" in error.message
