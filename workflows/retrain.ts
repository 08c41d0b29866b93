/**
 * The retrain workflow, what a schedule starts: prepare → compare with the champion → (unchanged: record a skip
 * and stop, no GPU touched) → train a challenger as a child fineTune → evaluate the champion on the challenger's
 * held-out set (its judge suites comparing the challenger's answers with the champion's) → gate → optional human
 * approval (days if need be) → promote by compare-and-swap in the registry.
 *
 * Every model trained is registered with its lineage whether or not it is promoted, so `tuneflow models show`
 * tells what was tried and why it lost. Data travels as URIs; the registry is touched only by activities.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  defineQuery,
  defineSignal,
  executeChild,
  patched,
  proxyActivities,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { GgufFormat } from '../src/contract/index.ts';
import { FailureType, SearchAttribute, TaskQueue } from '../src/contract/index.ts';
import {
  comparedScores,
  describeVerdict,
  evaluateGates,
  type GateVerdict,
  type JudgedAgainst,
  metricsFromScores,
  SuiteKind,
  type SuiteEvaluation,
} from '../src/quality/index.ts';
import type { ModelVersion } from '../src/registry/schema.ts';
import { bookkeeping, python, retry } from './activities.ts';
import { fineTune } from './fine-tune.ts';
import { prepare } from './stages/index.ts';

/** Histories recorded before the judge compared the challenger with the champion: it compared it with its base. */
export const judgeAgainstChampionPatch = 'tuneflow-judge-against-champion';

export interface RetrainGate {
  /** The challenger must reach val loss ≤ champion's × (1 − margin) on the same held-out set. */
  margin: number;
  /** Wait for approveSignal / rejectSignal before promoting a challenger that passed the gate. */
  require_approval: boolean;
  /** How long to wait for a decision; no decision by then means not promoted. */
  approval_timeout: string;
  /** An activity of yours that must also pass a challenger that beat the champion's loss (its name and task queue). */
  evaluation?: { activity: string; task_queue: string };
}

/** What a gate evaluation activity receives: both models as the registry has them, and the shared held-out set. */
export interface GateEvaluationRequest {
  model_name: string;
  challenger: ModelVersion;
  champion: ModelVersion | null;
  val_uri: string;
}
export interface GateEvaluationResult {
  passes: boolean;
  reason: string;
}

export interface RetrainInput {
  /** The spec file, read afresh by every run: a schedule picks up edits to it. */
  spec_path: string;
  /** The registry's model name (a schedule's name by default). */
  model_name: string;
  artifact_root_uri: string;
  gate: RetrainGate;
  /** GGUF files to export from a promoted challenger's merged model. */
  export_formats?: GgufFormat[];
}

export const RetrainOutcome = {
  /** Spec and data equal the champion's: nothing trained. */
  Skipped: 'skipped',
  Promoted: 'promoted',
  /** Trained and registered, but the gate failed. */
  NotPromoted: 'not_promoted',
  /** Passed the gate; a person rejected it, or nobody decided in time. */
  Rejected: 'rejected',
  /** Passed the gate, but another promotion replaced the champion meanwhile. */
  Superseded: 'superseded',
} as const;
export type RetrainOutcome = (typeof RetrainOutcome)[keyof typeof RetrainOutcome];

export interface RetrainResult {
  outcome: RetrainOutcome;
  reason: string;
  model_name: string;
  spec_hash: string;
  dataset_hash: string;
  /** The champion before this run. */
  champion: { version: number; val_loss: number | null } | null;
  /** The model this run trained and registered. */
  challenger: { version: number; val_loss: number | null; train_workflow_id: string } | null;
  /**
   * The spec's evaluate.gates judged on the challenger's suites against its base and the champion (a judge gate's
   * check names its opponent: the champion when there is one); null without gates.
   */
  quality?: GateVerdict | null;
  /** What each judge suite compared the challenger with: champion vN when there is one, else its base. */
  judged_against?: JudgedAgainst;
}

