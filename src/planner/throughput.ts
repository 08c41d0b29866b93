import { match } from 'ts-pattern';
import { linearParametersPerLayer, loraParameters, matmulParameters, unquantizedParameters } from './architecture.ts';
import { cpuCalibration, gpuCalibration, type BackendCalibration, type CpuCalibration } from './calibration.ts';
import type { GpuSpecification } from './catalog/gpus.ts';
import type { ResolvedDevice } from './device.ts';
import { computeBytes, type MemoryInputs } from './memory.ts';

/** What a step costs, per token: the arithmetic, and the memory traffic that no amount of arithmetic hides. */
export interface TokenCost {
  flops: number;
  /** Forward, recompute, backward: how many times each layer runs (and streams its weights) per micro-step. */
  layer_passes: number;
}

/**
 * FLOPs per trained token. Forward: 2 per matmul weight (the lm_head included) plus causal attention,
 * 2 · sequence · (heads · head_dim) per layer. Backward: the frozen weights need only activation gradients, 2 per
 * weight (not the 4 of full fine-tuning); LoRA's small matrices need both (4); attention's backward is about twice
 * its forward. Gradient checkpointing adds one more forward of the decoder layers (not the lm_head).
 */
export function tokenCost(inputs: MemoryInputs): TokenCost {
  const { architecture } = inputs;
  const adapter = loraParameters(architecture, inputs.lora_rank, inputs.target_modules);
  const layerMatmuls = architecture.num_layers * linearParametersPerLayer(architecture);
  const attentionForward =
    2 * architecture.num_layers * (inputs.attention_span ?? inputs.sequence_length) * architecture.num_attention_heads * architecture.head_dim;
  const forward = 2 * matmulParameters(architecture) + 2 * adapter + attentionForward;
  const backward = 2 * matmulParameters(architecture) + 4 * adapter + 2 * attentionForward;
  const recompute = inputs.gradient_checkpointing ? 2 * layerMatmuls + 2 * adapter + attentionForward : 0;
  return { flops: forward + backward + recompute, layer_passes: inputs.gradient_checkpointing ? 3 : 2 };
}

/** Where a micro-step's time goes. */
export interface StepTime {
  compute_seconds: number;
  memory_seconds: number;
  /** Python, kernel launches, hooks: the host's share. */
  host_seconds: number;
  /** How the three combine into the step's duration. */
  seconds: number;
}

/** Bytes streamed per micro-step: the weights once per layer pass (quantised ones dequantised to a 16-bit copy, written and read), plus the logits. */
function memoryTrafficBytes(inputs: MemoryInputs, cost: TokenCost, logitsBytesPerElement: number): number {
  const { architecture } = inputs;
  const bytes = computeBytes(inputs.device_kind);
  const layerWeights = architecture.num_layers * linearParametersPerLayer(architecture);
  const bytesPerWeightPass = match(inputs.quantization)
    .with('none', () => bytes)
    .with('8bit', () => 1 + 2 * bytes)
    .with('4bit', () => 0.5 + 2 * bytes)
    .exhaustive();
  const tokens = inputs.micro_batch_size * inputs.sequence_length;
  const logits = tokens * architecture.vocab_size * logitsBytesPerElement;
  return cost.layer_passes * layerWeights * bytesPerWeightPass + 2 * unquantizedParameters(architecture) * bytes + logits;
}

/**
 * On a GPU the host queues kernels while the GPU runs earlier ones, so a micro-step takes the longer of the host's
 * time and the GPU's (compute and memory traffic, which eager kernels barely overlap, so they add).
 */
export function gpuStepTime(inputs: MemoryInputs, gpu: GpuSpecification, calibration: BackendCalibration = gpuCalibration[inputs.backend]): StepTime {
  const cost = tokenCost(inputs);
  const tokens = inputs.micro_batch_size * inputs.sequence_length;
  const compute = (tokens * cost.flops) / (gpu.bf16_dense_tflops * 1e12 * calibration.compute_efficiency[inputs.quantization]);
  const memory = memoryTrafficBytes(inputs, cost, calibration.logits_bytes_per_element) / (gpu.memory_bandwidth_gb_per_s * 1e9);
  const host =
    calibration.host_seconds_per_step + inputs.architecture.num_layers * cost.layer_passes * calibration.host_seconds_per_layer_pass[inputs.quantization];
  return { compute_seconds: compute, memory_seconds: memory, host_seconds: host, seconds: Math.max(host, compute + memory) };
}

/**
 * On a CPU the same threads run Python and the kernels, so the parts add. The calibration measures one thread;
 * more cores divide the compute and memory-bound work, not the Python overhead.
 */
export function cpuStepTime(inputs: MemoryInputs, cores: number, calibration: CpuCalibration = cpuCalibration): StepTime {
  const cost = tokenCost(inputs);
  const tokens = inputs.micro_batch_size * inputs.sequence_length;
  const effectiveCores = 1 + (cores - 1) * calibration.additional_core_efficiency;
  const compute = (tokens * cost.flops) / (effectiveCores * calibration.flops_per_core);
  const memory = memoryTrafficBytes(inputs, cost, calibration.logits_bytes_per_element) / (effectiveCores * calibration.memory_bytes_per_s);
  const host = inputs.architecture.num_layers * cost.layer_passes * calibration.host_seconds_per_layer_pass;
  return { compute_seconds: compute, memory_seconds: memory, host_seconds: host, seconds: compute + memory + host };
}

/**
 * One process's micro-step on the device: a GPU's own; on a CPU the `ranks` processes share the cores, so each
 * computes with its part of them (at least one).
 */
export function microStepTime(inputs: MemoryInputs, device: ResolvedDevice, ranks: number): StepTime {
  return match(device)
    .with({ kind: 'cuda' }, (gpu) => gpuStepTime(inputs, gpu.gpu))
    .with({ kind: 'cpu' }, (cpu) => cpuStepTime(inputs, Math.max(1, Math.floor(cpu.count / ranks))))
    .exhaustive();
}
