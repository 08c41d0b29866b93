/**
 * Activities of the TypeScript worker (task queue `tuneflow`): dataset preparation, planning and checkpoint
 * bookkeeping. Each converts tuneflow's typed errors into Temporal failures whose type is in the contract, so
 * bad input fails once, clearly, instead of retrying.
 */
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  checkPayload,
  type PlanRunRequest,
  planRunRequestSchema,
  type PrepareDatasetRequest,
  type Replan,
  type ReplanRequest,
  replanRequestSchema,
  type RunPlan,
  type TrainingSetup,
  type VerifiedCheckpoints,
} from '../src/contract/index.ts';
import type { ObjectiveKind } from '../src/contract/vocabulary.ts';
import { objectiveDatasetMismatch } from '../src/spec/objective.ts';
import { artifactStoreFor, isObjectStoreUri } from '../src/artifacts/index.ts';
import { prepareDataset as prepare, type PreparedDatasetReport } from '../src/data/index.ts';
import { InvalidDatasetError, InvalidSpecError, isInvalidDatasetError } from '../src/errors/index.ts';
import { typedFailures } from '../src/errors/typed-failures.ts';
import {
  architectureFromHuggingFaceConfig,
  nextSmallerMicroBatch,
  planDoesNotFitError,
  type PlanRequest,
  plannedTokensFrom,
  planRequestForRun,
  planTrainingRun,
  planRun as planWithPlanner,
  type RunPlanInput,
} from '../src/planner/index.ts';
import { tuneflowHome } from '../src/runtime/home.ts';
import { DatasetLayout, PreparedFile, RunLayout } from '../src/runtime/layout.ts';

export { compareWithChampion, loadRetrainSpec, promoteModel, recordModelExports, registerModel } from '../src/registry/activities.ts';
export { recordRunQuality } from '../src/quality/activities.ts';

/** Rejected rows carried in a failure: the full list is in the report file, a failure payload must stay small. */
const errorsInFailure = 100;

function trimReportErrors(error: unknown): unknown {
  if (!isInvalidDatasetError(error)) return error;
  const report = error.details.report as PreparedDatasetReport | undefined;
  if (!report || report.errors.length <= errorsInFailure) return error;
  const details = {
    ...error.details,
    report: { ...report, errors: report.errors.slice(0, errorsInFailure), errors_omitted: report.errors.length - errorsInFailure },
  };
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
      storeRoot: isObjectStoreUri(request.artifact_root_uri) ? objectStoreStagingRoot() : fileURLToPath(request.artifact_root_uri),
    })
      .then((report) => refuseObjectiveMismatch(request.spec.train.objective.kind, report))
      .then((report) => (isObjectStoreUri(request.artifact_root_uri) ? publishPreparedDataset(report, request.artifact_root_uri) : report))
      .catch((error: unknown) => {
        throw trimReportErrors(error);
      }),
  );
}

/**
 * The format prepare detected ('auto') must suit the objective, as an explicit one must (the spec's check): a DPO
 * run on instruction rows, or an SFT run on preference pairs, stops here, before any model is loaded.
 */
function refuseObjectiveMismatch(objective: ObjectiveKind, report: PreparedDatasetReport): PreparedDatasetReport {
  const mismatch = objectiveDatasetMismatch(objective, report.format);
  if (mismatch !== null)
    throw new InvalidSpecError(`${mismatch} (detected in ${report.report_uri})`, { field: 'train.objective', dataset_format: report.format });
  return report;
}

/** Where this worker prepares data bound for object storage: a local store, also its cache of what it uploaded. */
const objectStoreStagingRoot = () => join(process.env.TUNEFLOW_WORKER_CACHE ?? join(tuneflowHome(), 'cache'), 'staging');

/**
 * Uploads a dataset prepared in the local staging store to `<root>/datasets/<hash>/`, the report last: a report in
 * the bucket means the splits beside it are complete (content-addressed, so one already there is reused).
 */
async function publishPreparedDataset(report: PreparedDatasetReport, artifactRootUri: string): Promise<PreparedDatasetReport> {
  const store = artifactStoreFor(artifactRootUri);
  const localDirectory = dirname(fileURLToPath(report.report_uri));
  const remote = DatasetLayout.of(artifactRootUri, basename(localDirectory));
  if ((await store.getText(remote.file(PreparedFile.Report))) === null) await store.putDirectory(localDirectory, remote.root, PreparedFile.Report);
  return { ...report, train_uri: remote.file(PreparedFile.Train), val_uri: remote.file(PreparedFile.Val), report_uri: remote.file(PreparedFile.Report) };
}

/**
 * The planner's input for a run on the worker that resolved its model: the architecture from the model's own
 * config.json, the worker's facts, and what token statistics say of the dataset.
 */
function runPlanInput({ spec, model, tokens }: PlanRunRequest): RunPlanInput {
  return {
    spec,
    worker: model,
    architecture: architectureFromHuggingFaceConfig(model.config, spec.model.source),
    tokens: plannedTokensFrom(tokens),
  };
}

/** The planner's request for a spec trained with `setup` on the worker that resolved its model. */
export function planRequestFor(request: PlanRunRequest, setup: TrainingSetup): PlanRequest {
  return planRequestForRun(runPlanInput(request), setup);
}

/**
 * Decides the training setup (every 'auto' of the spec, from the worker's facts) and plans memory and time for
 * it; a plan that cannot fit fails here, before training.
 */
export async function planRun(request: PlanRunRequest): Promise<RunPlan> {
  return typedFailures(async () => {
    const { setup, plan } = planTrainingRun(runPlanInput(checkPayload(planRunRequestSchema, request, 'the planRun request')));
    if (!plan.fits) throw planDoesNotFitError(plan);
    return { setup, plan };
  });
}

/**
 * After CUDA ran out of memory: first gradient checkpointing on, where the spec's 'auto' had chosen it off (the
 * same micro-batch, a fraction of the activations); then the next smaller micro-batch with the same effective batch
 * (more accumulation, so every optimizer step still sees the same rows), each with its plan. The run resumes from
 * its last checkpoint either way (checkpointing is no part of a checkpoint's fingerprint). Null when checkpointing
 * is on and the micro-batch is already 1.
 */
export async function replanAfterOutOfMemory(request: ReplanRequest): Promise<Replan | null> {
  return typedFailures(async () => {
    const { setup, ...planned } = checkPayload(replanRequestSchema, request, 'the replanAfterOutOfMemory request');
    if (!setup.gradient_checkpointing && planned.spec.train.gradient_checkpointing === 'auto') {
      const checkpointing = { ...setup, gradient_checkpointing: true };
      return { setup: checkpointing, plan: planWithPlanner(planRequestFor(planned, checkpointing)) };
    }
    const smaller = nextSmallerMicroBatch(setup);
    if (smaller === null) return null;
    return { setup: smaller, plan: planWithPlanner(planRequestFor(planned, smaller)) };
  });
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
  // One PUT on object storage, temp-fsync-rename on a filesystem.
  await artifactStoreFor(request.run_uri).putText(layout.manifest, `${JSON.stringify({ ...request.summary, ...book }, null, 2)}\n`);
  return { ...book, run_manifest_uri: layout.manifest };
}
