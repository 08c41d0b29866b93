import type { WorkerFacts } from '../../src/contract/index.ts';
import { resolveTrainingSetup } from '../../src/setup/index.ts';
import { runSpecSchema } from '../../src/spec/schema.ts';
import { writeOrCheckRequests } from '../requests-file.ts';

/**
 * The settings bench/cpu/calibrate.py measures, each as the spec and training setup the product's own code makes of
 * it (spec schema defaults, resolveTrainingSetup on a CPU worker): calibrate.py only reads them, so a spec or contract
 * change that would break it breaks `npm run bench:dry-run` (which runs this with --check, then calibrate.py's
 * --dry-run on the `dry_run` setting) instead of the next calibration.
 * Usage: npx tsx bench/cpu/calibration_requests.ts [--check]   (writes bench/cpu/inputs/calibration-requests.json)
 */
export const calibrationRequestsPath = new URL('inputs/calibration-requests.json', import.meta.url).pathname;

const loraRank = 16;
const targetModules = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

/** (shape, micro-batch, sequence length, gradient checkpointing): the committed calibration's settings. */
const settings = [
  ['tiny-random-llama', 1, 256, false],
  ['tiny-random-llama', 4, 512, false],
  ['llama-mini-256', 1, 512, false],
  ['llama-mini-256', 4, 512, false],
  ['smollm2-135m', 1, 512, false],
  ['smollm2-135m', 4, 256, false],
  ['smollm2-135m', 4, 256, true],
] as const;
/** The CPU dry run's one setting: the smallest shape, a short sequence. */
const dryRun = ['tiny-random-llama', 1, 64, false] as const;

/** The facts of a CPU worker: what resolveTrainingSetup reads (no CUDA, no Unsloth, no bitsandbytes). */
const cpuWorker: WorkerFacts = {
  device: { kind: 'cpu', name: 'cpu', memory_gib: 8, count: 1, cores: 1 },
  cuda_bf16_supported: false,
  unsloth_importable: false,
  bitsandbytes_importable: false,
};

function request([shape, micro, sequence, checkpointing]: readonly [string, number, number, boolean]) {
  const spec = runSpecSchema.parse({
    model: { source: shape, max_seq_length: sequence },
    dataset: { path: 'unused.jsonl' },
    lora: { r: loraRank, alpha: loraRank, target_modules: targetModules },
    train: { micro_batch_size: micro, gradient_checkpointing: checkpointing, optimizer: 'adamw_torch', packing: false, seed: 0, lr_scheduler: 'constant' },
    device: { type: 'cpu' },
  });
  return {
    shape,
    micro_batch_size: micro,
    sequence_length: sequence,
    gradient_checkpointing: checkpointing,
    spec,
    setup: resolveTrainingSetup(spec, cpuWorker),
  };
}

export const calibrationRequestsText = (): string =>
  `${JSON.stringify({ command: 'npx tsx bench/cpu/calibration_requests.ts', settings: settings.map(request), dry_run: request(dryRun) }, null, 2)}\n`;

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop() ?? '')) {
  writeOrCheckRequests(calibrationRequestsPath, calibrationRequestsText(), 'npx tsx bench/cpu/calibration_requests.ts');
}
