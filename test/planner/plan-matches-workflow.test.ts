/**
 * `tuneflow plan` and the workflow's plan stage are one path: for the same spec on the same worker facts, the CLI's
 * plan and setup equal those of the planRun activity. The facts are the ones the Python worker's resolve_model
 * reports for the tiny model; a CUDA worker's facts are the same model on an H200 with Unsloth and bitsandbytes.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { planRun } from '../../activities/index.ts';
import { pythonActivitiesDirectory, readyEnvironment } from '../../scripts/python-environment.mjs';
import { type ModelFacts, modelFactsSchema, type TokenStatistics } from '../../src/contract/index.ts';
import { runPlanCommand } from '../../src/cli/commands/plan.ts';
import { loadSpec } from '../../src/spec/load.ts';

const reportFacts = `
import json
import tuneflow_activities.offline
from tuneflow_activities.models import TINY_RANDOM_LLAMA, model_facts, resolve_model_directory
print(json.dumps(model_facts(resolve_model_directory(TINY_RANDOM_LLAMA))))
`;

const workspace = mkdtempSync(join(tmpdir(), 'tuneflow-plan-facts-'));
const datasetTokens = 123_456;
const split = {
  rows: 1000,
  total_tokens: datasetTokens,
  trainable_tokens: 60_000,
  max: 4096,
  rows_trained: 1000,
  tokens_trained: datasetTokens,
  // 1000 rows: 600 of about 100 tokens, 400 of about 250 (the histogram token_statistics returns).
  length_histogram: [
    { up_to: 107, rows: 600, tokens: 60_000 },
    { up_to: 256, rows: 400, tokens: datasetTokens - 60_000 },
  ],
};
const tokens: TokenStatistics = { train: split, val: split, train_tokens_uri: 'file:///tokens/train', val_tokens_uri: 'file:///tokens/val' };

async function bothPlans(specText: string, facts: ModelFacts) {
  const specPath = join(workspace, `spec-${facts.device.kind}.yaml`);
  const factsPath = join(workspace, `facts-${facts.device.kind}.json`);
  writeFileSync(specPath, specText);
  writeFileSync(factsPath, JSON.stringify(facts));
  const statisticsPath = join(workspace, 'token-statistics.json');
  writeFileSync(statisticsPath, JSON.stringify(tokens));
  const command = await runPlanCommand([specPath, '--facts', factsPath, '--token-statistics', statisticsPath, '--json']);
  const { setup, request: _request, inference_memory: _inference, ...plan } = JSON.parse(command.output) as Record<string, unknown>;
  const workflow = await planRun({ spec: loadSpec(specPath), model: facts, tokens });
  return { cli: { setup, plan }, workflow };
}

describe('the CLI plan and the workflow plan', () => {
  const cpuFacts = modelFactsSchema.parse(
    JSON.parse(
      execFileSync(readyEnvironment().python, ['-c', reportFacts], {
        cwd: pythonActivitiesDirectory,
        env: { ...process.env, PYTHONPATH: pythonActivitiesDirectory, HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1' },
        encoding: 'utf8',
      }),
    ),
  );
  const spec = [
    'model:',
    '  source: tiny-random-llama',
    '  max_seq_length: 256',
    'dataset:',
    '  path: data.jsonl',
    'lora:',
    '  r: 8',
    'train:',
    '  micro_batch_size: 2',
    '  epochs: 2',
    '',
  ].join('\n');

  it('are equal on the CPU worker resolve_model reported', async () => {
    const { cli, workflow } = await bothPlans(spec, cpuFacts);
    expect(cli).toEqual(workflow);
    expect(workflow.setup).toMatchObject({ device: 'cpu', backend: 'hf-peft', dtype: 'float32' });
    expect(workflow.plan.run_time).toMatchObject({ packing: false, steps: 1000, compiled_shapes: 0 });
    expect(workflow.plan.eta_seconds).toBe(workflow.plan.run_time?.eta_seconds);
  });

  const gpuFacts: ModelFacts = {
    ...cpuFacts,
    device: { kind: 'cuda', name: 'NVIDIA H200', memory_gib: 139.8, count: 1 },
    cuda_bf16_supported: true,
    unsloth_importable: true,
    bitsandbytes_importable: true,
  };

  it('are equal on a CUDA worker, where auto resolves to Unsloth', async () => {
    const { cli, workflow } = await bothPlans(spec, gpuFacts);
    expect(cli).toEqual(workflow);
    expect(workflow.setup).toMatchObject({ device: 'cuda', backend: 'unsloth', dtype: 'bfloat16', optimizer: 'adamw_8bit' });
    // The tiny model fits the H200 many times over without checkpointing: auto takes the faster setting.
    expect(workflow.setup.gradient_checkpointing).toBe(false);
    expect(workflow.plan.auto_choice?.rejected).toMatchObject([{ gradient_checkpointing: true }]);
    expect(workflow.plan.device).toMatchObject({ kind: 'cuda', name: 'h200' });
    // Unsloth packs on auto: fewer sequences than rows, nothing compiled.
    expect(workflow.setup.packing).toBe(true);
    expect(workflow.plan.run_time?.packing).toBe(true);
    expect(workflow.plan.run_time?.sequences).toBeLessThan(1000);
  });

  it('are equal for several processes: DDP on two GPUs, FSDP on two CPU processes', async () => {
    const twoGpus = await bothPlans(spec.replace('train:\n', 'device:\n  gpu_count: 2\ntrain:\n'), {
      ...gpuFacts,
      device: { ...gpuFacts.device, count: 2 },
    });
    expect(twoGpus.cli).toEqual(twoGpus.workflow);
    expect(twoGpus.workflow.setup).toMatchObject({ processes: 2, parallelism: 'ddp', backend: 'unsloth' });
    expect(twoGpus.workflow.plan.device).toMatchObject({ kind: 'cuda', count: 2 });
    expect(twoGpus.workflow.plan.effective_batch_size).toBe(4);

    const twoCpuProcesses = await bothPlans(spec.replace('train:\n', 'device:\n  cpu_processes: 2\n  parallelism: fsdp\ntrain:\n'), cpuFacts);
    expect(twoCpuProcesses.cli).toEqual(twoCpuProcesses.workflow);
    expect(twoCpuProcesses.workflow.setup).toMatchObject({ device: 'cpu', processes: 2, parallelism: 'fsdp', backend: 'hf-peft' });
    // Two processes of micro-batch 2: 250 steps an epoch over the 1000 rows, 500 in two epochs.
    expect(twoCpuProcesses.workflow.plan.run_time).toMatchObject({ steps: 500 });
  });

  it("refuses a facts file that is not a worker's facts, naming the field", async () => {
    const specPath = join(workspace, 'spec-bad-facts.yaml');
    const factsPath = join(workspace, 'bad-facts.json');
    writeFileSync(specPath, spec);
    const { device: _device, ...withoutDevice } = cpuFacts;
    writeFileSync(factsPath, JSON.stringify(withoutDevice));
    const result = await runPlanCommand([specPath, '--facts', factsPath]);
    expect(result.exit_code).toBe(2);
    expect(result.output).toMatch(/^error: --facts .*bad-facts\.json \(a worker's facts, resolve_model's result\) violates the contract at \$\.device: /);
  });
});
