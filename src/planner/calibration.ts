import type { TrainingBackend } from '../contract/vocabulary.ts';

/**
 * The planner's fitted constants. Everything else in the model is arithmetic on the architecture; these are the
 * few numbers only a measurement can give. `bench/planner/fit-calibration.ts` re-derives them from the committed
 * measurements and docs/planner.md lists the fit and the resulting errors.
 */

export interface BackendCalibration {
  /** Scales the derived activation bytes: absorbs what the term-by-term count misses (temporaries). */
  activation_scale: number;
  /**
   * Without checkpointing, scales what each layer but the one computing keeps for the backward pass: its saved
   * tensors, no temporaries (fitted to the checkpointing-off runs, bench/planner/fit-calibration.ts).
   */
  saved_layer_scale: number;
  /** Bytes held per logit (token × vocabulary entry) at the loss's peak. */
  logits_bytes_per_element: number;
  /** torch.cuda.max_memory_reserved over max_memory_allocated, minus one. */
  allocator_slack_fraction: number;
  /** Fraction of the GPU's dense BF16 peak that the step's FLOPs reach, by quantisation of the frozen weights. */
  compute_efficiency: { none: number; '8bit': number; '4bit': number };
  /**
   * Host-side cost of a step: launching every kernel from Python, hooks, the optimizer's per-tensor loop. The GPU
   * works asynchronously, so a step takes the longer of this and the GPU's own time; small models at micro-batch 1
   * are bound by it.
   */
  host_seconds_per_step: number;
  /** By quantisation: bitsandbytes launches extra dequantisation kernels per layer. */
  host_seconds_per_layer_pass: { none: number; '8bit': number; '4bit': number };
  /**
   * LLM.int8 with gradient checkpointing: bytes per layer, hidden unit and token still held for the backward pass,
   * as if every layer kept part of its tensors. Fitted, not derived; the likely cause (unconfirmed) is that
   * bitsandbytes' 8-bit matmul keeps tensors on its autograd context, where checkpointing does not free them.
   */
  int8_retained_bytes_per_hidden_unit: number;
}

// Fitted to bench/gpu/results/2026-11-28-h200.json (18 runs: Llama 3.2 1B, 3.2 3B, 3.1 8B shapes; r=64 on all
// linear layers; sequence 2048; checkpointing; 8-bit AdamW; micro-batch 1 and 4) by bench/planner/fit-calibration.ts.
export const gpuCalibration: Record<TrainingBackend, BackendCalibration> = {
  unsloth: {
    activation_scale: 1.45,
    // The checkpointing-off runs of bench/gpu/unfitted (1B, 3B, 8B, micro-batch 1 and 4: -3 % to 0 %) and issue 25's
    // 8B 4-bit micro-batch 8 on an H100 (61.3 GiB measured, 63.3 planned): the derived count is what is kept.
    saved_layer_scale: 1.0,
    // Unsloth's chunked cross-entropy never holds the whole logits matrix: a third of a byte per logit remains.
    logits_bytes_per_element: 0.3,
    // Unsloth turns on expandable segments, which leave the allocator little to round up.
    allocator_slack_fraction: 0.031,
    // 8-bit (LLM.int8) from bench/gpu/unfitted (four runs, 1B to 8B): its int8 matmuls with outlier decomposition
    // reach a fifth of the bf16 efficiency.
    compute_efficiency: { none: 0.525, '8bit': 0.1165, '4bit': 0.529 },
    host_seconds_per_step: 0.0858,
    host_seconds_per_layer_pass: { none: 0.00172, '8bit': 0.00637, '4bit': 0.00195 },
    // Unsloth's own checkpointing frees them: its 8-bit runs need no such term.
    int8_retained_bytes_per_hidden_unit: 0,
  },
  'hf-peft': {
    activation_scale: 0.687,
    // The same bench/gpu/unfitted runs (+0 % to +3 %): PEFT keeps less per layer than the derived count says.
    saved_layer_scale: 0.65,
    // FP32 logits, their log-softmax and its gradient: about 13 bytes per logit.
    logits_bytes_per_element: 13.3,
    allocator_slack_fraction: 0.089,
    // 8-bit from bench/gpu/unfitted, as for Unsloth.
    compute_efficiency: { none: 0.364, '8bit': 0.0789, '4bit': 0.306 },
    host_seconds_per_step: 0.0734,
    host_seconds_per_layer_pass: { none: 0.00331, '8bit': 0.00777, '4bit': 0.00527 },
    // Fitted to the four hf-peft 8-bit runs of bench/gpu/unfitted (within ±5 %); about eight FP32 values per hidden unit.
    int8_retained_bytes_per_hidden_unit: 33.3,
  },
};

