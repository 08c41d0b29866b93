import { match } from 'ts-pattern';
import {
  allLinearModules,
  largestLinearParameters,
  linearParametersPerLayer,
  linearShape,
  loraParameters,
  unquantizedParameters,
  type LinearModule,
  type ModelArchitecture,
} from './architecture.ts';
import { cpuCalibration, cudaContextGib, gpuCalibration } from './calibration.ts';
import { bytesPerGib } from './units.ts';
import type { DeviceKind, PlannerOptimizer, Quantization, TrainingBackend } from '../contract/vocabulary.ts';

/** The terms of the memory model, in the order the plan table prints them. */
export const MemoryTerm = {
  BaseWeights: 'base_weights',
  QuantizationConstants: 'quantization_constants',
  EmbeddingsAndHead: 'embeddings_and_head',
  DequantizationBuffer: 'dequantization_buffer',
  LoraParameters: 'lora_parameters',
  LoraGradients: 'lora_gradients',
  OptimizerState: 'optimizer_state',
  Activations: 'activations',
  LogitsAndLoss: 'logits_and_loss',
  /**
   * FSDP only: while loading, each GPU holds its shard of every layer and, for a moment, the whole embeddings and head
   * (fsdpLoadPeakBytes); this is how far that moment exceeds the sharded training peak, 0 when it does not.
   */
  UnshardedLoad: 'unsharded_load',
  RuntimeContext: 'runtime_context',
  AllocatorSlack: 'allocator_slack',
} as const;
export type MemoryTerm = (typeof MemoryTerm)[keyof typeof MemoryTerm];

export type MemoryBreakdown = Record<MemoryTerm, number>;

/** Everything the memory model needs, with the request's choices already resolved to concrete values. */
export interface MemoryInputs {
  architecture: ModelArchitecture;
  device_kind: DeviceKind;
  backend: TrainingBackend;
  quantization: Quantization;
  lora_rank: number;
  target_modules: readonly LinearModule[];
  sequence_length: number;
  /**
   * How many earlier tokens each token attends to on average, where rows are shorter than the sequence (packed
   * rows: the sum of squared row lengths over the sum of lengths); the sequence length when absent.
   */
  attention_span?: number;
  micro_batch_size: number;
  gradient_checkpointing: boolean;
  optimizer: PlannerOptimizer;
  /** hf-peft on several GPUs shards weights and adapter state across them (FSDP); 1 otherwise. */
  weight_shards: number;
}

/** LoRA adapters train in FP32 on every backend (PEFT's autocast_adapter_dtype, Unsloth's upcast). */
const adapterBytes = 4;
/** bitsandbytes NF4: 64 weights per block; double quantisation stores each block's absmax in 8 bits, with one FP32 constant per 256 blocks. */
const nf4BlockSize = 64;
const doubleQuantizationBlocks = 256;

/**
 * transformers + PEFT quantised runs go through prepare_model_for_kbit_training, the standard QLoRA recipe, which
 * upcasts the embeddings, lm_head and norms to FP32, and with them the residual stream between layers.
 */
function residualBytes(inputs: MemoryInputs): number {
  return inputs.backend === 'hf-peft' && inputs.quantization !== 'none' ? 4 : computeBytes(inputs.device_kind);
}

/** GPUs train in BF16; the CPU path trains in FP32 because CPU BF16 matmuls are slow or missing. */
export function computeBytes(deviceKind: DeviceKind): number {
  return match(deviceKind)
    .with('cuda', () => 2)
    .with('cpu', () => 4)
    .exhaustive();
}

/** Peak memory per device, term by term, in bytes. */
export function memoryBreakdownBytes(inputs: MemoryInputs): MemoryBreakdown {
  const { architecture, weight_shards: shards } = inputs;
  const bytes = computeBytes(inputs.device_kind);
  const linearPerLayer = linearParametersPerLayer(architecture);
  const linearWeights = architecture.num_layers * linearPerLayer;

  const storage = weightStorage(inputs.quantization, architecture, bytes);
  // FSDP keeps 1/shards of every layer and all-gathers one layer ahead of the one computing.
  const gatheredLayers = shards > 1 ? 2 * linearPerLayer * storage.bytes_per_weight : 0;
  const adapterParameters = loraParameters(architecture, inputs.lora_rank, inputs.target_modules);

  const allocated = {
    base_weights: (linearWeights * storage.bytes_per_weight) / shards + gatheredLayers,
    quantization_constants: storage.constants_bytes / shards,
    embeddings_and_head: (unquantizedParameters(architecture) * residualBytes(inputs)) / shards,
    dequantization_buffer: inputs.quantization === 'none' ? 0 : 2 * largestLinearParameters(architecture) * bytes,
    lora_parameters: (adapterParameters * adapterBytes) / shards,
    lora_gradients: (adapterParameters * adapterBytes) / shards,
    optimizer_state: (adapterParameters * optimizerBytesPerParameter(inputs.optimizer)) / shards,
    activations: activationBytes(inputs),
    logits_and_loss: inputs.micro_batch_size * inputs.sequence_length * architecture.vocab_size * logitsBytesPerElement(inputs),
  };
  const allocatedTotal = Object.values(allocated).reduce((sum, value) => sum + value, 0);
  const unshardedLoad = shards > 1 ? Math.max(0, fsdpLoadPeakBytes(inputs) - allocatedTotal) : 0;
  return match(inputs.device_kind)
    .with('cuda', () => ({
      ...allocated,
      unsharded_load: unshardedLoad,
      runtime_context: cudaContextGib * bytesPerGib,
      allocator_slack: gpuCalibration[inputs.backend].allocator_slack_fraction * allocatedTotal,
    }))
    .with('cpu', () => ({ ...allocated, unsharded_load: unshardedLoad, runtime_context: cpuCalibration.runtime_gib * bytesPerGib, allocator_slack: 0 }))
    .exhaustive();
}

