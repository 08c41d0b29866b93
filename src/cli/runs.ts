/**
 * What the read commands ask Temporal that `src/client.ts` does not: the list of runs through the visibility
 * store (tuneflow's search attributes), a run's directory, and a finished run's result.
 */
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { fileURLToPath } from 'node:url';
import { SearchAttribute } from '../contract/index.ts';
import { homeLayout } from '../runtime/home.ts';
import { RunLayout } from '../runtime/layout.ts';
import { type FineTuneResult, type fineTune, stateQuery } from '../../workflows/index.ts';
import { CommandError } from './command-error.ts';
import { ExitCode } from './exit-code.ts';

const keyword = (attribute: { name: string }) => defineSearchAttributeKey(attribute.name, SearchAttributeType.KEYWORD);
const attributeKeys = {
  status: keyword(SearchAttribute.Status),
  stage: keyword(SearchAttribute.Stage),
  model: keyword(SearchAttribute.Model),
  step: defineSearchAttributeKey(SearchAttribute.Step.name, SearchAttributeType.INT),
  loss: defineSearchAttributeKey(SearchAttribute.Loss.name, SearchAttributeType.DOUBLE),
};

export interface RunFilters {
  status?: string;
  model?: string;
  stage?: string;
  limit: number;
}

/** One row of `tuneflow list`. */
export interface RunSummary {
  workflow_id: string;
  /** running, pausing, paused (the run's own word while it runs); completed, failed, cancelled, terminated, timed_out. */
  status: string;
  stage: string | null;
  model: string | null;
  step: number | null;
  loss: number | null;
  started_at: string;
  closed_at: string | null;
}

/** A visibility query string literal; a quote in a value would end it, so such values are refused. */
function literal(field: string, value: string): string {
  if (/['"\\]/.test(value)) throw new CommandError(`--${field} cannot contain quotes or backslashes: ${value}`, ExitCode.InvalidInput);
  return `'${value}'`;
}

export function visibilityQuery(filters: Omit<RunFilters, 'limit'>): string {
  const clauses = ["WorkflowType = 'fineTune'"];
  if (filters.status) clauses.push(`${SearchAttribute.Status.name} = ${literal('status', filters.status)}`);
  if (filters.model) clauses.push(`${SearchAttribute.Model.name} = ${literal('model', filters.model)}`);
  if (filters.stage) clauses.push(`${SearchAttribute.Stage.name} = ${literal('stage', filters.stage)}`);
  return clauses.join(' AND ');
}

function summarise(execution: WorkflowExecutionInfo): RunSummary {
  const attributes = execution.typedSearchAttributes;
  const temporalStatus = execution.status.name.toLowerCase();
  return {
    workflow_id: execution.workflowId,
    // A running run may be paused (Temporal says RUNNING for both); an ended one is what Temporal says it is.
    status: temporalStatus === 'running' ? (attributes.get(attributeKeys.status) ?? temporalStatus) : temporalStatus,
    stage: attributes.get(attributeKeys.stage) ?? null,
    model: attributes.get(attributeKeys.model) ?? null,
    step: attributes.get(attributeKeys.step) ?? null,
    loss: attributes.get(attributeKeys.loss) ?? null,
    started_at: execution.startTime.toISOString(),
    closed_at: execution.closeTime?.toISOString() ?? null,
  };
}

/** Newest first. A run that continued as new is listed once: its latest execution. */
export async function listRuns(client: Client, filters: RunFilters): Promise<RunSummary[]> {
  const runs: RunSummary[] = [];
  const seen = new Set<string>();
  for await (const execution of client.workflow.list({ query: visibilityQuery(filters), pageSize: Math.min(filters.limit * 2, 1000) })) {
    if (seen.has(execution.workflowId)) continue;
    seen.add(execution.workflowId);
    runs.push(summarise(execution));
    if (runs.length >= filters.limit) break;
  }
  return runs;
}

/**
 * The run's directory in the artifact store, as the workflow says: from its result once completed (read from
 * history, no worker needed), from its state while it runs; otherwise where this home's artifact store keeps it.
 */
export async function runDirectory(client: Client, workflowId: string): Promise<string> {
  const handle = client.workflow.getHandle<typeof fineTune>(workflowId);
  const { status } = await handle.describe();
  const runUri =
    status.name === 'COMPLETED'
      ? (await handle.result()).run_uri
      : status.name === 'RUNNING'
        ? await handle.query(stateQuery).then(
            (state) => state.run_uri,
            () => null,
          )
        : null;
  return runUri ? fileURLToPath(runUri) : RunLayout.of(homeLayout().artifactRoot, workflowId).root;
}

/** A completed run's result, read from its history (no worker needed); a clear error for any other status. */
export async function completedResult(client: Client, workflowId: string): Promise<FineTuneResult> {
  const handle = client.workflow.getHandle<typeof fineTune>(workflowId);
  const description = await handle.describe();
  if (description.status.name !== 'COMPLETED') {
    throw new CommandError(
      `run ${workflowId} is ${description.status.name.toLowerCase()}, not completed`,
      ExitCode.Unsuccessful,
      description.status.name === 'RUNNING' ? `wait for it: tuneflow status ${workflowId} --follow` : `tuneflow status ${workflowId} says why`,
    );
  }
  return handle.result();
}
