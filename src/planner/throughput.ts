import { match } from 'ts-pattern';
import { linearParametersPerLayer, loraParameters, matmulParameters, unquantizedParameters } from './architecture.ts';
import { cpuCalibration, gpuCalibration } from './calibration.ts';
import type { GpuSpecification } from './catalog/gpus.ts';
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
  const attentionForward = 2 * architecture.num_layers * inputs.sequence_length * architecture.num_attention_heads * architecture.head_dim;
  const forward = 2 * matmulParameters(architecture) + 2 * adapter + attentionForward;
  const backward = 2 * matmulParameters(architecture) + 4 * adapter + 2 * attentionForward;
  const recompute = inputs.gradient_checkpointing ? 2 * layerMatmuls + 2 * adapter + attentionForward : 0;
  return { flops: forward + backward + recompute, layer_passes: inputs.gradient_checkpointing ? 3 : 2 };
}

/** Compute and memory streams overlap poorly in eager PyTorch, so the step time adds their durations. */
export interface StepTime {
  compute_seconds: number;
  memory_seconds: number;
  overhead_seconds: number;
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

export function gpuStepTime(inputs: MemoryInputs, gpu: GpuSpecification): StepTime {
  const calibration = gpuCalibration[inputs.backend];
  const cost = tokenCost(inputs);
  const tokens = inputs.micro_batch_size * inputs.sequence_length;
  const efficiency = calibration.compute_efficiency[inputs.quantization];
  return {
    compute_seconds: (tokens * cost.flops) / (gpu.bf16_dense_tflops * 1e12 * efficiency),
    memory_seconds: memoryTrafficBytes(inputs, cost, calibration.logits_bytes_per_element) / (gpu.memory_bandwidth_gb_per_s * 1e9),
    overhead_seconds: inputs.architecture.num_layers * cost.layer_passes * calibration.seconds_per_layer_pass,
  };
}

export function cpuStepTime(inputs: MemoryInputs, cores: number): StepTime {
  const cost = tokenCost(inputs);
  const tokens = inputs.micro_batch_size * inputs.sequence_length;
  return {
    compute_seconds: (tokens * cost.flops) / (cores * cpuCalibration.flops_per_core),
    memory_seconds: memoryTrafficBytes(inputs, cost, cpuCalibration.logits_bytes_per_element) / cpuCalibration.memory_bytes_per_s,
    overhead_seconds: inputs.architecture.num_layers * cost.layer_passes * cpuCalibration.seconds_per_layer_pass,
  };
}

export function totalSeconds(time: StepTime): number {
  return time.compute_seconds + time.memory_seconds + time.overhead_seconds;
}
