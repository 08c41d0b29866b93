"""The training objectives, chosen by the spec's `train.objective.kind`: the engine asks this registry, never an
objective by name."""

from ..payloads import Spec, TrainingSetup
from .dpo import DirectPreferenceOptimization
from .objective import Objective
from .sft import SupervisedFineTuning

OBJECTIVES: dict[str, type[Objective]] = {"sft": SupervisedFineTuning, "dpo": DirectPreferenceOptimization}


def objective_for(spec: Spec, setup: TrainingSetup, pad_token_id: int) -> Objective:
    return OBJECTIVES[spec.train.objective.kind](spec, setup, pad_token_id)
