import type { WorkerFacts } from '../../src/contract/index.ts';
import { resolveTrainingSetup } from '../../src/setup/index.ts';
import { runSpecSchema } from '../../src/spec/schema.ts';
import { writeOrCheckRequests } from '../requests-file.ts';

/**
 * The spec and training setup bench/gpu/bench_lora.py loads and trains each method with, made by the product's own
 * code (spec schema defaults, resolveTrainingSetup) for a CUDA worker with Unsloth and bitsandbytes, and for the CPU
 * of its --cpu-test (method a only). bench_lora.py only reads them; `npm run bench:dry-run` runs this with --check
 * and then bench_lora.py's CPU test, so a spec or contract change that would break it breaks CI instead.
 * The micro-batch of each measurement is bench_lora.py's own (its --plan): the loader reads no micro-batch.
 * Usage: npx tsx bench/gpu/bench_lora_requests.ts [--check]   (writes bench/gpu/inputs/bench-lora-requests.json)
 */
export const benchLoraRequestsPath = new URL('inputs/bench-lora-requests.json', import.meta.url).pathname;

/** Method → how it loads: backend, weight quantization, gradient checkpointing (bench_lora.py's METHODS). */
const methods = {
  a: ['hf-peft', 'none', true],
  a4: ['hf-peft', '4bit', true],
  b: ['unsloth', 'none', true],
  c: ['unsloth', '4bit', true],
  a8: ['hf-peft', '8bit', true],
  b8: ['unsloth', '8bit', true],
  an: ['hf-peft', 'none', false],
  bn: ['unsloth', 'none', false],
} as const;

const cuda: WorkerFacts = {
  device: { kind: 'cuda', name: 'NVIDIA H200', memory_gib: 139.8, count: 1 },
  cuda_bf16_supported: true,
  unsloth_importable: true,
  bitsandbytes_importable: true,
};
const cpu: WorkerFacts = {
  device: { kind: 'cpu', name: 'cpu', memory_gib: 8, count: 1, cores: 2 },
  cuda_bf16_supported: false,
  unsloth_importable: false,
  bitsandbytes_importable: false,
};

function request(method: keyof typeof methods, worker: WorkerFacts) {
  const [backend, quantization, checkpointing] = methods[method];
  const onCuda = worker.device.kind === 'cuda';
  const spec = runSpecSchema.parse({
    model: { source: 'bench-lora', max_seq_length: onCuda ? 2048 : 64 },
    dataset: { path: 'unused.jsonl' },
    lora: { r: 64, alpha: 64, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] },
    // Unpacked: the benchmark trains fixed-length rows of its own, and packing would route Unsloth's attention elsewhere.
    train: { micro_batch_size: 1, gradient_checkpointing: checkpointing, learning_rate: 1e-4, seed: 3407, lr_scheduler: 'constant', packing: false },
    device: { type: onCuda ? 'cuda' : 'cpu', backend, quantization },
  });
  return { spec, setup: resolveTrainingSetup(spec, worker) };
}

export const benchLoraRequestsText = (): string =>
  `${JSON.stringify(
    {
      command: 'npx tsx bench/gpu/bench_lora_requests.ts',
      cuda: Object.fromEntries(Object.keys(methods).map((method) => [method, request(method as keyof typeof methods, cuda)])),
      cpu: { a: request('a', cpu) },
    },
    null,
    2,
  )}\n`;

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop() ?? '')) {
  writeOrCheckRequests(benchLoraRequestsPath, benchLoraRequestsText(), 'npx tsx bench/gpu/bench_lora_requests.ts');
}
