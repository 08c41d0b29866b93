// Everything the worker's workflow bundle registers. Queries (and later signals/updates) sit beside their workflow.
export { fineTune, stateQuery } from './fine-tune.ts';
export type { FineTuneInput, FineTuneResult, FineTuneState, RunStatus } from './fine-tune.ts';
