export { TuneflowError, isTuneflowError, hasFailureType } from './tuneflow-error.ts';
export { InvalidSpecError, isInvalidSpecError } from './invalid-spec-error.ts';
export { DatasetNotFoundError, isDatasetNotFoundError } from './dataset-not-found-error.ts';
export { InvalidDatasetError, isInvalidDatasetError } from './invalid-dataset-error.ts';
export { ModelNotFoundError, isModelNotFoundError } from './model-not-found-error.ts';
export { PlanDoesNotFitError, isPlanDoesNotFitError } from './plan-does-not-fit-error.ts';
export { TemporalUnreachableError, isTemporalUnreachableError } from './temporal-unreachable-error.ts';
export { ContractViolationError, isContractViolationError } from './contract-violation-error.ts';
