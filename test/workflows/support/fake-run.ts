/**
 * One test's activities: typed fakes of the Python activities and the dataset preparation, the real planner and
 * registry (pure TypeScript on a temporary artifact root: milliseconds, and their decisions are part of what a
 * workflow does), every request and result checked against the contract's schemas. The train fake behaves like the
 * Python train activity on the wire: it heartbeats, signals the workflow that scheduled it at each checkpoint and
 * resume, answers cancellation (pause, cancel, a continue-as-new rollover) with a checkpoint, and follows a script of
 * attempts (complete, out of memory, train until stopped).
 */
import { CancelledFailure, Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import * as bookkeeping from '../../../activities/index.ts';
import { FailureType, type TrainingProgressMessage, type TrainRequest, type TrainResult } from '../../../src/contract/index.ts';
import {
  type GateEvaluationRequest,
  type GateEvaluationResult,
  trainingControlQuery,
  trainingProgressSignal,
  trainingStateQuery,
} from '../../../workflows/index.ts';
import { type ActivityName, type ActivityRequest, type ActivityResult, activitySchemas } from './contract.ts';

export interface ActivityCall {
  activity: ActivityName;
  /** The queue the call was taken from: tuneflow, tuneflow-gpu, or the training worker's own. */
  taskQueue: string;
  workflowId: string;
  attempt: number;
  request: unknown;
}

/** What one attempt of the train activity does. */
export type TrainAttempt =
  /** Trains from the last checkpoint to the last step, a checkpoint every checkpoint.every_steps. */
  | { outcome: 'complete' }
  /** CUDA out of memory before the first step. */
  | { outcome: 'out-of-memory' }
  /** Trains until cancelled (pause, cancel, rollover), then checkpoints where it is and stops. */
  | { outcome: 'until-stopped' }
  /** Trains until a checkpointNow request reaches it through the control query, checkpoints there, then completes. */
  | { outcome: 'until-checkpoint-requested' };

export type FakeHandlers = { [Name in ActivityName]?: (request: ActivityRequest<Name>) => Promise<ActivityResult<Name>> };

export const tinyLlamaConfig = {
  model_type: 'llama',
  num_hidden_layers: 2,
  hidden_size: 64,
  intermediate_size: 128,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 49152,
  tie_word_embeddings: true,
};

/** The id of the workflow that scheduled the running activity (every activity here is scheduled by one). */
export function callingWorkflowId(): string {
  const execution = Context.current().info.workflowExecution;
  if (!execution) throw new Error('a fake activity ran outside a workflow');
  return execution.workflowId;
}

/** The fake's training loss after `step` steps: falling, finite from step 0. */
export const lossAt = (step: number) => 1 / (step + 1);

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
/** The content hash the prepareDataset fake gives a dataset: the same file, the same hash, as the real one. */
export const fakeDatasetHash = (datasetPath: string) => sha256(`dataset ${datasetPath}`);
/** A simulated training step: long enough for a pause to land mid-run, short enough for a test of milliseconds. */
const stepMilliseconds = 5;

export class FakeRun {
  readonly calls: ActivityCall[] = [];
  /** Requests and results that broke the contract: a test expects none. */
  readonly violations: string[] = [];
  /** The steps at which the train fake checkpointed, across attempts (what a real run's checkpoints/ would hold). */
  readonly checkpoints: number[] = [];
  /** The same by run folder: a workflow of several runs resumes each run from its own checkpoints. */
  private readonly checkpointsByRun = new Map<string, number[]>();
  private checkpointsOf(runUri: string): number[] {
    const own = this.checkpointsByRun.get(runUri) ?? [];
    this.checkpointsByRun.set(runUri, own);
    return own;
  }
  /** checkpoint_requests as the train fake last saw them through the control query. */
  seenCheckpointRequests = 0;
  private readonly trainScript: TrainAttempt[];
  private readonly gates = new Map<ActivityName, Promise<void>>();

  constructor(
    /** Every workflow of the run has an id starting with this (the training child, a retrain's fineTune). */
    readonly workflowId: string,
    private readonly client: Client,
    /** Replacements of the default fakes, by activity; a test may set them after creating the run. */
    readonly handlers: FakeHandlers = {},
    train: TrainAttempt[] = [{ outcome: 'complete' }],
  ) {
    this.trainScript = [...train];
  }

  /** The step each train attempt resumed from (0: from the start). */
  readonly resumedFrom: number[] = [];

  /** The default fake of `activity`, for a handler that changes its answer. */
  defaultHandler<Name extends ActivityName>(activity: Name): (request: ActivityRequest<Name>) => Promise<ActivityResult<Name>> {
    return this.defaults[activity] as (request: ActivityRequest<Name>) => Promise<ActivityResult<Name>>;
  }

  callsTo(activity: ActivityName): ActivityCall[] {
    return this.calls.filter((call) => call.activity === activity);
  }

  /** The activities called, in order. */
  get sequence(): ActivityName[] {
    return this.calls.map((call) => call.activity);
  }

  /** Holds every call of `activity` until the returned function is called. */
  hold(activity: ActivityName): () => void {
    let release!: () => void;
    this.gates.set(
      activity,
      new Promise<void>((resolve) => {
        release = resolve;
      }),
    );
    return () => release();
  }

  async invoke<Name extends ActivityName>(activity: Name, request: ActivityRequest<Name>): Promise<ActivityResult<Name>> {
    const { info } = Context.current();
    this.calls.push({ activity, taskQueue: info.taskQueue, workflowId: callingWorkflowId(), attempt: info.attempt, request });
    const schemas = activitySchemas[activity];
    const checkedRequest = schemas.request.safeParse(request);
    if (!checkedRequest.success) return this.violate(`${activity} request: ${checkedRequest.error.message}`);
    await this.gates.get(activity);
    const handler = (this.handlers[activity] ?? this.defaults[activity]) as (request: ActivityRequest<Name>) => Promise<ActivityResult<Name>>;
    const result = await handler(request);
    const checkedResult = schemas.result.safeParse(result);
    if (!checkedResult.success) return this.violate(`${activity} result: ${checkedResult.error.message}`);
    return result;
  }

  private violate(message: string): never {
    this.violations.push(message);
    throw ApplicationFailure.create({ type: FailureType.ContractViolation, message, nonRetryable: true });
  }

  private readonly defaults: { [Name in ActivityName]: (request: ActivityRequest<Name>) => Promise<ActivityResult<Name>> } = {
    prepareDataset: async ({ spec, artifact_root_uri }) => {
      const hash = fakeDatasetHash(spec.dataset.path);
      const directory = `${artifact_root_uri}/datasets/${hash}`;
      return {
        format: 'instruction',
        total_rows: 320,
        valid_rows: 320,
        invalid_rows: 0,
        duplicates_removed: 0,
        train_rows: 288,
        val_rows: 32,
        hash,
        invalid_fraction: 0,
        max_invalid_fraction: spec.dataset.max_invalid_fraction,
        errors: [],
        skipped_files: [],
        train_uri: `${directory}/train.jsonl`,
        val_uri: `${directory}/val.jsonl`,
        report_uri: `${directory}/report.json`,
        cached: false,
      };
    },
    resolve_model: async ({ spec }) => ({
      model_uri: `file:///models/${encodeURIComponent(spec.model.source)}`,
      source: spec.model.source,
      config: tinyLlamaConfig,
      tokenizer_identity: sha256(`tokenizer of ${spec.model.source}`),
      device: { kind: 'cpu', name: 'cpu', memory_gib: 16, count: 1, cores: 2 },
      cuda_bf16_supported: false,
      unsloth_importable: false,
      bitsandbytes_importable: false,
    }),
    token_statistics: async ({ train_uri, val_uri, tokenizer_identity }) => {
      const split = (rows: number) => ({
        rows,
        total_tokens: rows * 60,
        trainable_tokens: rows * 20,
        min: 40,
        median: 60,
        p95: 80,
        max: 90,
        over_max_seq_length: 0,
        rows_trained: rows,
        tokens_trained: rows * 60,
        length_histogram: [{ up_to: 128, rows, tokens: rows * 60 }],
      });
      const tokens = (uri: string) => uri.replace(/\.jsonl$/, `.tokens-${tokenizer_identity.slice(0, 8)}`);
      return { train: split(288), val: split(32), train_tokens_uri: tokens(train_uri), val_tokens_uri: tokens(val_uri) };
    },
    planRun: (request) => bookkeeping.planRun(request),
    replanAfterOutOfMemory: (request) => bookkeeping.replanAfterOutOfMemory(request),
    train: (request) => this.train(request),
    verify_checkpoints: async ({ run_uri }) => ({
      checkpoints: this.checkpointsOf(run_uri).map((step) => ({
        step,
        uri: `${run_uri}/checkpoints/step-${step}`,
        verified: true,
        train_loss: lossAt(step),
        val_loss: null,
      })),
      corrupt: [],
    }),
    recordCheckpoints: async ({ run_uri, checkpoints }) => ({ ...checkpoints, run_manifest_uri: `${run_uri}/run.json` }),
    merge: async ({ run_uri }) => ({ merged_uri: `${run_uri}/merged`, dtype: 'float32', parameters: 1_000_000, bytes: 4_000_000 }),
    evaluate: async ({ spec }) => ({
      val_rows: 32,
      val_tokens: 1920,
      base_val_loss: 2.5,
      tuned_val_loss: 1.25,
      base_perplexity: Math.exp(2.5),
      tuned_perplexity: Math.exp(1.25),
      samples: spec.evaluate.sample_prompts.map((prompt) => ({ prompt, base: 'base answer', tuned: 'tuned answer' })),
      // No suites in these specs (their scoring is Python's, tested in test_suites.py and test/quality/).
      suites: null,
    }),
    export_gguf: async ({ run_uri, formats }) => ({
      exports: formats.map((format) => ({ format, uri: `${run_uri}/exports/model-${format}.gguf`, bytes: 1000, sha256: sha256(format) })),
      modelfile_uri: `${run_uri}/exports/Modelfile`,
      source_uri: `${run_uri}/merged`,
    }),
    recordRunQuality: (request) => bookkeeping.recordRunQuality(request),
    loadRetrainSpec: (request) => bookkeeping.loadRetrainSpec(request),
    compareWithChampion: (request) => bookkeeping.compareWithChampion(request),
    registerModel: (request) => bookkeeping.registerModel(request),
    promoteModel: (request) => bookkeeping.promoteModel(request),
    recordModelExports: (request) => bookkeeping.recordModelExports(request),
  };

  /** The train activity as the Python worker runs it, reduced to its conversation with the workflow. */
  private async train(request: TrainRequest): Promise<TrainResult> {
    const context = Context.current();
    const attempt = this.trainScript.shift() ?? { outcome: 'complete' };
    if (attempt.outcome === 'out-of-memory') {
      throw ApplicationFailure.create({
        type: FailureType.OutOfMemory,
        message: `CUDA out of memory at micro_batch_size ${request.spec.train.micro_batch_size}`,
      });
    }
    const workflow = this.client.workflow.getHandle(callingWorkflowId());
    const totalSteps = request.spec.train.max_steps ?? 12;
    const every = request.spec.checkpoint.every_steps;
    const own = this.checkpointsOf(request.run_uri);
    const resumedFrom = own.at(-1) ?? 0;
    this.resumedFrom.push(resumedFrom);
    const message = (event: TrainingProgressMessage['event'], step: number): TrainingProgressMessage => ({
      event,
      attempt: context.info.attempt,
      step,
      total_steps: totalSteps,
      epoch: 0,
      loss: lossAt(step),
      val_loss: null,
      best: null,
      tokens_per_second: 1000,
      padded_tokens_per_second: 1100,
      padding_fraction: 0.1,
      eta_seconds: 0,
      last_checkpoint: { step, uri: `${request.run_uri}/checkpoints/step-${step}` },
      resumed_from_step: resumedFrom,
      steps_redone: 0,
      losses: [[step, lossAt(step)]],
    });
    const giveUpAt = Date.now() + 60_000;
    const checkpoint = async (step: number) => {
      if (own.at(-1) === step) return;
      own.push(step);
      this.checkpoints.push(step);
      await workflow.signal(trainingProgressSignal, message('checkpoint', step));
      // A real step takes far longer than a workflow task, so the workflow takes in each checkpoint in a task of its
      // own. The fake's steps of milliseconds wait for that: else, on a loaded machine, one task takes in several
      // signals, the history grows by fewer events, and what the history bound does would depend on the load.
      while ((await workflow.query(trainingStateQuery)).progress.last_checkpoint?.step !== step) {
        if (Date.now() > giveUpAt) throw ApplicationFailure.create({ message: `checkpoint ${step} never reached the workflow`, nonRetryable: true });
        await sleep(stepMilliseconds);
      }
    };
    if (resumedFrom > 0) await workflow.signal(trainingProgressSignal, message('resumed', resumedFrom));
    let step = resumedFrom;
    for (;;) {
      if (Date.now() > giveUpAt) throw ApplicationFailure.create({ message: 'the train fake was never stopped', nonRetryable: true });
      context.heartbeat({ step });
      if (context.cancellationSignal.aborted) {
        // Pause, cancel or a rollover: checkpoint where training is, then acknowledge.
        await checkpoint(step);
        throw new CancelledFailure(`stopped at step ${step}`);
      }
      if (attempt.outcome === 'until-checkpoint-requested') {
        const control = await workflow.query(trainingControlQuery);
        if (control.checkpoint_requests > this.seenCheckpointRequests) {
          this.seenCheckpointRequests = control.checkpoint_requests;
          await checkpoint(step);
          break;
        }
      }
      if (step >= totalSteps && attempt.outcome === 'complete') break;
      // A run that trains until stopped keeps going past its last step: the test decides when it stops.
      await sleep(stepMilliseconds);
      if (step < totalSteps) step += 1;
      if (step % every === 0) await checkpoint(step);
    }
    if (attempt.outcome === 'until-checkpoint-requested') step = totalSteps;
    await checkpoint(step);
    return {
      adapter_uri: `${request.run_uri}/adapter`,
      final_step: step,
      total_steps: totalSteps,
      stopped_early: false,
      train_loss: lossAt(step),
      val_loss: 1.3,
      best: null,
      resumed_from_step: resumedFrom,
      steps_trained: step - resumedFrom,
      steps_redone: 0,
      corrupt_checkpoints_skipped: 0,
      last_checkpoint_uri: `${request.run_uri}/checkpoints/step-${step}`,
      backend: request.setup.backend,
      device: request.setup.device,
      dtype: request.setup.dtype,
      optimizer: request.setup.optimizer,
      gradient_checkpointing: request.setup.gradient_checkpointing,
      train_rows: 288,
      packing: request.setup.packing,
      train_sequences: 288,
      processes: request.setup.processes,
      parallelism: request.setup.parallelism,
      tokens_per_second: 1000,
      model_load_seconds: 0.5,
      seconds_to_first_step: 0.1,
      ...(this.trainedOnQueue === undefined ? {} : { worker_task_queue: this.trainedOnQueue }),
    };
  }

  /** The retrain gate's own evaluation activity, for a test whose gate names one. */
  judge: ((request: GateEvaluationRequest) => Promise<GateEvaluationResult>) | undefined;

  /** The task queue the train result names as its worker's own (sticky merge and evaluation); none by default. */
  trainedOnQueue: string | undefined;
}
