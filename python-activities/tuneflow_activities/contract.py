"""The Python half of tuneflow's contract names; its TypeScript twin is src/contract/names.ts.

Every task queue, activity name, failure type and search attribute is declared once per language, and
test/contract.test.ts proves the two declarations are equal. Payload shapes are not declared here: they are the
JSON Schema files in schemas/, generated from the TypeScript contract and checked by validation.py.
"""

from enum import Enum


class TaskQueue(str, Enum):
    ORCHESTRATION = "tuneflow"
    ACCELERATOR = "tuneflow-gpu"


class OrchestrationActivity(str, Enum):
    PREPARE_DATASET = "prepareDataset"
    PLAN_RUN = "planRun"
    RECORD_CHECKPOINTS = "recordCheckpoints"
    REPLAN_AFTER_OUT_OF_MEMORY = "replanAfterOutOfMemory"
    LOAD_RETRAIN_SPEC = "loadRetrainSpec"
    COMPARE_WITH_CHAMPION = "compareWithChampion"
    REGISTER_MODEL = "registerModel"
    PROMOTE_MODEL = "promoteModel"
    RECORD_MODEL_EXPORTS = "recordModelExports"


class AcceleratorActivity(str, Enum):
    RESOLVE_MODEL = "resolve_model"
    TOKEN_STATISTICS = "token_statistics"
    TRAIN = "train"
    MERGE = "merge"
    EVALUATE = "evaluate"
    EXPORT_GGUF = "export_gguf"
    VERIFY_CHECKPOINTS = "verify_checkpoints"


class WorkflowMessage(str, Enum):
    TRAINING_PROGRESS = "trainingProgress"
    TRAINING_CONTROL = "trainingControl"


class FailureType(str, Enum):
    INVALID_SPEC = "TuneflowInvalidSpec"
    DATASET_NOT_FOUND = "TuneflowDatasetNotFound"
    INVALID_DATASET = "TuneflowInvalidDataset"
    MODEL_NOT_FOUND = "TuneflowModelNotFound"
    PLAN_DOES_NOT_FIT = "TuneflowPlanDoesNotFit"
    INCOMPATIBLE_CHECKPOINT = "TuneflowIncompatibleCheckpoint"
    OUT_OF_MEMORY = "TuneflowOutOfMemory"
    WORKER_LOST = "TuneflowWorkerLost"
    REGISTRY_CONFLICT = "TuneflowRegistryConflict"
    MODEL_VERSION_NOT_FOUND = "TuneflowModelVersionNotFound"
    CONTRACT_VIOLATION = "TuneflowContractViolation"
    GATE_FAILED = "TuneflowGateFailed"
    TRAINING_DIVERGED = "TuneflowTrainingDiverged"


NON_RETRYABLE_FAILURE_TYPES = (
    FailureType.INVALID_SPEC,
    FailureType.DATASET_NOT_FOUND,
    FailureType.INVALID_DATASET,
    FailureType.MODEL_NOT_FOUND,
    FailureType.PLAN_DOES_NOT_FIT,
    FailureType.INCOMPATIBLE_CHECKPOINT,
    FailureType.REGISTRY_CONFLICT,
    FailureType.MODEL_VERSION_NOT_FOUND,
    FailureType.CONTRACT_VIOLATION,
    FailureType.GATE_FAILED,
    FailureType.TRAINING_DIVERGED,
)

SEARCH_ATTRIBUTES = {
    "Stage": ("TuneflowStage", "Keyword"),
    "Model": ("TuneflowModel", "Keyword"),
    "Status": ("TuneflowStatus", "Keyword"),
    "Step": ("TuneflowStep", "Int"),
    "Loss": ("TuneflowLoss", "Double"),
}
