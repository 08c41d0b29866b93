import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runPlanCommand } from '../../src/cli/commands/plan.ts';

const workspace = mkdtempSync(join(tmpdir(), 'tuneflow-plan-'));

describe('tuneflow plan', () => {
  it('prints what micro_batch_size auto chose for --batch-size and every split it rejected; refuses a contradicting --grad-accum', async () => {
    const args = ['--model', 'llama-3.1-8b', '--gpu', 'h100', '--quant', '4bit', '--rank', '64', '--seq', '2048', '--batch-size', '8'];
    const result = await runPlanCommand(args);
    expect(result.exit_code).toBe(0);
    expect(result.output).toContain('sequence 2048 × micro-batch 8 × 1 accumulation = effective batch 8, gradient checkpointing off');
    expect(result.output).toMatch(/^Auto: micro-batch 8 × 1, gradient checkpointing off \(.+\): the fastest of 8 that fit/m);
    for (const split of ['8 × 1, gradient checkpointing on', '4 × 2, gradient checkpointing off', '1 × 8, gradient checkpointing on']) {
      expect(result.output).toContain(`  rejected micro-batch ${split}`);
    }
    const fixed = await runPlanCommand([...args, '--micro-batch', '2']);
    expect(fixed.output).toContain('micro-batch 2 × 4 accumulation = effective batch 8');
    const contradicting = await runPlanCommand([...args, '--micro-batch', '4', '--grad-accum', '4']);
    expect(contradicting.exit_code).toBe(2);
    expect(contradicting.output).toContain('train.batch_size 8 is not train.micro_batch_size 4 × train.gradient_accumulation_steps 4');
  });

  it('says a 70B QLoRA does not fit a 4090, why, and what would', async () => {
    const result = await runPlanCommand(['--model', 'llama-3.3-70b', '--gpu', 'rtx-4090', '--quant', '4bit']);
    expect(result.exit_code).toBe(1);
    expect(result.output).toContain('DOES NOT FIT');
    expect(result.output).toMatch(/4-bit NF4 weights of llama-3.3-70b alone take 3\d\.\d+ GiB/);
    expect(result.output).toContain('What would fit');
    expect(result.output).toMatch(/base_weights\s+3\d\.\d{3}/);
  });

  it('plans hypothetical GPUs: --gpus 2 shards a 70B QLoRA whose adapter state two replicas cannot hold, and --parallelism pins it', async () => {
    const args = ['--model', 'llama-3.1-70b', '--gpu', 'a100-80gb', '--gpus', '2', '--quant', '4bit', '--rank', '256', '--optimizer', 'adamw_torch'];
    const auto = await runPlanCommand([...args, '--micro-batch', '1', '--seq', '512']);
    expect(auto.exit_code).toBe(0);
    expect(auto.output).toContain('Device: 2 × a100-80gb, 80 GiB each, FSDP: the model sharded over them');
    expect(auto.output).toMatch(/Note: device\.parallelism auto chose FSDP \(hf-peft\) over the 2 GPUs/);
    // The adapter state is the peak, not loading: the table shows the load term at 0 and no note speaks of it.
    expect(auto.output).toMatch(/\n {2}unsharded_load +0\.000\n/);
    expect(auto.output).not.toContain('Note: FSDP: while loading');
    // Eight 24 GiB GPUs hold a 70B QLoRA, where loading is the peak: the term and the note say so.
    const eight = await runPlanCommand([
      '--model',
      'llama-3.1-70b',
      '--gpu',
      'rtx-4090',
      '--gpus',
      '8',
      '--quant',
      '4bit',
      '--micro-batch',
      '1',
      '--seq',
      '512',
    ]);
    expect(eight.exit_code).toBe(0);
    expect(eight.output).toMatch(/\n {2}unsharded_load +3\.951\n/);
    expect(eight.output).toMatch(/Note: FSDP: while loading, each GPU holds its shard of every layer and, for a moment, the whole embeddings and head/);
    const pinned = JSON.parse((await runPlanCommand([...args, '--micro-batch', '1', '--seq', '512', '--parallelism', 'ddp', '--json'])).output) as Record<
      string,
      unknown
    >;
    expect(pinned).toMatchObject({ fits: false, setup: { processes: 2, parallelism: 'ddp', backend: 'unsloth' }, request: { parallelism: 'ddp' } });
    const cpu = JSON.parse((await runPlanCommand(['--model', 'smollm2-135m', '--gpu', 'cpu', '--cpu-processes', '2', '--json'])).output) as Record<
      string,
      unknown
    >;
    expect(cpu).toMatchObject({ setup: { device: 'cpu', processes: 2, parallelism: 'ddp' }, request: { cpu_processes: 2 } });
  });

  it('refuses GPUs for a CPU run, pointing at device.cpu_processes', async () => {
    const result = await runPlanCommand(['--model', 'smollm2-135m', '--gpu', 'cpu', '--gpus', '2']);
    expect(result.exit_code).toBe(2);
    expect(result.output).toBe('error: device.gpu_count is 2 but the run trains on a CPU; for several CPU processes use device.cpu_processes\n');
  });

  it('prints the JSON the workflow and scripts read', async () => {
    const result = await runPlanCommand([
      '--model',
      'llama-3.1-8b',
      '--gpu',
      'rtx-4090',
      '--quant',
      '4bit',
      '--rank',
      '16',
      '--seq',
      '2048',
      '--micro-batch',
      '2',
      '--json',
    ]);
    expect(result.exit_code).toBe(0);
    const plan = JSON.parse(result.output) as Record<string, unknown>;
    expect(plan).toMatchObject({
      fits: true,
      suggestions: [],
      // Micro-batch 2 of the 8B in 4-bit fits a 24 GB card without checkpointing: auto takes the faster setting.
      request: { model: 'llama-3.1-8b', backend: 'unsloth', optimizer: 'adamw_8bit', gradient_checkpointing: false },
      auto_choice: { fields: ['gradient_checkpointing'], chosen: { gradient_checkpointing: false, fits: true } },
    });
    for (const field of ['peak_vram_gib', 'tokens_per_s', 'tokens_per_hour']) expect(typeof plan[field]).toBe('number');
    expect(Object.keys(plan.breakdown as object)).toContain('activations');
    expect(plan.inference_memory).toHaveLength(3);
  });

  it('answers the seed questions: rank trade-offs, time for the dataset, training vs serving memory', async () => {
    const result = await runPlanCommand([
      '--model',
      'llama-3.1-8b',
      '--gpu',
      'h100',
      '--ranks',
      '8,16,32,64,128,256',
      '--tokens',
      '10000000',
      '--epochs',
      '3',
      '--json',
    ]);
    const plan = JSON.parse(result.output) as {
      rank_trade_offs: { rank: number; trainable_parameters: number; adapter_size_mib: number; peak_vram_gib: number; tokens_per_s: number }[];
      eta_seconds: number;
      tokens_per_s: number;
    };
    expect(plan.rank_trade_offs.map((row) => row.rank)).toEqual([8, 16, 32, 64, 128, 256]);
    const rows = plan.rank_trade_offs;
    for (let index = 1; index < rows.length; index += 1) {
      expect(rows[index]!.trainable_parameters).toBe(2 * rows[index - 1]!.trainable_parameters);
      expect(rows[index]!.peak_vram_gib).toBeGreaterThan(rows[index - 1]!.peak_vram_gib);
      expect(rows[index]!.tokens_per_s).toBeLessThanOrEqual(rows[index - 1]!.tokens_per_s);
    }
    // r=16 on all linear layers of Llama 3.1 8B: 41,943,040 FP32 parameters = 160 MiB.
    expect(rows[1]!.adapter_size_mib).toBeCloseTo(160, 0);
    expect(plan.eta_seconds).toBeCloseTo(30_000_000 / plan.tokens_per_s, -1);
    const text = await runPlanCommand(['--model', 'llama-3.1-8b', '--gpu', 'h100', '--ranks', '8,64', '--tokens', '10000000', '--epochs', '3']);
    expect(text.output).toMatch(/Time: 10,000,000 tokens × 3 epochs ≈/);
    expect(text.output).toMatch(/Serving the merged model .*16-bit \d+\.\d+ GiB, 8-bit/);
  });

  it('plans a spec with a builtin model on the CPU', async () => {
    const specPath = join(workspace, 'spec.yaml');
    writeFileSync(
      specPath,
      ['model:', '  source: smollm2-135m-instruct', '  max_seq_length: 256', 'dataset:', '  path: data.jsonl', 'device:', '  type: cpu', ''].join('\n'),
    );
    const result = await runPlanCommand([specPath, '--json']);
    expect(result.exit_code).toBe(0);
    expect(JSON.parse(result.output)).toMatchObject({
      device: { kind: 'cpu' },
      request: {
        model: 'smollm2-135m',
        backend: 'hf-peft',
        optimizer: 'adamw_torch',
        gradient_checkpointing: false,
        sequence_length: 256,
        micro_batch_size: 4,
      },
    });
  });

  it('reads config.json from a model directory named in a spec, relative to the spec', async () => {
    const modelDirectory = join(workspace, 'models', 'my-model');
    mkdirSync(modelDirectory, { recursive: true });
    writeFileSync(
      join(modelDirectory, 'config.json'),
      JSON.stringify({
        model_type: 'llama',
        hidden_size: 2048,
        intermediate_size: 8192,
        num_attention_heads: 32,
        num_key_value_heads: 8,
        num_hidden_layers: 16,
        vocab_size: 128256,
        tie_word_embeddings: true,
      }),
    );
    const specPath = join(workspace, 'directory-spec.json');
    writeFileSync(
      specPath,
      JSON.stringify({ model: { source: 'models/my-model' }, dataset: { path: 'data.jsonl' }, device: { gpu: 'l4', quantization: '4bit' }, lora: { r: 64 } }),
    );
    const result = await runPlanCommand([specPath, '--json']);
    expect(JSON.parse(result.output)).toMatchObject({
      fits: true,
      total_parameters: 1_235_814_400,
      request: { model: 'my-model', lora_rank: 64, quantization: '4bit' },
    });
  });

  it('lets flags override the spec', async () => {
    const specPath = join(workspace, 'override.yaml');
    writeFileSync(specPath, ['model:', '  source: llama-3.1-8b', 'dataset:', '  path: d.jsonl', 'device:', '  gpu: rtx-4090', ''].join('\n'));
    const result = await runPlanCommand([specPath, '--gpu', 'h200', '--gpu-memory', '40', '--json']);
    expect(JSON.parse(result.output)).toMatchObject({ available_gib: 40, device: { name: 'h200' } });
  });

  it('plans every run of a spec with runs (examples/preference): the dpo run priced for pairs, exit 1 when any run does not fit', async () => {
    const specPath = new URL('../../examples/preference/spec.yaml', import.meta.url).pathname;
    const text = await runPlanCommand([specPath, '--gpu', 'cpu']);
    expect(text.exit_code).toBe(0);
    expect(text.output).toMatch(/^── run sft \(sft\)\nPlan: smollm2-135m[\s\S]*\n── run dpo \(dpo, from sft\)\nPlan: smollm2-135m/);
    const json = await runPlanCommand([specPath, '--gpu', 'cpu', '--json']);
    const { runs } = JSON.parse(json.output) as { runs: { name: string; from: string | null; fits: boolean }[] };
    expect(runs.map(({ name, from, fits }) => [name, from, fits])).toEqual([
      ['sft', null, true],
      ['dpo', 'sft', true],
    ]);
    // Flags override every run's spec: a 70B on one 4090 fits neither.
    const tooBig = await runPlanCommand([specPath, '--model', 'llama-3.3-70b', '--gpu', 'rtx-4090']);
    expect(tooBig.exit_code).toBe(1);
    expect(tooBig.output.match(/DOES NOT FIT/g)).toHaveLength(2);
  });

  it('exits 2 with a readable message on bad input', async () => {
    const unknownGpu = await runPlanCommand(['--model', 'llama-3.1-8b', '--gpu', 'tpu-v5']);
    expect(unknownGpu.exit_code).toBe(2);
    expect(unknownGpu.output).toMatch(/unknown GPU "tpu-v5"; the planner knows rtx-3090/);
    const unknownModel = await runPlanCommand(['--model', 'no-such-model', '--gpu', 'h100']);
    expect(unknownModel.exit_code).toBe(2);
    expect(unknownModel.output).toMatch(/unknown model "no-such-model"/);
    const noDevice = await runPlanCommand(['--model', 'llama-3.1-8b']);
    expect(noDevice.output).toMatch(/pass --gpu/);
    const badNumber = await runPlanCommand(['--model', 'llama-3.1-8b', '--gpu', 'h100', '--rank', 'many']);
    expect(badNumber.exit_code).toBe(2);
    expect(badNumber.output).toMatch(/positive integer/);
  });
});
