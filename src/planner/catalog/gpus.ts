export interface GpuSpecification {
  id: string;
  name: string;
  /** Total memory as nvidia-smi reports it (MiB / 1024): what the CUDA allocator can ever see. */
  memory_gib: number;
  /** Dense BF16 tensor-core throughput with FP32 accumulate (no 2:4 sparsity), in TFLOP/s. */
  bf16_dense_tflops: number;
  memory_bandwidth_gb_per_s: number;
}

/**
 * Sources: NVIDIA's datasheets and architecture whitepapers (dense, non-sparse column; for GeForce cards the
 * "FP16 Tensor TFLOPS with FP32 Accumulate" row, which is what BF16 training runs at), and nvidia-smi's
 * memory.total for memory. The A10G has no NVIDIA datasheet: AWS's variant of the A10 is quoted at 70 TFLOP/s
 * (GeForce-style half-rate FP32 accumulate); treat that entry as the least certain.
 */
export const gpuCatalog: readonly GpuSpecification[] = [
  // GA102 whitepaper: 71 dense BF16 (FP32 acc); 24576 MiB; 936 GB/s.
  { id: 'rtx-3090', name: 'NVIDIA GeForce RTX 3090', memory_gib: 24, bf16_dense_tflops: 71, memory_bandwidth_gb_per_s: 936 },
  // Ada whitepaper: 165.2 dense (FP32 acc); 24564 MiB; 1008 GB/s.
  { id: 'rtx-4090', name: 'NVIDIA GeForce RTX 4090', memory_gib: 23.99, bf16_dense_tflops: 165.2, memory_bandwidth_gb_per_s: 1008 },
  // Blackwell GeForce whitepaper: 209.5 dense (FP32 acc); 32607 MiB; 1792 GB/s.
  { id: 'rtx-5090', name: 'NVIDIA GeForce RTX 5090', memory_gib: 31.84, bf16_dense_tflops: 209.5, memory_bandwidth_gb_per_s: 1792 },
  // AWS G5: 23028 MiB; 600 GB/s; 70 dense BF16 (see above).
  { id: 'a10g', name: 'NVIDIA A10G', memory_gib: 22.49, bf16_dense_tflops: 70, memory_bandwidth_gb_per_s: 600 },
  // L4 datasheet: 242 BF16 with sparsity, so 121 dense; 23034 MiB; 300 GB/s.
  { id: 'l4', name: 'NVIDIA L4', memory_gib: 22.49, bf16_dense_tflops: 121, memory_bandwidth_gb_per_s: 300 },
  // L40S datasheet: 362.05 dense BF16; 46068 MiB; 864 GB/s.
  { id: 'l40s', name: 'NVIDIA L40S', memory_gib: 44.99, bf16_dense_tflops: 362.05, memory_bandwidth_gb_per_s: 864 },
  // A100 datasheet: 312 dense BF16; 40960 MiB; 1555 GB/s.
  { id: 'a100-40gb', name: 'NVIDIA A100-SXM4-40GB', memory_gib: 40, bf16_dense_tflops: 312, memory_bandwidth_gb_per_s: 1555 },
  // A100 datasheet: 312 dense BF16; 81920 MiB; 2039 GB/s (SXM).
  { id: 'a100-80gb', name: 'NVIDIA A100-SXM4-80GB', memory_gib: 80, bf16_dense_tflops: 312, memory_bandwidth_gb_per_s: 2039 },
  // H100 datasheet (SXM): 989.5 dense BF16 (1979 with sparsity); 81559 MiB; 3350 GB/s.
  { id: 'h100', name: 'NVIDIA H100 80GB HBM3', memory_gib: 79.65, bf16_dense_tflops: 989.5, memory_bandwidth_gb_per_s: 3350 },
  // H200 datasheet (SXM): 989.5 dense BF16; 143771 MiB; 4800 GB/s.
  { id: 'h200', name: 'NVIDIA H200', memory_gib: 140.4, bf16_dense_tflops: 989.5, memory_bandwidth_gb_per_s: 4800 },
];

/** Accepts the catalog id or the name nvidia-smi / torch.cuda.get_device_name reports, ignoring case and spacing. */
export function findGpu(idOrName: string): GpuSpecification | undefined {
  const wanted = normalise(idOrName);
  const exact = gpuCatalog.find((gpu) => normalise(gpu.id) === wanted || normalise(gpu.name) === wanted);
  if (exact !== undefined) return exact;
  // A reported name such as "NVIDIA H100 80GB HBM3" contains the id; the longest id wins so that "l40s" beats "l4".
  const containing = gpuCatalog.filter((gpu) => wanted.includes(normalise(gpu.id)));
  return containing.sort((left, right) => right.id.length - left.id.length)[0];
}

function normalise(name: string): string {
  return name.toLowerCase().replace(/nvidia|geforce|[^a-z0-9]/g, '');
}
