/**
 * The planner: will a LoRA/QLoRA run fit a device, how fast will it go, how long will it take, and what to change
 * when it does not fit. Pure functions; the numbers behind them are explained in docs/planner.md.
 */
export {
  architectureFromHuggingFaceConfig,
  LinearModule,
  loraParameters,
  totalParameters,
  type ModelArchitecture,
} from './architecture.ts';
export { architectureCatalog, findArchitecture } from './catalog/architectures.ts';
export { findGpu, gpuCatalog, type GpuSpecification } from './catalog/gpus.ts';
export { describeWeightPrecision, evaluatePlan, type Evaluation } from './evaluate.ts';
export { unknownGpuError } from './device.ts';
export { MemoryTerm } from './memory.ts';
export { planDoesNotFitError, planRun, type Plan } from './plan.ts';
export { DeviceKind, PlannerOptimizer, Parallelism, Quantization, SuggestionKind, TrainingBackend } from '../contract/vocabulary.ts';
export type { CatalogGpuReference, DeviceDescription, LengthHistogram, PlanRequest } from './request.ts';
export { predictRunTime, type RunLength, type RunTime } from './run-time.ts';
export { plannedTokensFrom, planRequestForRun, planTrainingRun, type PlannedSpec, type PlannedTokens, type RunPlanInput, type TrainingRunPlan } from './run.ts';
export {
  largestFittingMicroBatch,
  nextSmallerMicroBatch,
  suggestChanges,
  type MicroBatchChoice,
} from './search.ts';
export type { RequestChanges, Suggestion } from '../contract/orchestration.ts';
export { inferenceMemory, rankTradeOffs, type InferenceMemory, type RankTradeOff } from './tradeoffs.ts';
