import type { WorkerFacts } from '../../src/contract/index.ts';
import { architectureFromHuggingFaceConfig, type ModelArchitecture } from '../../src/planner/architecture.ts';
import { findArchitecture, planTrainingRun } from '../../src/planner/index.ts';
import { runSpecSchema } from '../../src/spec/schema.ts';
import { writeOrCheckRequests } from '../requests-file.ts';

/**
 * The train requests the GPU benchmarks send (fastest_fit.py, real_data.py, activity_kill_resume.py, dpo.py), built by the
 * product's own code: each spec through the spec schema (its defaults), its setup and plan through planTrainingRun
 * (resolveTrainingSetup and `auto`'s fastest-fit choice) on the worker facts of each card the device may lend and of
 * the CPU dry run. Nothing is written by hand: `npm run bench:dry-run` regenerates this file, fails where the
 * committed one is stale, and runs every benchmark's CPU dry run against it, so a contract or planner change that
 * would break a benchmark breaks CI instead.
 * Usage: npx tsx bench/gpu/train_requests.ts [out.json]   (default bench/gpu/inputs/train-requests.json)
 */
export const trainRequestsPath = new URL('inputs/train-requests.json', import.meta.url).pathname;

function catalogued(name: string): ModelArchitecture {
  const architecture = findArchitecture(name);
  if (architecture === undefined) throw new Error(`${name} is missing from the architecture catalog`);
  return architecture;
}

/** real_data.py's TINY shape: the CPU dry runs' model. */
const tiny = architectureFromHuggingFaceConfig(
  {
    model_type: 'llama',
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 16,
    vocab_size: 49152,
    tie_word_embeddings: false,
  },
  'tiny',
);

const cuda = (name: string, memory_gib: number): WorkerFacts => ({
  device: { kind: 'cuda', name, memory_gib, count: 1 },
  cuda_bf16_supported: true,
  unsloth_importable: true,
  bitsandbytes_importable: true,
});
const cpu: WorkerFacts = {
  device: { kind: 'cpu', name: 'dry run', memory_gib: 8, count: 2, cores: 2 },
  cuda_bf16_supported: false,
  unsloth_importable: false,
  bitsandbytes_importable: false,
};
/** Each card the device may lend, under the name fastest_fit.py matches torch's device name with, and the CPU. */
const workers: Record<string, WorkerFacts> = { h100: cuda('NVIDIA H100 80GB HBM3', 79.65), h200: cuda('NVIDIA H200', 139.8), cpu };

interface Planned {
  spec: ReturnType<typeof runSpecSchema.parse>;
  setup: ReturnType<typeof planTrainingRun>['setup'];
  plan: { fits: boolean; peak_vram_gib: number; peak_allocated_gib: number; tokens_per_s: number; auto_choice: unknown };
}

/** A spec as a user would write it (the schema fills the rest), decided and planned as the workflow's plan stage would. */
function planned(input: Record<string, unknown>, worker: WorkerFacts, architecture: ModelArchitecture): Planned {
  const spec = runSpecSchema.parse(input);
  const { setup, plan } = planTrainingRun({ spec, worker, architecture, tokens: {} });
  const allocated = plan.peak_vram_gib - (plan.breakdown.runtime_context ?? 0) - (plan.breakdown.allocator_slack ?? 0);
  return {
    spec,
    setup,
    plan: {
      fits: plan.fits,
      peak_vram_gib: plan.peak_vram_gib,
      // What torch.cuda.max_memory_allocated measures: the peak without the CUDA context and the allocator's slack.
      peak_allocated_gib: Math.round(allocated * 1000) / 1000,
      tokens_per_s: plan.tokens_per_s,
      auto_choice: plan.auto_choice ?? null,
    },
  };
}

const mapOf = <Key extends string, Value>(keys: readonly Key[], value: (key: Key) => Value) => Object.fromEntries(keys.map((key) => [key, value(key)]));
const precisions = (target: string) => (target === 'cpu' ? (['none'] as const) : (['4bit', 'none'] as const));
const shapeOf = (target: string) =>
  target === 'cpu'
    ? { architecture: tiny, sequence: 256, micro: 2, every: 4 }
    : { architecture: catalogued('llama-3.1-8b'), sequence: 2048, micro: 8, every: 10 };

/**
 * fastest_fit.py: `auto` (micro_batch_size and gradient_checkpointing both auto, over an effective batch of the
 * shape's micro-batch) and checkpointing on and off at that micro-batch, packed, on real-length rows.
 */
