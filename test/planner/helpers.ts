import { findArchitecture, type PlanRequest } from '../../src/planner/index.ts';

/** A plan request for a catalog model with common QLoRA-era settings; tests override what they examine. */
export function requestFor(model: string, overrides: Partial<PlanRequest> = {}): PlanRequest {
  const architecture = findArchitecture(model);
  if (architecture === undefined) throw new Error(`no catalog model ${model}`);
  return {
    architecture,
    device: { gpu: 'h100' },
    backend: 'hf-peft',
    quantization: 'none',
    lora_rank: 16,
    target_modules: 'all-linear',
    sequence_length: 2048,
    micro_batch_size: 1,
    gradient_accumulation_steps: 1,
    gradient_checkpointing: true,
    optimizer: 'adamw_torch',
    ...overrides,
  };
}
