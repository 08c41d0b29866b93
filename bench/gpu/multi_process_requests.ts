import { trainingSetupSchema, type WorkerFacts } from '../../src/contract/index.ts';
import { requestedBatch, resolveTrainingSetup } from '../../src/setup/index.ts';
import { runSpecSchema } from '../../src/spec/schema.ts';
import { writeOrCheckRequests } from '../requests-file.ts';

/**
 * The specs and setups bench/gpu/multi_process.py trains (it adds the model and data URIs on the device): each spec
 * parsed by the product's own schema, so it carries every default the workflow would give it, and each setup checked
 * against the contract. The setups are the benchmark's choice (one rank through the FSDP path is not something
 * resolveTrainingSetup would decide), named so below. The CPU dry run's requests (`cpu_requests`: the same runs in
 * float32 on real_data.py's tiny shape, CPU processes for GPUs) are decided by resolveTrainingSetup on a CPU worker,
 * one rank through the FSDP path again being the benchmark's choice.
 * Usage: npx tsx bench/gpu/multi_process_requests.ts [--check]   (writes bench/gpu/inputs/multi-process-requests.json)
 */
export const multiProcessRequestsPath = new URL('inputs/multi-process-requests.json', import.meta.url).pathname;
const cpuWorker: WorkerFacts = {
  device: { kind: 'cpu', name: 'cpu', memory_gib: 8, count: 2, cores: 2 },
  cuda_bf16_supported: false,
  unsloth_importable: false,
  bitsandbytes_importable: false,
};
const steps = 8;

function fixedBatch(train: Parameters<typeof requestedBatch>[0]) {
  const batch = requestedBatch(train);
  if (!('fixed' in batch)) throw new Error('the multi-process benchmark fixes its micro-batch');
  return batch.fixed;
}
const configurations = {
  'unsloth-1': { backend: 'unsloth', quantization: 'none', processes: 1, parallelism: 'single', optimizer: 'adamw_8bit' },
  'unsloth-ddp-2': { backend: 'unsloth', quantization: 'none', processes: 2, parallelism: 'ddp', optimizer: 'adamw_8bit' },
  'qlora-1': { backend: 'hf-peft', quantization: '4bit', processes: 1, parallelism: 'single', optimizer: 'adamw_torch' },
  'qlora-fsdp-1': { backend: 'hf-peft', quantization: '4bit', processes: 1, parallelism: 'fsdp', optimizer: 'adamw_torch' },
  'qlora-fsdp-2': { backend: 'hf-peft', quantization: '4bit', processes: 2, parallelism: 'fsdp', optimizer: 'adamw_torch' },
} as const;

const requests = Object.fromEntries(
  Object.entries(configurations).map(([name, choice]) => {
    const spec = runSpecSchema.parse({
      model: { source: '/tmp/tf-models/llama-3.1-8b', max_seq_length: 2048 },
      dataset: { path: '/tmp/tf-multi-process/unused.jsonl', overlong: 'truncate' },
      lora: { r: 64, alpha: 64, dropout: 0, target_modules: 'all-linear' },
      // 8 rows per optimizer step whatever the process count: 4 × 2 in one process, 4 × 1 in each of two.
      train: {
        max_steps: steps,
        micro_batch_size: 4,
        gradient_accumulation_steps: 2 / choice.processes,
        learning_rate: 1e-4,
        lr_scheduler: 'linear',
        warmup_steps: 2,
        optimizer: choice.optimizer,
      },
      checkpoint: { every_steps: 4, keep_last: 2, keep_best: false },
      device: { type: 'cuda', backend: choice.backend, quantization: choice.quantization, gpu_count: choice.processes },
    });
    const setup = trainingSetupSchema.parse({
      device: 'cuda',
      backend: choice.backend,
      quantization: choice.quantization,
      dtype: 'bfloat16',
      gradient_checkpointing: true,
      // The spec's fixed split, by the product's rule for it (setup/batch.ts).
      ...fixedBatch(spec.train),
      optimizer: choice.optimizer,
      packing: false,
      processes: choice.processes,
      parallelism: choice.parallelism,
    });
    return [name, { spec, setup }];
  }),
);

const cpuRequests = Object.fromEntries(
  Object.entries(configurations).map(([name, choice]) => {
    const { spec: cudaSpec } = requests[name] as { spec: ReturnType<typeof runSpecSchema.parse> };
    const spec = runSpecSchema.parse({
      ...cudaSpec,
      // real_data.py's SEQUENCE on the CPU, and its tiny model (the dry run builds it there).
      model: { ...cudaSpec.model, max_seq_length: 256 },
      train: { ...cudaSpec.train, optimizer: 'auto' },
      device: {
        type: 'cpu',
        cpu_processes: choice.processes,
        parallelism: choice.parallelism === 'fsdp' ? 'fsdp' : 'auto',
      },
    });
    const decided = resolveTrainingSetup(spec, cpuWorker);
    return [name, { spec, setup: choice.parallelism === 'fsdp' ? { ...decided, parallelism: 'fsdp' } : decided }];
  }),
);

const text = `${JSON.stringify({ command: 'npx tsx bench/gpu/multi_process_requests.ts', steps, requests, cpu_requests: cpuRequests }, null, 2)}\n`;
writeOrCheckRequests(multiProcessRequestsPath, text, 'npx tsx bench/gpu/multi_process_requests.ts');
