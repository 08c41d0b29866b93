/**
 * Lower loss is not a better model. A candidate trained on a dataset whose every answer is the same string lowers
 * the validation loss of its own (equally constant) validation rows, passes the retrain workflow's val-loss gate, and
 * must still be refused by the spec's quality gates: its answers are one string (diversity) and wrong on real
 * references (json field accuracy). Real dev server, real workers, SmolLM2-135M-Instruct trained for real on the CPU: a
 * real model, whose base answers differ from prompt to prompt (the tiny random model answers everything alike before
 * any training, which would prove nothing).
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { stringify as stringifyYaml } from 'yaml';
import { TaskQueue } from '../../src/contract/index.ts';
import { ModelRegistry } from '../../src/registry/index.ts';
import { retrainInput } from '../../src/schedules/index.ts';
import type { RetrainResult } from '../../workflows/retrain.ts';
import { useTestCluster } from '../support/cluster.ts';

const quickstartRows = fileURLToPath(new URL('../../examples/quickstart/data.jsonl', import.meta.url));
const constantAnswer = '{"name":"Anna Berg","age":30,"job":"baker","city":"Oslo"}';

describe('a degenerate candidate', () => {
  const cluster = useTestCluster('degenerate');

  it('lowers its validation loss with one constant answer and is refused by the quality gates', async () => {
    const directory = await mkdtemp(join(cluster().home, 'degenerate-'));
    const rows = (await readFile(quickstartRows, 'utf8'))
      .split('\n')
      .filter((line) => line.trim())
      .map((line) => JSON.parse(line) as { instruction: string; input: string; output: string });
    // Every training and validation answer is the same string: the narrow validation set rewards it.
    await writeFile(join(directory, 'constant.jsonl'), `${rows.map((row) => JSON.stringify({ ...row, output: constantAnswer })).join('\n')}\n`);
    // The suites' references are real answers to real prompts: what the task asks.
    await writeFile(
      join(directory, 'references.jsonl'),
      `${rows
        .slice(0, 8)
        .map((row) => JSON.stringify({ prompt: `${row.instruction}\n\n${row.input}`, reference: row.output }))
        .join('\n')}\n`,
    );
    const specPath = join(directory, 'spec.yaml');
    await writeFile(
      specPath,
      stringifyYaml({
        name: 'degenerate',
        model: { source: 'smollm2-135m-instruct', max_seq_length: 128 },
        dataset: { path: 'constant.jsonl', val_count: 4, seed: 7 },
        lora: { r: 8 },
        train: { epochs: 1, max_steps: 6, micro_batch_size: 4, learning_rate: 0.003 },
        checkpoint: { every_steps: 6, keep_last: 1 },
        merge: { enabled: false },
        evaluate: {
          max_new_tokens: 24,
          references_path: 'references.jsonl',
          suites: [{ kind: 'json', fields: ['name', 'age', 'job', 'city'] }, { kind: 'diversity' }],
          gates: ['diversity.most_common_share <= 0.5', 'json.field_accuracy >= 0.5'],
        },
      }),
    );

    const name = `degenerate-${Date.now().toString(36)}`;
    const input = retrainInput({ name, specPath, artifactRootUri: cluster().artifactRootUri, every: '1h', gate: { margin: 0 } });
    const result: RetrainResult = await cluster().client.workflow.execute('retrain', {
      workflowId: `retrain-${name}`,
      taskQueue: TaskQueue.Orchestration,
      args: [input],
    });

    // The loss went down: the val-loss gate alone would promote it (no champion to beat).
    const registry = new ModelRegistry(cluster().artifactRootUri);
    const [candidate] = (await registry.model(name)).versions;
    expect(candidate!.metrics.val_loss).toBeLessThan(candidate!.metrics.base_val_loss!);
    // The quality gates refuse it, say why, and leave the registry without a champion.
    expect(result.outcome).toBe('not_promoted');
    expect(result.reason).toMatch(/gates failed: diversity\.most_common_share [\d.]+ not <= 0\.5/);
    expect(candidate!.metrics['diversity.most_common_share']).toBeGreaterThan(0.5);
    // The base answered each prompt its own way: the constant answers are what training taught.
    expect(candidate!.metrics['base.diversity.most_common_share']).toBeLessThanOrEqual(0.5);
    expect(candidate!.metrics['json.field_accuracy']).toBeLessThan(0.5);
    expect(candidate!.quality?.verdict.passed).toBe(false);
    expect(await registry.champion(name)).toBeNull();
  }, 1_800_000);
});