const fastestFitVariants = {
  auto: { micro_batch_size: 'auto', gradient_checkpointing: 'auto' },
  'checkpointing-on': { gradient_checkpointing: true },
  'checkpointing-off': { gradient_checkpointing: false },
} as const;
function fastestFit(target: string) {
  const { architecture, sequence, micro, every } = shapeOf(target);
  return mapOf(precisions(target), (quantization) =>
    mapOf(Object.keys(fastestFitVariants) as (keyof typeof fastestFitVariants)[], (variant) =>
      planned(
        {
          model: { source: architecture.name, max_seq_length: sequence },
          dataset: { path: 'train.jsonl', overlong: 'truncate' },
          lora: { r: 64, alpha: 64 },
          train: { micro_batch_size: micro, batch_size: micro, learning_rate: 1e-4, warmup_steps: 2, packing: true, ...fastestFitVariants[variant] },
          checkpoint: { every_steps: every, keep_last: 2 },
          validation: { max_rows: 8 },
          device: { quantization },
        },
        workers[target] as WorkerFacts,
        architecture,
      ),
    ),
  );
}

/** real_data.py (issue 12): packing on and off, fixed and real lengths, with gradient checkpointing as it measured. */
const realDataRuns = { 'fixed-unpacked': [false, 16], 'fixed-packed': [true, 12], 'real-packed': [true, undefined], 'real-unpacked': [false, 80] } as const;
function realData(target: string) {
  const { architecture, sequence, micro, every } = shapeOf(target);
  return mapOf(precisions(target), (quantization) =>
    mapOf(Object.keys(realDataRuns) as (keyof typeof realDataRuns)[], (run) => {
      const [packing, maxSteps] = realDataRuns[run];
      return planned(
        {
          model: { source: architecture.name, max_seq_length: sequence },
          dataset: { path: 'train.jsonl', overlong: 'truncate' },
          lora: { r: 64, alpha: 64 },
          train: {
            micro_batch_size: micro,
            learning_rate: 1e-4,
            warmup_steps: 2,
            gradient_checkpointing: target !== 'cpu',
            packing,
            ...(maxSteps === undefined ? {} : { max_steps: target === 'cpu' ? Math.min(maxSteps, 12) : maxSteps }),
          },
          checkpoint: { every_steps: every, keep_last: 2 },
          device: { quantization },
        },
        workers[target] as WorkerFacts,
        architecture,
      );
    }),
  );
}

/**
 * activity_kill_resume.py: SmolLM2-135M's shape on the device (the tiny one on the CPU), 16-bit, checkpoints every
 * few steps, merge and evaluation after.
 */
function activityKillResume(target: string) {
  const [steps, every] = target === 'cpu' ? [8, 2] : [40, 5];
  const architecture = target === 'cpu' ? tiny : catalogued('smollm2-135m');
  return planned(
    {
      model: { source: architecture.name, max_seq_length: 256 },
      dataset: { path: 'train.jsonl', overlong: 'truncate' },
      lora: { r: 16, alpha: 16 },
      train: { max_steps: steps, micro_batch_size: 8, learning_rate: 4e-4, lr_scheduler: 'cosine', warmup_steps: 2, packing: false },
      checkpoint: { every_steps: every, keep_last: 10, keep_best: true },
      merge: { enabled: true, dtype: 'bfloat16' },
      evaluate: { enabled: true, sample_prompts: [], max_new_tokens: 8 },
    },
    workers[target] as WorkerFacts,
    architecture,
  );
}

/**
 * dpo.py: `train.objective: dpo` on Llama-3.2-1B's shape, 4-bit, pairs unpacked (the tiny shape and 16-bit on the
 * CPU), stopped at its first checkpoint and resumed there.
 */
function dpo(target: string) {
  const [architecture, sequence, micro, steps, every] = target === 'cpu' ? [tiny, 128, 2, 8, 4] : [catalogued('llama-3.2-1b'), 1024, 8, 40, 10];
  return planned(
    {
      model: { source: architecture.name, max_seq_length: sequence },
      dataset: { path: 'pairs.jsonl', overlong: 'truncate' },
      lora: { r: 16, alpha: 16 },
      train: { objective: { kind: 'dpo', beta: 0.1 }, max_steps: steps, micro_batch_size: micro, learning_rate: 5e-5, warmup_steps: 2 },
      checkpoint: { every_steps: every, keep_last: 2 },
      validation: { max_rows: 8 },
      device: { quantization: target === 'cpu' ? 'none' : '4bit' },
    },
    workers[target] as WorkerFacts,
    architecture as ModelArchitecture,
  );
}

export function trainRequests() {
  const targets = Object.keys(workers);
  return {
    command: 'npx tsx bench/gpu/train_requests.ts',
    fastest_fit: mapOf(targets, fastestFit),
    real_data: mapOf(targets, realData),
    activity_kill_resume: mapOf(targets, activityKillResume),
    dpo: mapOf(targets, dpo),
  };
}

export const trainRequestsText = (): string => `${JSON.stringify(trainRequests(), null, 2)}\n`;

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop() ?? '')) {
  const out = process.argv[2] === undefined || process.argv[2] === '--check' ? trainRequestsPath : process.argv[2];
  writeOrCheckRequests(out, trainRequestsText(), 'npx tsx bench/gpu/train_requests.ts');
}