export type RetrainStage = 'prepare' | 'train' | 'evaluate' | 'awaiting_approval' | 'done';

export interface RetrainState {
  stage: RetrainStage;
  result: RetrainResult | null;
  /** While awaiting approval: what a reviewer decides on. */
  proposal: { challenger: number; challenger_val_loss: number | null; champion: number | null; champion_val_loss: number | null } | null;
}

export interface ApprovalDecision {
  approved: boolean;
  by?: string;
  reason?: string;
}

/** A reviewer's decision on a challenger that passed the gate. */
export const approvalSignal = defineSignal<[ApprovalDecision]>('approval');
export const retrainStateQuery = defineQuery<RetrainState>('retrainState');

const isRegistryConflict = (error: unknown) =>
  error instanceof ActivityFailure && error.cause instanceof ApplicationFailure && error.cause.type === FailureType.RegistryConflict;

/** The gate, in one place: no champion → pass; otherwise a loss that beats the champion's by the margin. */
function gatePasses(challenger: number | null, champion: number | null, margin: number): { passes: boolean; reason: string } {
  if (challenger === null) return { passes: false, reason: 'the challenger has no validation loss (evaluate disabled?)' };
  if (champion === null) return { passes: true, reason: 'no champion to beat' };
  const threshold = champion * (1 - margin);
  return challenger <= threshold
    ? { passes: true, reason: `val loss ${challenger.toFixed(4)} ≤ ${threshold.toFixed(4)} (champion ${champion.toFixed(4)} × (1 − ${margin}))` }
    : { passes: false, reason: `val loss ${challenger.toFixed(4)} > ${threshold.toFixed(4)} (champion ${champion.toFixed(4)} × (1 − ${margin}))` };
}