/**
 * The whole model as one process holds it, with its adapter: every weight in its stored precision, the quantisation
 * constants, the embeddings/head as the recipe keeps them and the FP32 adapter.
 */
export function wholeModelBytes(inputs: MemoryInputs): number {
  const { architecture } = inputs;
  const storage = weightStorage(inputs.quantization, architecture, computeBytes(inputs.device_kind));
  return (
    architecture.num_layers * linearParametersPerLayer(architecture) * storage.bytes_per_weight +
    storage.constants_bytes +
    embeddingsAndHeadBytes(inputs) +
    loraParameters(architecture, inputs.lora_rank, inputs.target_modules) * adapterBytes
  );
}

/** The embeddings, head and norms as the recipe keeps them: FSDP's root group, which moves to the GPU whole. */
export function embeddingsAndHeadBytes(inputs: MemoryInputs): number {
  return unquantizedParameters(inputs.architecture) * residualBytes(inputs);
}

/**
 * The moment FSDP loading peaks on one GPU (sharding.py): the base waits in host memory and fully_shard moves one
 * decoder layer at a time to the GPU, keeping this process's shard; the root group (embeddings, head and norms)
 * arrives whole, and for a moment it is there whole beside its shard and every layer's shard. Measured for the 8B
 * shape in 4-bit: 7.91 GiB with two ranks against 7.98 from this, 5.97 with four against 5.86 (bench/gpu/results/multi-process/).
 */
export function fsdpLoadPeakBytes(inputs: MemoryInputs): number {
  return wholeModelBytes(inputs) / inputs.weight_shards + embeddingsAndHeadBytes(inputs);
}

interface WeightStorage {
  bytes_per_weight: number;
  constants_bytes: number;
}

function weightStorage(quantization: Quantization, architecture: ModelArchitecture, computeBytesPerWeight: number): WeightStorage {
  const linearWeights = architecture.num_layers * linearParametersPerLayer(architecture);
  return match(quantization)
    .with('none', () => ({ bytes_per_weight: computeBytesPerWeight, constants_bytes: 0 }))
    .with('8bit', () => {
      // LLM.int8 keeps one FP32 scale per output row.
      const outputRows = allLinearModules.reduce((sum, module) => sum + linearShape(architecture, module).out_features, 0);
      return { bytes_per_weight: 1, constants_bytes: architecture.num_layers * outputRows * 4 };
    })
    .with('4bit', () => {
      const blocks = linearWeights / nf4BlockSize;
      return { bytes_per_weight: 0.5, constants_bytes: blocks * 1 + (blocks / doubleQuantizationBlocks) * 4 };
    })
    .exhaustive();
}

function optimizerBytesPerParameter(optimizer: PlannerOptimizer): number {
  // Two moments per parameter; bitsandbytes' 8-bit optimizers store each in one byte. The paged variant has the
  // same footprint while memory lasts; it only differs in being able to spill to host memory under pressure.
  return match(optimizer)
    .with('adamw_torch', () => 8)
    .with('adamw_8bit', 'paged_adamw_8bit', () => 2)
    .exhaustive();
}

function logitsBytesPerElement(inputs: MemoryInputs): number {
  return match(inputs.device_kind)
    .with('cuda', () => gpuCalibration[inputs.backend].logits_bytes_per_element)
    .with('cpu', () => cpuCalibration.logits_bytes_per_element)
    .exhaustive();
}

