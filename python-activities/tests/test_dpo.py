"""The dpo objective on the tiny model on CPU: the loss starts at log 2 (the policy is the reference until the adapter
moves) and falls, a stopped run resumes bit for bit, evaluation scores base and tuned on the pairs, packing is refused."""

import copy
import json
import math

import pytest
import torch
from conftest import CPU_SETUP, TINY_SPEC, copied_run, request_for
from safetensors.torch import load_file
from temporalio.exceptions import ApplicationError
from test_training import adapter_digest, stop_after

from tuneflow_activities.artifacts import uri_to_path
from tuneflow_activities.contract import FailureType
from tuneflow_activities.evaluation import evaluate
from tuneflow_activities.objectives.dpo import DirectPreferenceOptimization, PairLogProbabilities
from tuneflow_activities.payloads import Spec, TrainingSetup, parse
from tuneflow_activities.training import StopRequested, train

DPO = {"kind": "dpo", "beta": 0.1, "loss_type": "sigmoid", "label_smoothing": 0.0}


def with_dpo(spec: dict) -> dict:
    """The spec for the dpo objective on 8 preference pairs, 4 a step (2 × 2 accumulation), 12 steps."""
    spec["train"].update(objective=dict(DPO), epochs=6, max_steps=12, micro_batch_size=2, gradient_accumulation_steps=2, learning_rate=0.02, warmup_steps=0)
    return spec


@pytest.fixture
def dpo_request(train_request, spec, preference_tokens):
    """A train request for the dpo objective (with_dpo's spec)."""
    with_dpo(spec)

    def build(run_name: str = "run", **overrides) -> dict:
        tokens = {"train_tokens_uri": preference_tokens["train_tokens_uri"], "val_tokens_uri": preference_tokens["val_tokens_uri"]}
        return train_request(run_name, **(tokens | overrides))

    return build


@pytest.fixture(scope="module")
def straight_dpo_run(preference_tokens, tiny_model_uri, tmp_path_factory) -> tuple[dict, dict]:
    """One uninterrupted dpo run (with_dpo's spec), its request and its result, trained once for the tests that need
    that run; no test writes into it (a test that changes its checkpoints does so in a copy: conftest's copied_run)."""
    spec = with_dpo(copy.deepcopy(TINY_SPEC))
    request = request_for(spec, dict(CPU_SETUP), preference_tokens, tiny_model_uri, tmp_path_factory.mktemp("straight-dpo") / "run")
    return request, train(request)


def train_log(request: dict) -> list[dict]:
    return [json.loads(line) for line in (uri_to_path(request["run_uri"]) / "train_log.jsonl").read_text().splitlines()]


