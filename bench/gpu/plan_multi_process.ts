import { readFileSync } from 'node:fs';
import { evaluatePlan, findArchitecture, type PlanRequest } from '../../src/planner/index.ts';

/**
 * The planner's peak memory per GPU for the runs bench/gpu/multi_process.py measured on one H200 (scored against the
 * measured nvidia-smi figure, which like the plan counts the CUDA context and the allocator's reserve), and its
 * predictions for the two-GPU shapes no lent machine could run here (marked `measured: null`).
 * Usage: npx tsx bench/gpu/plan_multi_process.ts > bench/gpu/results/multi-process-plans.json
 */
function architecture(id: string) {
  const found = findArchitecture(id);
  if (found === undefined) throw new Error(`${id} is missing from the architecture catalog`);
  return found;
}

const measured = ['unsloth', 'qlora'].flatMap((file) => {
  const report = JSON.parse(readFileSync(new URL(`results/multi-process/2026-12-01-${file}.json`, import.meta.url), 'utf8')) as {
    runs: {
      run: string;
      status: string;
      setup: {
        backend: PlanRequest['backend'];
        quantization: PlanRequest['quantization'];
        optimizer: PlanRequest['optimizer'];
        processes: number;
        parallelism: 'single' | 'ddp' | 'fsdp';
      };
      peak_gpu_memory_mib_per_process: number[];
      tokens_per_second?: number;
    }[];
  };
  return report.runs;
});

// The runs' shape: Llama-3.1-8B, LoRA r=64 on all linear layers, sequence 2048, micro-batch 4, gradient checkpointing.
const eightB = {
  architecture: architecture('llama-3.1-8b'),
  lora_rank: 64,
  target_modules: 'all-linear',
  sequence_length: 2048,
  micro_batch_size: 4,
  gradient_checkpointing: true,
  epochs: 1,
} as const;

const scored = measured.map((run) => {
  const plan = evaluatePlan({
    ...eightB,
    device: { gpu: 'h200', count: 1 },
    backend: run.setup.backend,
    quantization: run.setup.quantization,
    optimizer: run.setup.optimizer,
    gradient_accumulation_steps: 2 / run.setup.processes,
    // The two-rank runs shared one GPU: each rank is planned as the replica (DDP) or shard (FSDP) of a one-GPU plan.
    parallelism: run.setup.parallelism === 'fsdp' ? 'fsdp' : 'ddp',
  });
  const rankPeakGib = run.status === 'ok' ? Math.max(...run.peak_gpu_memory_mib_per_process) / 1024 : null;
  return {
    run: run.run,
    status: run.status,
    planned_peak_gib_per_gpu: plan.peak_vram_gib,
    measured_peak_gib_per_process: rankPeakGib,
    error_fraction: rankPeakGib === null ? null : plan.peak_vram_gib / rankPeakGib - 1,
  };
});

const seventyB = { ...eightB, architecture: architecture('llama-3.1-70b'), micro_batch_size: 1, gradient_accumulation_steps: 8 } as const;
const predictions = [
  [
    '8b-unsloth-ddp-2xh200',
    {
      ...eightB,
      gradient_accumulation_steps: 1,
      device: { gpu: 'h200', count: 2 },
      backend: 'unsloth',
      quantization: 'none',
      optimizer: 'adamw_8bit',
      parallelism: 'ddp',
    },
  ],
  [
    '8b-unsloth-1xh200',
    {
      ...eightB,
      gradient_accumulation_steps: 2,
      device: { gpu: 'h200', count: 1 },
      backend: 'unsloth',
      quantization: 'none',
      optimizer: 'adamw_8bit',
      parallelism: 'ddp',
    },
  ],
  [
    '70b-qlora-fsdp-2xh200',
    { ...seventyB, device: { gpu: 'h200', count: 2 }, backend: 'hf-peft', quantization: '4bit', optimizer: 'adamw_torch', parallelism: 'fsdp' },
  ],
  [
    '70b-qlora-fsdp-2xl40s',
    { ...seventyB, device: { gpu: 'l40s', count: 2 }, backend: 'hf-peft', quantization: '4bit', optimizer: 'adamw_torch', parallelism: 'fsdp' },
  ],
  [
    '70b-qlora-fsdp-2xrtx-4090',
    { ...seventyB, device: { gpu: 'rtx-4090', count: 2 }, backend: 'hf-peft', quantization: '4bit', optimizer: 'adamw_torch', parallelism: 'fsdp' },
  ],
] as const;
const predicted = Object.fromEntries(
  predictions.map(([name, request]) => {
    const plan = evaluatePlan(request as PlanRequest);
    return [
      name,
      { fits: plan.fits, peak_vram_gib_per_gpu: plan.peak_vram_gib, tokens_per_s: plan.tokens_per_s, breakdown_gib: plan.breakdown, measured: null },
    ];
  }),
);
process.stdout.write(
  `${JSON.stringify({ command: 'npx tsx bench/gpu/plan_multi_process.ts > bench/gpu/results/multi-process-plans.json', scored, predicted }, null, 2)}\n`,
);
