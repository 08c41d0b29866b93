"""Direct preference optimisation (Rafailov et al. 2023): the policy (base + adapter) learns to prefer the chosen
response of each pair over the rejected one more than the reference does.

The reference is the frozen base itself, seen through `model.disable_adapter()` under no_grad: no second copy of the
weights, as TRL's DPOTrainer does for a PEFT model without a ref_model (`null_ref_context`, trl/trainer/dpo_trainer.py).
The loss follows TRL's `dpo_loss`: `sigmoid` with label smoothing (cDPO / robust) and `ipo`, whose log-probabilities
are averaged over the response's tokens (as TRL does for ipo); every other quantity uses summed log-probabilities.

Both loaders: the forward passes carry no labels, so Unsloth's fast forward returns the logits (it replaces them with
its fused cross-entropy only when labels are given: CausalLM_fast_forward in unsloth/models/llama.py), and Unsloth's
fused LoRA kernels honour a disabled adapter (`get_lora_parameters` in unsloth/kernels/utils.py returns the base
weight alone "for DPO or disabled adapters"), the same `disable_adapter()` + no_grad its patched DPOTrainer runs.
Packing is refused: a pair is two sequences that share a prompt, scored side by side.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..contract import FailureType
from ..data import IGNORED_LABEL, PreferencePair, TokenizedSplit, batches, bucketed_width, collate, pairs_for_training
from ..errors import failure
from ..payloads import DpoObjective, Overlong
from .objective import EVALUATION_BATCH_SIZE, MicroBatchLoss, Objective

if TYPE_CHECKING:
    import torch


@dataclass
class PairLogProbabilities:
    """Per pair of a batch: the summed log-probabilities of the chosen and of the rejected response, and their token
    counts."""

    chosen: "torch.Tensor"
    rejected: "torch.Tensor"
    chosen_tokens: "torch.Tensor"
    rejected_tokens: "torch.Tensor"


def selected_log_probabilities(logits, labels):
    """log softmax(logits)[label] per position without a log-softmax over the whole vocabulary kept for the backward
    (TRL's selective_log_softmax): in 32-bit the label's logit minus the logsumexp, one row at a time; in 16-bit the
    logsumexp loses precision, so a 16-bit log-softmax per row."""
    import torch

    if logits.dtype in (torch.float32, torch.float64):
        selected = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        return selected - torch.stack([torch.logsumexp(row, dim=-1) for row in logits])
    return torch.stack([row.log_softmax(-1).gather(-1, row_labels.unsqueeze(-1)).squeeze(-1) for row, row_labels in zip(logits, labels, strict=True)]).float()


def response_log_probabilities(model, batch: dict) -> PairLogProbabilities:
    """One forward pass over the chosen rows and then the rejected rows of a pair batch (DirectPreferenceOptimization
    collates them so)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
    # Token t is predicted from the logits at t - 1.
    labels = batch["labels"][:, 1:]
    trained = labels != IGNORED_LABEL
    token_log_probabilities = selected_log_probabilities(logits[:, :-1], labels.clamp(min=0))
    summed = (token_log_probabilities * trained).sum(-1)
    counts = trained.sum(-1)
    chosen, rejected = summed.chunk(2)
    chosen_tokens, rejected_tokens = counts.chunk(2)
    return PairLogProbabilities(chosen, rejected, chosen_tokens, rejected_tokens)


def reference_log_probabilities(model, batch: dict) -> PairLogProbabilities:
    import torch

    with torch.no_grad(), model.disable_adapter():
        return response_log_probabilities(model, batch)


class DirectPreferenceOptimization(Objective[PreferencePair]):
    # Means over the step's pairs, in the train log: the implicit rewards beta * (log pi - log pi_ref) of the chosen
    # and the rejected responses, the share of pairs whose chosen reward is higher, and the mean difference.
    METRICS = ("rewards_chosen", "rewards_rejected", "reward_accuracy", "reward_margin")

    def __init__(self, spec, setup, pad_token_id):
        super().__init__(spec, setup, pad_token_id)
        if setup.packing:
            raise failure(
                FailureType.CONTRACT_VIOLATION,
                "setup.packing is true with the dpo objective: preference pairs are not packed (the plan turns packing off for dpo)",
                field="setup.packing",
            )
        objective = spec.train.objective
        assert isinstance(objective, DpoObjective)
        self.objective = objective

    def examples(self, split: TokenizedSplit, overlong: Overlong) -> list[PreferencePair]:
        return pairs_for_training(split, self.spec.model.max_seq_length, overlong)

    def units(self, example: PreferencePair) -> int:
        return 1

    def collate(self, sequences: Sequence[Sequence[PreferencePair]]) -> dict:
        return self._collate([pair for (pair,) in sequences])

    def _collate(self, pairs: Sequence[PreferencePair]) -> dict:
        """The chosen rows, then the rejected rows, padded to one width: one forward pass scores both sides."""
        rows = [pair.chosen for pair in pairs] + [pair.rejected for pair in pairs]
        longest = max(row.tokens for row in rows)
        width = bucketed_width(longest, self.spec.model.max_seq_length) if self.setup.pads_to_fixed_shapes else None
        return {key: value.to(self.setup.device) for key, value in collate(rows, self.pad_token_id, width).items()}

    def pair_losses(self, policy: PairLogProbabilities, reference: PairLogProbabilities):
        """Each pair's loss, and its implicit rewards beta * (log pi - log pi_ref) of chosen and rejected."""
        import torch.nn.functional as functional

        beta = self.objective.beta
        if self.objective.loss_type == "ipo":
            # IPO regresses the length-normalised log-ratio gap to 1 / (2 beta).
            policy_gap = policy.chosen / policy.chosen_tokens - policy.rejected / policy.rejected_tokens
            reference_gap = reference.chosen / reference.chosen_tokens - reference.rejected / reference.rejected_tokens
            losses = (policy_gap - reference_gap - 1 / (2 * beta)) ** 2
        else:
            logits = beta * ((policy.chosen - policy.rejected) - (reference.chosen - reference.rejected))
            smoothing = self.objective.label_smoothing
            losses = -functional.logsigmoid(logits) * (1 - smoothing) - functional.logsigmoid(-logits) * smoothing
        chosen_rewards = beta * (policy.chosen - reference.chosen).detach()
        rejected_rewards = beta * (policy.rejected - reference.rejected).detach()
        return losses, chosen_rewards, rejected_rewards

    def micro_batch_loss(self, model, batch: dict, step_units: int) -> MicroBatchLoss:
        # The reference first: its activations are freed before the policy's are kept for the backward.
        reference = reference_log_probabilities(model, batch)
        policy = response_log_probabilities(model, batch)
        losses, chosen_rewards, rejected_rewards = self.pair_losses(policy, reference)
        return MicroBatchLoss(
            losses.sum() / step_units,
            {
                "rewards_chosen": chosen_rewards.sum().item(),
                "rewards_rejected": rejected_rewards.sum().item(),
                "reward_accuracy": (chosen_rewards > rejected_rewards).sum().item(),
                "reward_margin": (chosen_rewards - rejected_rewards).sum().item(),
            },
        )

    def summed_loss(self, model, examples: Sequence[PreferencePair]) -> float:
        """The dpo loss of the pairs against the reference, summed."""
        batch = self._collate(examples)
        losses, _, _ = self.pair_losses(response_log_probabilities(model, batch), reference_log_probabilities(model, batch))
        return losses.sum().item()

    def evaluate(self, model, examples: Sequence[PreferencePair]) -> dict:
        """How often base and tuned prefer the chosen response, by how much, and the tuned model's implicit rewards
        against the base; loss and perplexity are those of the chosen responses."""
        import torch

        tuned_sides, base_sides, chosen_tokens = [], [], 0
        with torch.no_grad():
            for batch_pairs in batches(examples, EVALUATION_BATCH_SIZE):
                batch = self._collate(batch_pairs)
                tuned, base = response_log_probabilities(model, batch), reference_log_probabilities(model, batch)
                tuned_sides.append((tuned.chosen, tuned.rejected))
                base_sides.append((base.chosen, base.rejected))
                chosen_tokens += int(tuned.chosen_tokens.sum())
        if not examples:
            return {"val_rows": 0, "val_tokens": 0, "base_val_loss": None, "tuned_val_loss": None, "base_perplexity": None, "tuned_perplexity": None}
        tuned_chosen, tuned_rejected = (torch.cat(side).double() for side in zip(*tuned_sides, strict=True))
        base_chosen, base_rejected = (torch.cat(side).double() for side in zip(*base_sides, strict=True))
        beta = self.objective.beta
        implicit_gap = beta * (tuned_chosen - base_chosen) - beta * (tuned_rejected - base_rejected)
        base_loss, tuned_loss = -base_chosen.sum().item() / chosen_tokens, -tuned_chosen.sum().item() / chosen_tokens

        def scores(chosen, rejected) -> dict:
            return {"pairs": len(examples), "reward_accuracy": (chosen > rejected).double().mean().item(), "reward_margin": (chosen - rejected).mean().item()}

        return {
            "val_rows": len(examples),
            "val_tokens": chosen_tokens,
            "base_val_loss": base_loss,
            "tuned_val_loss": tuned_loss,
            "base_perplexity": math.exp(base_loss),
            "tuned_perplexity": math.exp(tuned_loss),
            "preference": {
                "beta": beta,
                "base": scores(base_chosen, base_rejected),
                "tuned": {
                    **scores(tuned_chosen, tuned_rejected),
                    "implicit_reward_accuracy": (implicit_gap > 0).double().mean().item(),
                    "implicit_reward_margin": implicit_gap.mean().item(),
                },
            },
        }

    def fingerprint(self) -> dict:
        objective = self.objective
        return {"objective": {"kind": objective.kind, "beta": objective.beta, "loss_type": objective.loss_type, "label_smoothing": objective.label_smoothing}}
