/** The TypeScript and Python halves of the contract must name the same queues, activities and failures. */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { pythonActivitiesDirectory, readyEnvironment } from '../scripts/python-environment.mjs';
import { AcceleratorActivity, FailureType, nonRetryableFailureTypes, OrchestrationActivity, SearchAttribute, TaskQueue, WorkflowMessage } from '../src/contract.ts';
import type { AcceleratorActivities } from '../src/accelerator.ts';

const dumpPythonContract = `
import json
from tuneflow_activities import contract as c
from tuneflow_activities.activities import ALL_ACTIVITIES
print(json.dumps({
  "task_queues": sorted(q.value for q in c.TaskQueue),
  "orchestration": sorted(a.value for a in c.OrchestrationActivity),
  "accelerator": sorted(a.value for a in c.AcceleratorActivity),
  "failures": sorted(f.value for f in c.FailureType),
  "messages": sorted(m.value for m in c.WorkflowMessage),
  "non_retryable": sorted(f.value for f in c.NON_RETRYABLE_FAILURE_TYPES),
  "search_attributes": sorted([name, kind] for name, kind in c.SEARCH_ATTRIBUTES.values()),
  "registered": sorted(f.__temporal_activity_definition.name for f in ALL_ACTIVITIES),
}))
`;

describe('contract', () => {
  const python = JSON.parse(
    execFileSync(readyEnvironment().python, ['-c', dumpPythonContract], {
      cwd: pythonActivitiesDirectory,
      env: { ...process.env, PYTHONPATH: pythonActivitiesDirectory },
      encoding: 'utf8',
    }),
  );
  const sorted = (values: Iterable<string>) => [...values].sort();

  it('declares the same task queues, activities, failure types and search attributes on both sides', () => {
    expect(python.task_queues).toEqual(sorted(Object.values(TaskQueue)));
    expect(python.orchestration).toEqual(sorted(Object.values(OrchestrationActivity)));
    expect(python.accelerator).toEqual(sorted(Object.values(AcceleratorActivity)));
    expect(python.failures).toEqual(sorted(Object.values(FailureType)));
    expect(python.messages).toEqual(sorted(Object.values(WorkflowMessage)));
    expect(python.non_retryable).toEqual(sorted(nonRetryableFailureTypes));
    expect(python.search_attributes).toEqual(Object.values(SearchAttribute).map(({ name, type }) => [name, type]).sort());
  });

  it('registers exactly the accelerator activities on the Python worker, under their contract names', () => {
    expect(python.registered).toEqual(sorted(Object.values(AcceleratorActivity)));
    // The workflow calls them through this interface; its method names must be the contract's names.
    const called: Record<keyof AcceleratorActivities, true> = {
      resolve_model: true,
      token_statistics: true,
      train: true,
      merge: true,
      evaluate: true,
      verify_checkpoints: true,
    };
    expect(sorted(Object.keys(called))).toEqual(sorted(Object.values(AcceleratorActivity)));
  });

  it('exports every orchestration activity from the TypeScript worker under its contract name', async () => {
    const activities = await import('../activities/index.ts');
    for (const name of Object.values(OrchestrationActivity)) expect(typeof activities[name]).toBe('function');
  });
});