/**
 * The CUDA context plus cuBLAS/cuDNN workspaces, outside the caching allocator: nvidia-smi's used memory minus
 * torch's reserved peak was 0.75–0.83 GiB on the H200 (bench/gpu/README.md).
 */
export const cudaContextGib = 0.8;

export interface CpuCalibration {
  /** Sustained FP32 FLOP/s of one torch thread in training matmuls (oneDNN/MKL). */
  flops_per_core: number;
  /**
   * Effective rate of one thread through the memory-bound work (the softmax over the vocabulary, elementwise ops),
   * in bytes of the planner's traffic count per second. Far below DRAM bandwidth: one thread running eager
   * elementwise kernels is limited by the kernels, not by DRAM.
   */
  memory_bytes_per_s: number;
  /** What each core beyond the first adds, as a fraction of one: threads share memory bandwidth and synchronise. */
  additional_core_efficiency: number;
  /** Resident memory of Python with torch, transformers and peft imported, before any model exists. */
  runtime_gib: number;
  activation_scale: number;
  logits_bytes_per_element: number;
  host_seconds_per_layer_pass: number;
}

// Fitted to bench/cpu/results/cpu-calibration.json (7 runs, three Llama shapes from 3 M to 135 M parameters) by
// bench/planner/fit-calibration.ts. The memory terms needed no fitting: with the allocator setting the calibration
// uses, the derived activations and 12 bytes per logit (FP32 logits, log-softmax, gradient) land within 4 %, and
// the runtime is the measured resident size after importing torch, transformers and peft.
export const cpuCalibration: CpuCalibration = {
  flops_per_core: 49.9e9,
  memory_bytes_per_s: 1.33e9,
  // Assumed, not measured: the calibration machine was shared with other busy processes, so multi-thread wall
  // times were not reproducible (see bench/cpu/calibrate.py). 0.7 is typical of two to eight cores.
  additional_core_efficiency: 0.7,
  runtime_gib: 0.77,
  activation_scale: 1,
  logits_bytes_per_element: 12,
  // The fit puts the per-layer Python cost at zero: on one CPU thread the kernels themselves dominate.
  host_seconds_per_layer_pass: 0,
};

/**
 * Throughput of N GPUs relative to N times one GPU (gradient all-reduce; FSDP's all-gathers). Not measured here:
 * a typical single-node NVLink figure, to be replaced once multi-GPU runs are recorded.
 */
export const multiGpuScaling = 0.9;

/**
 * What a run costs besides its steps: loading the model, the first step's warm-up or compile, the last checkpoint.
 * Measured on one H200 (Llama-3.1-8B shape, Unsloth, r=64, micro-batch 8, bench/gpu/results/real-data/) in the runs
 * of the earlier commits 78ca784 and a486df7 only, so the bf0658f runs that docs/gpu.md scores the ETA on are not
 * among them. Same benchmark, machine and data, though: these are measured, not derived, and untested elsewhere.
 */
export interface StartupCalibration {
  /** Load (and quantise) the weights, per parameter: 12.5 s for 8.0 B parameters, mean of seven loads (10.5–13.7 s). */
  model_load_seconds_per_parameter: number;
  /** An eagerly run first step's excess over a steady step (allocator, kernel autotuning): 1.9–7.4 s, mean of four. */
  eager_first_step_seconds: number;
  /**
   * Unsloth compiles its decoder blocks (torch.compile) for the first padded shape: 19.8 and 34.2 s beyond a steady
   * step in the two runs with a cold compile cache. Packed rows run the blocks eagerly and compile nothing.
   */
  first_shape_compile_seconds: number;
  /**
   * Each further padded width: the 16-bit real-length run's steps show no recompile stall above 0.6 s (its second
   * step), dynamo's dynamic-shape recompile is cheap next to the first compile.
   */
  further_shape_compile_seconds: number;
  /** After the last step: the final checkpoint and adapter (8B r=64 with 8-bit AdamW state), 3.5–4.1 s in five runs. */
  finish_seconds: number;
}

export const startupCalibration: StartupCalibration = {
  model_load_seconds_per_parameter: 12.47 / 8.03e9,
  eager_first_step_seconds: 3.3,
  first_shape_compile_seconds: 27.0,
  further_shape_compile_seconds: 0.6,
  finish_seconds: 3.7,
};
