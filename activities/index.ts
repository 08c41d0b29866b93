/**
 * Activities of the TypeScript worker (task queue `tuneflow`): dataset preparation, planning and checkpoint
 * bookkeeping. Each converts tuneflow's typed errors into Temporal failures whose type is in the contract, so
 * bad input fails once, clearly, instead of retrying.
 */
import { ApplicationFailure } from '@temporalio/common';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { ResolvedModel, TokenStatistics, VerifiedCheckpoints } from '../src/accelerator.ts';
import { prepareDataset as prepare, type PreparedDatasetReport } from '../src/data/index.ts';
import { InvalidDatasetError, isInvalidDatasetError, isTuneflowError } from '../src/errors/index.ts';
import { nextSmallerMicroBatch, type Plan, planDoesNotFitError, type PlanRequest, planRun as planWithPlanner } from '../src/planner/index.ts';
import { writeFileAtomic } from '../src/runtime/atomic-write.ts';
import { RunLayout } from '../src/runtime/layout.ts';
import type { RunSpec } from '../src/spec/schema.ts';

async function typedFailures<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (isTuneflowError(error)) {
      throw ApplicationFailure.create({
        type: error.failureType,
        message: error.message,
        nonRetryable: error.nonRetryable,
        details: [error.details],
        cause: error,
      });
    }
    throw error;
  }
}

export interface PrepareDatasetRequest {
  spec: RunSpec;
  artifact_root_uri: string;
}

/** Rejected rows carried in a failure: the full list is in the report file, a failure payload must stay small. */
const errorsInFailure = 100;

function trimReportErrors(error: unknown): unknown {
  if (!isInvalidDatasetError(error)) return error;
  const report = error.details.report as PreparedDatasetReport | undefined;
  if (!report || report.errors.length <= errorsInFailure) return error;
  const details = { ...error.details, report: { ...report, errors: report.errors.slice(0, errorsInFailure), errors_omitted: report.errors.length - errorsInFailure } };
  return new InvalidDatasetError(error.message, details, { cause: error });
}

export async function prepareDataset(request: PrepareDatasetRequest): Promise<PreparedDatasetReport> {
  const { dataset } = request.spec;
  return typedFailures(() =>
    prepare({
      datasetPath: dataset.path,
      format: dataset.format,
      valFraction: dataset.val_fraction,
      valCount: dataset.val_count,
      valPath: dataset.val_path,
      seed: dataset.seed,
      maxInvalidFraction: dataset.max_invalid_fraction,
      storeRoot: fileURLToPath(request.artifact_root_uri),
    }).catch((error: unknown) => {
      throw trimReportErrors(error);
    }),
  );
}

export interface PlanRunRequest {
  spec: RunSpec;
  model: ResolvedModel;
  tokens: TokenStatistics;
}

/**
 * The planner's request for a spec on the worker that will train it: the worker's real device and the backend,
 * checkpointing and optimizer its 'auto' settings resolve to. A spec naming a catalog GPU plans for that GPU
 * when the worker has one (the catalog knows its speed); a CPU worker is planned as the CPU it is.
 */
export function planRequestFor({ spec, model, tokens }: PlanRunRequest): PlanRequest {
  const { device, training } = model;
  const plannedDevice: PlanRequest['device'] =
    device.kind === 'cuda' && spec.device.gpu !== 'auto'
      ? { gpu: spec.device.gpu, count: spec.device.gpu_count, memory_gib: spec.device.gpu_memory_gib }
      : {
          kind: device.kind,
          name: device.name,
          memory_gib: spec.device.gpu_memory_gib ?? device.memory_gib,
          count: device.kind === 'cpu' ? (device.cores ?? 1) : device.count,
        };
  return {
    architecture: { name: spec.model.source, ...model.architecture },
    device: plannedDevice,
    backend: training.backend,
    quantization: spec.device.quantization,
    lora_rank: spec.lora.r,
    target_modules: spec.lora.target_modules,
    sequence_length: Math.min(spec.model.max_seq_length, tokens.train.max ?? spec.model.max_seq_length),
    micro_batch_size: spec.train.micro_batch_size,
    gradient_accumulation_steps: spec.train.gradient_accumulation_steps,
    gradient_checkpointing: training.gradient_checkpointing,
    optimizer: training.optimizer,
    dataset_tokens: tokens.train.tokens_trained,
    epochs: spec.train.epochs,
  };
}

/** Plans memory and time for the spec on its device; a plan that cannot fit fails here, before training. */
export async function planRun(request: PlanRunRequest): Promise<Plan> {
  return typedFailures(async () => {
    const plan = planWithPlanner(planRequestFor(request));
    if (!plan.fits) throw planDoesNotFitError(plan);
    return plan;
  });
}

export interface Replan {
  micro_batch_size: number;
  gradient_accumulation_steps: number;
  plan: Plan;
}

/**
 * After CUDA ran out of memory: the next smaller micro-batch with the same effective batch (more accumulation,
 * so every optimizer step still sees the same rows), and its plan. Null when the micro-batch is already 1.
 */
export async function replanAfterOutOfMemory(request: PlanRunRequest): Promise<Replan | null> {
  const smaller = nextSmallerMicroBatch(request.spec.train);
  if (smaller === null) return null;
  const spec = { ...request.spec, train: smaller };
  return {
    micro_batch_size: smaller.micro_batch_size,
    gradient_accumulation_steps: smaller.gradient_accumulation_steps,
    plan: planWithPlanner(planRequestFor({ ...request, spec })),
  };
}

export interface RecordCheckpointsRequest {
  run_uri: string;
  summary: Record<string, unknown>;
  /** What the Python verify_checkpoints activity found: verification lives there alone. */
  checkpoints: VerifiedCheckpoints;
}

export interface CheckpointBook extends VerifiedCheckpoints {
  run_manifest_uri: string;
}

/** Writes the run's manifest (run.json): the summary and the checkpoints it is given. */
export async function recordCheckpoints(request: RecordCheckpointsRequest): Promise<CheckpointBook> {
  const layout = RunLayout.at(request.run_uri);
  const book = { checkpoints: request.checkpoints.checkpoints, corrupt: request.checkpoints.corrupt };
  await mkdir(fileURLToPath(layout.root), { recursive: true });
  await writeFileAtomic(fileURLToPath(layout.manifest), `${JSON.stringify({ ...request.summary, ...book }, null, 2)}\n`);
  return { ...book, run_manifest_uri: layout.manifest };
}
