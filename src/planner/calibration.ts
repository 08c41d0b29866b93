import type { TrainingBackend } from './request.ts';

/**
 * The planner's fitted constants. Everything else in the model is arithmetic on the architecture; these are the
 * few numbers only a measurement can give. `bench/planner/fit-calibration.ts` re-derives them from the committed
 * measurements and docs/planner.md lists the fit and the resulting errors.
 */

export interface BackendCalibration {
  /** Scales the derived per-layer activation bytes: absorbs what the term-by-term count misses (temporaries). */
  activation_scale: number;
  /** Bytes held per logit (token × vocabulary entry) at the loss's peak. */
  logits_bytes_per_element: number;
  /** Fraction of the GPU's dense BF16 peak that matrix multiplies reach, by quantisation of the frozen weights. */
  compute_efficiency: { none: number; '8bit': number; '4bit': number };
  /** Fixed cost per decoder layer per pass (kernel launches, Python): dominates small models at small batches. */
  seconds_per_layer_pass: number;
}

export const gpuCalibration: Record<TrainingBackend, BackendCalibration> = {
  unsloth: {
    activation_scale: 1,
    logits_bytes_per_element: 4,
    compute_efficiency: { none: 0.45, '8bit': 0.25, '4bit': 0.35 },
    seconds_per_layer_pass: 0.0002,
  },
  'hf-peft': {
    activation_scale: 1,
    logits_bytes_per_element: 12,
    compute_efficiency: { none: 0.35, '8bit': 0.15, '4bit': 0.25 },
    seconds_per_layer_pass: 0.0004,
  },
};

/** The CUDA context plus cuBLAS/cuDNN workspaces torch creates on first use: outside the caching allocator. */
export const cudaContextGib = 0.5;
/** The caching allocator reserves more than it hands out (block rounding, fragmentation). */
export const cudaAllocatorSlackFraction = 0.05;

export interface CpuCalibration {
  /** Sustained FP32 FLOP/s per core in training matmuls (MKL/oneDNN through torch). */
  flops_per_core: number;
  /** Bytes per second the whole socket streams for memory-bound work (softmax over the vocabulary, elementwise). */
  memory_bytes_per_s: number;
  /** Resident memory of Python with torch, transformers and peft imported, before any model exists. */
  runtime_gib: number;
  activation_scale: number;
  logits_bytes_per_element: number;
  seconds_per_layer_pass: number;
}

export const cpuCalibration: CpuCalibration = {
  flops_per_core: 20e9,
  memory_bytes_per_s: 10e9,
  runtime_gib: 0.77,
  activation_scale: 1,
  logits_bytes_per_element: 12,
  seconds_per_layer_pass: 0.0005,
};

/**
 * Throughput of N GPUs relative to N times one GPU (gradient all-reduce; FSDP's all-gathers). Not measured here:
 * a typical single-node NVLink figure, to be replaced once multi-GPU runs are recorded.
 */
export const multiGpuScaling = 0.9;