export async function retrain(input: RetrainInput): Promise<RetrainResult> {
  const state: RetrainState = { stage: 'prepare', result: null, proposal: null };
  let decision: ApprovalDecision | null = null;
  setHandler(retrainStateQuery, () => state);
  setHandler(approvalSignal, (received) => {
    if (state.stage === 'awaiting_approval' && decision === null) decision = received;
  });
  upsertSearchAttributes({ [SearchAttribute.Model.name]: [input.model_name] });

  const finish = (result: RetrainResult): RetrainResult => {
    state.stage = 'done';
    state.result = result;
    // The outcome is visible in the Web UI and `tuneflow schedule describe` without reading the history.
    upsertMemo({ retrain: { outcome: result.outcome, reason: result.reason } });
    return result;
  };

  const loaded = await bookkeeping.loadRetrainSpec({ spec_path: input.spec_path });
  // A history recorded before the suites holds a spec without them: it replays with none.
  const spec = { ...loaded, evaluate: { ...loaded.evaluate, suites: loaded.evaluate.suites ?? [], gates: loaded.evaluate.gates ?? [] } };
  const dataset = await prepare(spec, { artifactRootUri: input.artifact_root_uri });
  const comparison = await bookkeeping.compareWithChampion({
    artifact_root_uri: input.artifact_root_uri,
    model_name: input.model_name,
    spec,
    dataset_hash: dataset.hash,
  });
  const champion: ModelVersion | null = comparison.champion;
  const base = { model_name: input.model_name, spec_hash: comparison.spec_hash, dataset_hash: dataset.hash };
  if (comparison.unchanged && champion) {
    return finish({
      ...base,
      outcome: RetrainOutcome.Skipped,
      reason: `spec and dataset unchanged since champion v${champion.version}`,
      champion: { version: champion.version, val_loss: champion.metrics.val_loss ?? null },
      challenger: null,
    });
  }

  state.stage = 'train';
  const trainWorkflowId = `${workflowInfo().workflowId}-train`;
  const trained = await executeChild(fineTune, {
    workflowId: trainWorkflowId,
    taskQueue: TaskQueue.Orchestration,
    args: [{ spec, artifact_root_uri: input.artifact_root_uri }],
  });

  // The champion is scored on the challenger's held-out set (same rows, same settings), so the losses compare.
  state.stage = 'evaluate';
  let championLoss: number | null = null;
  let championSuites: SuiteEvaluation | null = null;
  // Histories from before judged the challenger against its base and ran no judge for the champion.
  const judgesChampion = champion !== null && patched(judgeAgainstChampionPatch);
  if (champion) {
    const accelerator = python(spec.train.heartbeat_timeout_seconds);
    // Same base: the challenger's tokenised held-out rows serve both. Another base has its own tokenizer, so the
    // same rows are tokenised for it.
    // A judge compares the challenger with the champion here: the champion's evaluation receives the challenger's
    // answers (its own evaluation's) and judges them against the champion's, which it generates anyway, so nobody
    // answers twice.
    const challengerAnswers = judgesChampion ? (trained.quality?.suites.answers ?? []) : [];
    const judged = challengerAnswers.length > 0;
    // The gates are judged here, not there (and some may name the judge).
    const suites = judged ? spec.evaluate.suites : spec.evaluate.suites.filter((suite) => suite.kind !== SuiteKind.Judge);
    const championSpec = {
      ...spec,
      model: { ...spec.model, source: champion.lineage.base_model },
      evaluate: { ...spec.evaluate, sample_prompts: [], suites, gates: [] },
    };
    let championBase = trained.model;
    let valTokensUri = trained.tokens.val_tokens_uri;
    if (champion.lineage.base_model !== spec.model.source) {
      championBase = await accelerator.resolve_model({ spec: championSpec });
      const tokens = await accelerator.token_statistics({
        spec: championSpec,
        model_uri: championBase.model_uri,
        tokenizer_identity: championBase.tokenizer_identity,
        train_uri: dataset.train_uri,
        val_uri: dataset.val_uri,
      });
      valTokensUri = tokens.val_tokens_uri;
    }
    const scored = await accelerator.evaluate({
      spec: championSpec,
      // The challenger's setup: both adapters load the same way (a 4-bit run scores both in 4-bit).
      setup: trained.setup,
      model_uri: championBase.model_uri,
      adapter_uri: champion.adapter_uri,
      val_tokens_uri: valTokensUri,
      ...(judged ? { challenger: { champion_version: champion.version, answers: challengerAnswers } } : {}),
    });
    championLoss = scored.tuned_val_loss;
    championSuites = scored.suites;
  }
  const challengerLoss = trained.metrics.tuned_val_loss;
  // The spec's gates on the suites: the challenger's scores against its base's and the champion's (same held-out
  // rows), a judge's against the champion when there is one.
  const suiteScores = comparedScores(trained.quality?.suites, champion ? { version: champion.version, suites: championSuites } : null);
  // A history from before decided its judge gates on the score against the base: it replays the same decision.
  const gateScores = champion === null || judgesChampion ? suiteScores : { ...suiteScores, judged_against: {} };
  const quality = spec.evaluate.gates.length ? evaluateGates(spec.evaluate.gates, gateScores) : null;
  const judgedAgainst = Object.keys(suiteScores.judged_against).length ? { judged_against: suiteScores.judged_against } : {};
  const challenger = await bookkeeping.registerModel({
    artifact_root_uri: input.artifact_root_uri,
    model: {
      name: input.model_name,
      adapter_uri: trained.artifacts.adapter,
      merged_uri: trained.artifacts.merged,
      lineage: {
        spec_hash: comparison.spec_hash,
        dataset_hash: dataset.hash,
        base_model: spec.model.source,
        parent_checkpoint: trained.training.last_checkpoint_uri,
        workflow_id: trainWorkflowId,
      },
      metrics: {
        val_loss: challengerLoss,
        base_val_loss: trained.metrics.base_val_loss,
        train_loss: trained.metrics.final_train_loss,
        ...(champion ? { champion_val_loss: championLoss } : {}),
        ...metricsFromScores(suiteScores),
      },
      evaluated_on: dataset.hash,
      ...(quality ? { quality: { gates: spec.evaluate.gates, verdict: quality } } : {}),
      ...judgedAgainst,
    },
  });
  const summary = {
    ...base,
    champion: champion ? { version: champion.version, val_loss: championLoss } : null,
    challenger: { version: challenger.version, val_loss: challengerLoss, train_workflow_id: trainWorkflowId },
    quality,
    ...judgedAgainst,
  };

  const gate = gatePasses(challengerLoss, championLoss, input.gate.margin);
  if (!gate.passes) return finish({ ...summary, outcome: RetrainOutcome.NotPromoted, reason: gate.reason });
  // A lower loss is not a better model (a constant answer can lower it): the spec's gates must pass too.
  if (quality && !quality.passed) return finish({ ...summary, outcome: RetrainOutcome.NotPromoted, reason: `${gate.reason}, but ${describeVerdict(quality)}` });
  let reason = quality ? `${gate.reason}; ${describeVerdict(quality)}` : gate.reason;
  if (input.gate.evaluation) {
    const { activity, task_queue } = input.gate.evaluation;
    const judges = proxyActivities<Record<string, (request: GateEvaluationRequest) => Promise<GateEvaluationResult>>>({
      taskQueue: task_queue,
      startToCloseTimeout: '1 day',
      // The stages' retry rule: infrastructure failures retry, the contract's non-retryable types do not.
      retry,
    });
    const verdict = await judges[activity]!({ model_name: input.model_name, challenger, champion, val_uri: dataset.val_uri });
    if (!verdict.passes) return finish({ ...summary, outcome: RetrainOutcome.NotPromoted, reason: `${activity}: ${verdict.reason}` });
    reason = `${reason}; ${activity}: ${verdict.reason}`;
  }

  if (input.gate.require_approval) {
    state.stage = 'awaiting_approval';
    state.proposal = {
      challenger: challenger.version,
      challenger_val_loss: challengerLoss,
      champion: champion?.version ?? null,
      champion_val_loss: championLoss,
    };
    // A durable timer: the wait survives worker restarts and costs nothing while it lasts.
    const decided = await condition(() => decision !== null, input.gate.approval_timeout);
    const received = decision as ApprovalDecision | null;
    if (!decided || !received) return finish({ ...summary, outcome: RetrainOutcome.Rejected, reason: `no decision within ${input.gate.approval_timeout}` });
    if (!received.approved) {
      return finish({
        ...summary,
        outcome: RetrainOutcome.Rejected,
        reason: `rejected${received.by ? ` by ${received.by}` : ''}: ${received.reason ?? 'no reason given'}`,
      });
    }
  }

  try {
    await bookkeeping.promoteModel({
      artifact_root_uri: input.artifact_root_uri,
      name: input.model_name,
      version: challenger.version,
      expected_champion: champion?.version ?? null,
      reason: `${workflowInfo().workflowId}: ${reason}`,
    });
  } catch (error) {
    if (!isRegistryConflict(error)) throw error;
    return finish({ ...summary, outcome: RetrainOutcome.Superseded, reason: 'another promotion replaced the champion while this run decided' });
  }

  if (input.export_formats?.length && trained.artifacts.merged) {
    const exported = await python(spec.train.heartbeat_timeout_seconds).export_gguf({
      model_uri: trained.artifacts.merged,
      run_uri: trained.run_uri,
      formats: input.export_formats,
      name: `${input.model_name}-v${challenger.version}`,
    });
    await bookkeeping.recordModelExports({
      artifact_root_uri: input.artifact_root_uri,
      name: input.model_name,
      version: challenger.version,
      exports: exported.exports,
    });
  }
  return finish({ ...summary, outcome: RetrainOutcome.Promoted, reason });
}