def test_the_dpo_loss_starts_at_log_two_and_falls_as_the_chosen_responses_gain(straight_dpo_run):
    request, result = straight_dpo_run
    log = train_log(request)
    assert result["train_rows"] == 8 and result["steps_trained"] == 12
    # The fresh adapter's B matrices are zero: the policy is the reference, every pair's loss is log 2.
    assert log[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert log[0]["rewards_chosen"] == pytest.approx(0, abs=1e-6) and log[0]["rewards_rejected"] == pytest.approx(0, abs=1e-6)
    assert log[-1]["loss"] < 0.5
    assert log[-1]["reward_margin"] > 0 and log[-1]["reward_accuracy"] == 1
    assert result["val_loss"] < math.log(2)


def test_a_stopped_dpo_run_resumes_to_the_same_adapter_bit_for_bit(dpo_request, straight_dpo_run):
    straight, uninterrupted = straight_dpo_run

    request = dpo_request("interrupted")
    with pytest.raises(StopRequested) as stopped:
        train(request, should_stop=stop_after(5))
    assert stopped.value.step == 5
    resumed = train(request)

    assert resumed["resumed_from_step"] == 5 and resumed["steps_trained"] == 7
    assert adapter_digest(resumed) == adapter_digest(uninterrupted)
    assert resumed["train_loss"] == uninterrupted["train_loss"]
    assert [record["loss"] for record in train_log(request)[5:]] == [record["loss"] for record in train_log(straight)[5:]]


def test_a_dpo_checkpoint_does_not_resume_under_another_beta(straight_dpo_run, tmp_path):
    request = copied_run(straight_dpo_run[0], tmp_path / "run")
    request["spec"]["train"]["objective"]["beta"] = 0.5
    with pytest.raises(ApplicationError) as refused:
        train(request)
    assert refused.value.type == FailureType.INCOMPATIBLE_CHECKPOINT.value
    assert "objective" in refused.value.message


def test_evaluate_scores_base_and_tuned_on_the_pairs(straight_dpo_run, preference_tokens):
    # Evaluated on the training pairs: the tuned model must prefer what it was taught to prefer.
    request, trained = straight_dpo_run
    evaluate_request = {key: request[key] for key in ("spec", "setup", "model_uri")} | {"val_tokens_uri": preference_tokens["train_tokens_uri"]}
    evaluation = evaluate(evaluate_request | {"adapter_uri": trained["adapter_uri"]})
    preference = evaluation["preference"]
    assert preference["beta"] == 0.1 and preference["base"]["pairs"] == preference["tuned"]["pairs"] == evaluation["val_rows"] == 8
    # A dozen steps move the log-probabilities by a few nats: the tuned model prefers chosen by more than the base does
    # on average, though not yet on pairs where the base's preference for rejected is wide (different lengths).
    assert preference["tuned"]["reward_margin"] > preference["base"]["reward_margin"]
    assert preference["tuned"]["reward_accuracy"] >= preference["base"]["reward_accuracy"]
    # The implicit reward margin is beta times how much more the tuned model prefers chosen than the base does.
    tuned, base = preference["tuned"], preference["base"]
    assert tuned["implicit_reward_margin"] == pytest.approx(0.1 * (tuned["reward_margin"] - base["reward_margin"]), rel=1e-6)
    assert preference["tuned"]["implicit_reward_accuracy"] > 0.5
    assert evaluation["tuned_val_loss"] < evaluation["base_val_loss"]


def test_packing_with_dpo_is_refused_by_name(dpo_request, setup):
    setup["packing"] = True
    with pytest.raises(ApplicationError) as refused:
        train(dpo_request())
    assert refused.value.type == FailureType.CONTRACT_VIOLATION.value and refused.value.non_retryable
    assert "setup.packing" in refused.value.message


def test_sft_on_preference_pairs_is_refused_by_name(train_request, preference_tokens):
    with pytest.raises(ApplicationError) as refused:
        train(train_request(train_tokens_uri=preference_tokens["train_tokens_uri"]))
    assert refused.value.type == FailureType.INVALID_DATASET.value
    assert "train.objective.kind" in refused.value.message


def objective_with(**dpo) -> DirectPreferenceOptimization:
    spec = copy.deepcopy(TINY_SPEC)
    spec["train"]["objective"] = {**DPO, **dpo}
    return DirectPreferenceOptimization(parse(Spec, spec), parse(TrainingSetup, CPU_SETUP), pad_token_id=0)


def log_probabilities(chosen, rejected, chosen_tokens, rejected_tokens) -> PairLogProbabilities:
    return PairLogProbabilities(*(torch.tensor(values, dtype=torch.float64) for values in (chosen, rejected, chosen_tokens, rejected_tokens)))


def test_the_sigmoid_loss_with_label_smoothing_and_the_ipo_loss_as_published():
    policy = log_probabilities([-10.0, -20.0], [-14.0, -18.0], [5, 10], [7, 6])
    reference = log_probabilities([-12.0, -19.0], [-13.0, -19.0], [5, 10], [7, 6])
    # Sigmoid, 20 % of the labels presumed flipped (cDPO): -(1 - e) log sigmoid(z) - e log sigmoid(-z).
    losses, chosen_rewards, rejected_rewards = objective_with(beta=0.5, label_smoothing=0.2).pair_losses(policy, reference)
    margins = [0.5 * ((-10 + 14) - (-12 + 13)), 0.5 * ((-20 + 18) - (-19 + 19))]
    expected = [-0.8 * math.log(1 / (1 + math.exp(-z))) - 0.2 * math.log(1 / (1 + math.exp(z))) for z in margins]
    assert losses.tolist() == pytest.approx(expected, rel=1e-12)
    assert chosen_rewards.tolist() == pytest.approx([0.5 * 2, 0.5 * -1]) and rejected_rewards.tolist() == pytest.approx([0.5 * -1, 0.5 * 1])
    # IPO regresses the per-token log-ratio gap to 1 / (2 beta).
    losses, _, _ = objective_with(beta=0.5, loss_type="ipo").pair_losses(policy, reference)
    gaps = [(-10 / 5 + 14 / 7) - (-12 / 5 + 13 / 7), (-20 / 10 + 18 / 6) - (-19 / 10 + 19 / 6)]
    assert losses.tolist() == pytest.approx([(gap - 1) ** 2 for gap in gaps], rel=1e-12)


@pytest.fixture(scope="module")
def four_dpo_steps_in_one_process(preference_tokens, tiny_model_uri, tmp_path_factory) -> dict:
    """The result of 4 dpo steps in one process, 2 pairs × 2 accumulation: what both parallelisms are compared with."""
    spec = with_dpo(copy.deepcopy(TINY_SPEC))
    spec["train"]["max_steps"] = 4
    return train(request_for(spec, dict(CPU_SETUP), preference_tokens, tiny_model_uri, tmp_path_factory.mktemp("dpo-single") / "run"))


@pytest.mark.parametrize("parallelism", ["ddp", "fsdp"])
def test_two_processes_train_the_pairs_one_process_trains(dpo_request, spec, setup, parallelism, four_dpo_steps_in_one_process):
    """The loss is divided by the pairs of the whole step on every process: 2 pairs × 2 accumulation in one process
    and 2 pairs × 1 in each of two train the same step."""
    single = four_dpo_steps_in_one_process
    spec["train"]["max_steps"] = 4
    spec["train"]["gradient_accumulation_steps"] = 1
    setup.update(processes=2, parallelism=parallelism)
    distributed = train(dpo_request(f"two-{parallelism}"))

    assert single["final_step"] == 4
    assert (distributed["processes"], distributed["parallelism"], distributed["final_step"]) == (2, parallelism, 4)
    assert distributed["train_loss"] == pytest.approx(single["train_loss"], rel=1e-5)
    single_adapter, distributed_adapter = (load_file(uri_to_path(result["adapter_uri"]) / "adapter_model.safetensors") for result in (single, distributed))
    for name, tensor in single_adapter.items():
        torch.testing.assert_close(distributed_adapter[name], tensor, rtol=1e-4, atol=1e-5)