/**
 * Bytes one decoder layer keeps for the backward pass, per token, when nothing is checkpointed.
 *
 * transformers + PEFT: each RMSNorm keeps an FP32 copy of its input; the normalised outputs, q/k/v after RoPE, the
 * attention output and its reshaped copy, and the four MLP tensors (gate, up, SiLU(gate), product) are kept in the
 * compute dtype; PEFT casts each adapted layer's input to the adapters' FP32 (a copy per module when computing in
 * BF16) and keeps every lora_A output. Unsloth's fused kernels keep only the norm inputs, the normalised inputs,
 * q/k/v, the attention output and gate/up, recomputing the rest.
 */
export function activationBytesPerTokenPerLayer(inputs: MemoryInputs): number {
  const { architecture, lora_rank: rank, target_modules: targets } = inputs;
  const bytes = computeBytes(inputs.device_kind);
  const hidden = architecture.hidden_size;
  const queryWidth = architecture.num_attention_heads * architecture.head_dim;
  const keyValueWidth = architecture.num_key_value_heads * architecture.head_dim;
  const intermediate = architecture.intermediate_size;
  const attentionLogSumExp = 4 * architecture.num_attention_heads;
  return match(inputs.backend)
    .with('hf-peft', () => {
      const normInputs = 2 * 4 * hidden;
      const layerTensors = bytes * (2 * hidden + queryWidth + 2 * keyValueWidth + 2 * queryWidth + 4 * intermediate);
      const adapterInputCopies =
        bytes === adapterBytes ? 0 : targets.reduce((sum, module) => sum + adapterBytes * linearShape(architecture, module).in_features, 0);
      const adapterOutputs = adapterBytes * rank * targets.length;
      return normInputs + layerTensors + adapterInputCopies + adapterOutputs + attentionLogSumExp;
    })
    .with('unsloth', () => {
      const layerTensors = bytes * (4 * hidden + 2 * queryWidth + 2 * keyValueWidth + 2 * intermediate);
      return layerTensors + bytes * rank * targets.length + attentionLogSumExp;
    })
    .exhaustive();
}

function activationScale(inputs: MemoryInputs): number {
  return match(inputs.device_kind)
    .with('cuda', () => gpuCalibration[inputs.backend].activation_scale)
    .with('cpu', () => cpuCalibration.activation_scale)
    .exhaustive();
}

function savedLayerScale(inputs: MemoryInputs): number {
  return match(inputs.device_kind)
    .with('cuda', () => gpuCalibration[inputs.backend].saved_layer_scale)
    .with('cpu', () => cpuCalibration.activation_scale)
    .exhaustive();
}

/**
 * Without checkpointing every layer keeps its tensors. With it, each layer keeps only its input (the checkpoint)
 * and the backward pass recomputes one layer at a time, so one layer's full set is alive at once. Unsloth's
 * offloaded checkpointing moves the checkpoints to host memory, leaving only a couple in flight on the GPU. The
 * gradient flowing back through the residual stream adds two hidden-state tensors either way.
 */
function activationBytes(inputs: MemoryInputs): number {
  const tokens = inputs.micro_batch_size * inputs.sequence_length;
  const { num_layers: layers, hidden_size: hidden } = inputs.architecture;
  const residual = residualBytes(inputs);
  const oneLayer = activationBytesPerTokenPerLayer(inputs) * tokens;
  const residualGradients = 2 * hidden * residual * tokens;
  const checkpointedLayers = match(inputs.backend)
    .with('hf-peft', () => layers)
    .with('unsloth', () => Math.min(layers, 2))
    .exhaustive();
  if (inputs.gradient_checkpointing) {
    const derived = checkpointedLayers * hidden * residual * tokens + oneLayer + residualGradients;
    return derived * activationScale(inputs) + int8RetainedBytes(inputs, tokens);
  }
  // The scale is fitted with checkpointing, where the layer being computed is nearly all there is: it measures that
  // layer's working set (its temporaries included). Without checkpointing the other layers keep exactly their saved
  // tensors, so only one layer's set is scaled: scaling all of them put Llama-3.1-8B's Unsloth 4-bit micro-batch 8
  // at 87.1 GiB against 61.3 measured (issue 25); this counts 63.3.
  return (layers - 1) * oneLayer * savedLayerScale(inputs) + (oneLayer + residualGradients) * activationScale(inputs);
}

/** What LLM.int8 keeps past checkpointing (see `int8_retained_bytes_per_hidden_unit`); without it, all is kept anyway. */
function int8RetainedBytes(inputs: MemoryInputs, tokens: number): number {
  if (inputs.quantization !== '8bit' || !inputs.gradient_checkpointing) return 0;
  const perHiddenUnit = match(inputs.device_kind)
    .with('cuda', () => gpuCalibration[inputs.backend].int8_retained_bytes_per_hidden_unit)
    .with('cpu', () => 0)
    .exhaustive();
  return inputs.architecture.num_layers * inputs.architecture.hidden_size * tokens * perHiddenUnit;
}
