/**
 * Scheduled retraining on Temporal Schedules: each schedule starts the `retrain` workflow for one spec file and
 * one registry model name. The schedule lives in the Temporal server (it survives worker and client restarts);
 * docs/registry.md explains the overlap and catch-up policies chosen here.
 */
import { type Client, ScheduleOverlapPolicy, type ScheduleDescription } from '@temporalio/client';
import { resolve } from 'node:path';
import type { GgufFormat } from '../contract/index.ts';
import { SearchAttribute, TaskQueue } from '../contract/index.ts';
import { InvalidSpecError } from '../errors/index.ts';
import { type ApprovalDecision, approvalSignal, type RetrainGate, type RetrainInput } from '../../workflows/retrain.ts';

/** After a server outage, missed runs this recent are still taken (one, because overlapping runs are skipped). */
export const defaultCatchupWindow = '1 day';
export const defaultGate: RetrainGate = { margin: 0, require_approval: false, approval_timeout: '7 days' };

export interface RetrainScheduleOptions {
  /** The schedule's id and, unless `modelName` says otherwise, the registry's model name. */
  name: string;
  specPath: string;
  artifactRootUri: string;
  /** A cron expression (`0 3 * * 1`)… */
  cron?: string;
  /** …or an interval (`7d`, `12h`, `30s`). */
  every?: string;
  /** IANA time zone for the cron expression (default UTC). */
  timezone?: string;
  modelName?: string;
  gate?: Partial<RetrainGate>;
  exportFormats?: GgufFormat[];
  catchupWindow?: string;
  paused?: boolean;
}

export function retrainInput(options: RetrainScheduleOptions): RetrainInput {
  return {
    spec_path: resolve(options.specPath),
    model_name: options.modelName ?? options.name,
    artifact_root_uri: options.artifactRootUri,
    gate: { ...defaultGate, ...options.gate },
    ...(options.exportFormats?.length ? { export_formats: options.exportFormats } : {}),
  };
}

export async function createRetrainSchedule(client: Client, options: RetrainScheduleOptions) {
  if ((options.cron === undefined) === (options.every === undefined))
    throw new InvalidSpecError(`schedule ${options.name}: give exactly one of cron and every`, { name: options.name });
  const input = retrainInput(options);
  return client.schedule.create({
    scheduleId: options.name,
    spec: {
      ...(options.cron ? { cronExpressions: [options.cron] } : { intervals: [{ every: options.every as string }] }),
      ...(options.timezone ? { timezone: options.timezone } : {}),
    },
    action: {
      type: 'startWorkflow',
      workflowType: 'retrain',
      // Temporal appends the scheduled time, so each run has its own id: retrain-<name>-<time>.
      workflowId: `retrain-${options.name}`,
      taskQueue: TaskQueue.Orchestration,
      args: [input],
      searchAttributes: { [SearchAttribute.Model.name]: [input.model_name] },
    },
    policies: {
      // A retrain never starts while the previous one runs (training can outlast the interval).
      overlap: ScheduleOverlapPolicy.SKIP,
      catchupWindow: options.catchupWindow ?? defaultCatchupWindow,
      pauseOnFailure: false,
    },
    state: { paused: options.paused ?? false, note: `tuneflow retrain of ${input.model_name} from ${input.spec_path}` },
  });
}

export interface ScheduleReport {
  name: string;
  paused: boolean;
  note: string | null;
  spec_path: string | null;
  model_name: string | null;
  next_runs: string[];
  recent_runs: { scheduled_at: string; workflow_id: string }[];
  running: string[];
  runs_taken: number | null;
  runs_skipped_overlap: number | null;
}

function retrainArguments(description: ScheduleDescription): RetrainInput | null {
  const action = description.action;
  return action.type === 'startWorkflow' && action.workflowType === 'retrain' ? ((action.args?.[0] as RetrainInput | undefined) ?? null) : null;
}

export async function describeSchedule(client: Client, name: string): Promise<ScheduleReport> {
  const description = await client.schedule.getHandle(name).describe();
  const input = retrainArguments(description);
  return {
    name,
    paused: description.state.paused,
    note: description.state.note ?? null,
    spec_path: input?.spec_path ?? null,
    model_name: input?.model_name ?? null,
    next_runs: description.info.nextActionTimes.map((time) => time.toISOString()),
    recent_runs: description.info.recentActions.map((run) => ({ scheduled_at: run.scheduledAt.toISOString(), workflow_id: run.action.workflow.workflowId })),
    running: description.info.runningActions.map((run) => run.workflow.workflowId),
    runs_taken: description.info.numActionsTaken,
    runs_skipped_overlap: description.info.numActionsSkippedOverlap,
  };
}

/** Every schedule that starts `retrain`. */
export async function listRetrainSchedules(client: Client): Promise<{ name: string; paused: boolean; next_run: string | null }[]> {
  const schedules = [];
  for await (const summary of client.schedule.list()) {
    if (summary.action?.type !== 'startWorkflow' || summary.action.workflowType !== 'retrain') continue;
    schedules.push({ name: summary.scheduleId, paused: summary.state.paused, next_run: summary.info.nextActionTimes[0]?.toISOString() ?? null });
  }
  return schedules.sort((a, b) => a.name.localeCompare(b.name));
}

export const pauseSchedule = (client: Client, name: string, note = 'paused with tuneflow') => client.schedule.getHandle(name).pause(note);
export const unpauseSchedule = (client: Client, name: string, note = 'unpaused with tuneflow') => client.schedule.getHandle(name).unpause(note);
/** Runs now, under the schedule's overlap policy: skipped while a retrain of it is running. */
export const triggerSchedule = (client: Client, name: string) => client.schedule.getHandle(name).trigger();
/** Takes the runs the schedule would have taken between from and to (one at a time, overlap skipped). */
export const backfillSchedule = (client: Client, name: string, from: Date, to: Date) =>
  client.schedule.getHandle(name).backfill({ start: from, end: to, overlap: ScheduleOverlapPolicy.SKIP });
export const deleteSchedule = (client: Client, name: string) => client.schedule.getHandle(name).delete();

/** A reviewer's decision for a retrain run waiting for approval (`retrain` stage awaiting_approval). */
export const decideApproval = (client: Client, workflowId: string, decision: ApprovalDecision) =>
  client.workflow.getHandle(workflowId).signal(approvalSignal, decision);
