/**
 * The TypeScript and Python halves of the contract must name the same queues, activities and failures, and the
 * JSON Schema the Python worker validates against must be the one generated from today's zod schemas.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generatedSchemas, pythonSchemasDirectory } from '../scripts/generate-schemas.ts';
import { runSpecSchema } from '../src/spec/schema.ts';
import { pythonActivitiesDirectory, readyEnvironment } from '../scripts/python-environment.mjs';
import {
  AcceleratorActivity,
  FailureType,
  nonRetryableFailureTypes,
  OrchestrationActivity,
  SearchAttribute,
  TaskQueue,
  WorkflowMessage,
} from '../src/contract/index.ts';
import type { AcceleratorActivities } from '../src/contract/index.ts';

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
    expect(python.search_attributes).toEqual(
      Object.values(SearchAttribute)
        .map(({ name, type }) => [name, type])
        .sort(),
    );
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
      export_gguf: true,
    };
    expect(sorted(Object.keys(called))).toEqual(sorted(Object.values(AcceleratorActivity)));
  });

  it('exports every orchestration activity from the TypeScript worker under its contract name', async () => {
    const activities = await import('../activities/index.ts');
    for (const name of Object.values(OrchestrationActivity)) expect(typeof activities[name]).toBe('function');
  });
});

describe('payload checks on the TypeScript side', () => {
  it('refuse a malformed planRun request with a non-retryable contract violation naming the field', async () => {
    const { planRun } = await import('../activities/index.ts');
    const split = {
      rows: 1,
      total_tokens: 10,
      trainable_tokens: 5,
      rows_trained: 1,
      tokens_trained: 10,
      length_histogram: [{ up_to: 10, rows: 1, tokens: 10 }],
    };
    const facts = {
      model_uri: 'file:///models/tiny',
      source: 'tiny',
      tokenizer_identity: '0'.repeat(64),
      device: { kind: 'cpu', name: 'cpu', memory_gib: 8, count: 1 },
      cuda_bf16_supported: false,
      unsloth_importable: false,
      bitsandbytes_importable: 'no',
    };
    const request = {
      spec: runSpecSchema.parse({ model: { source: 'tiny' }, dataset: { path: '/data.jsonl' } }),
      model: facts,
      tokens: { train: split, val: split, train_tokens_uri: 'file:///tokens/train', val_tokens_uri: 'file:///tokens/val' },
    };
    await expect(planRun(request as never)).rejects.toMatchObject({
      type: FailureType.ContractViolation,
      nonRetryable: true,
      message: expect.stringMatching(/^the planRun request violates the contract at \$\.model\.bitsandbytes_importable: .*\(and 1 more\)$/),
    });
  });
});

describe('generated JSON Schema', () => {
  const fresh = generatedSchemas();

  it('is committed exactly as a fresh generation writes it (regenerate with `npm run generate:schemas`)', () => {
    const stale = [...fresh].filter(([path, text]) => !existsSync(path) || readFileSync(path, 'utf8') !== text).map(([path]) => relative(process.cwd(), path));
    expect(stale, 'these files differ from the contract: run `npm run generate:schemas` and commit the result').toEqual([]);
    const committed = readdirSync(pythonSchemasDirectory).map((name) => join(pythonSchemasDirectory, name));
    const orphaned = committed.filter((path) => !fresh.has(path)).map((path) => relative(process.cwd(), path));
    expect(orphaned, 'these files describe no shape of the contract: run `npm run generate:schemas`').toEqual([]);
  });
});
