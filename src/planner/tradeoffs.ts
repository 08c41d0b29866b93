import { match } from 'ts-pattern';
import { linearParametersPerLayer, totalParameters, unquantizedParameters, type ModelArchitecture } from './architecture.ts';
import { cudaContextGib } from './calibration.ts';
import { evaluatePlan } from './evaluate.ts';
import { bytesPerGib, roundToThousandths as round } from './units.ts';
import type { Quantization } from '../contract/vocabulary.ts';
import type { PlanRequest } from './request.ts';

export interface RankTradeOff {
  rank: number;
  trainable_parameters: number;
  /** adapter_model.safetensors: FP32 tensors as PEFT saves them (the header is negligible). */
  adapter_size_mib: number;
  fits: boolean;
  peak_vram_gib: number;
  tokens_per_s: number;
}

/** Answers "what does a bigger rank cost?": the same request at each rank. */
export function rankTradeOffs(request: PlanRequest, ranks: readonly number[]): RankTradeOff[] {
  return ranks.map((rank) => {
    const plan = evaluatePlan({ ...request, lora_rank: rank });
    return {
      rank,
      trainable_parameters: plan.trainable_parameters,
      adapter_size_mib: round((plan.trainable_parameters * 4) / 2 ** 20),
      fits: plan.fits,
      peak_vram_gib: plan.peak_vram_gib,
      tokens_per_s: plan.tokens_per_s,
    };
  });
}

export interface InferenceMemory {
  /** How the merged model is served: 16-bit, or quantised again with bitsandbytes. */
  quantization: Quantization;
  weights_gib: number;
  /** K and V for every layer at `context_length` tokens × batch, in 16 bits. */
  kv_cache_gib: number;
  total_gib: number;
}

/** Memory to serve the merged result: weights (embeddings stay 16-bit when quantised), KV cache, CUDA context. */
export function inferenceMemory(architecture: ModelArchitecture, contextLength: number, batchSize = 1): InferenceMemory[] {
  const linearWeights = architecture.num_layers * linearParametersPerLayer(architecture);
  const kvCacheBytes = 2 * architecture.num_layers * architecture.num_key_value_heads * architecture.head_dim * contextLength * batchSize * 2;
  const cudaContextBytes = cudaContextGib * bytesPerGib;
  return (['none', '8bit', '4bit'] as const).map((quantization) => {
    const weightBytes = match(quantization)
      .with('none', () => totalParameters(architecture) * 2)
      .with('8bit', () => linearWeights * 1 + unquantizedParameters(architecture) * 2)
      .with('4bit', () => linearWeights * (0.5 + 1 / 64) + unquantizedParameters(architecture) * 2)
      .exhaustive();
    return {
      quantization,
      weights_gib: round(weightBytes / bytesPerGib),
      kv_cache_gib: round(kvCacheBytes / bytesPerGib),
      total_gib: round((weightBytes + kvCacheBytes + cudaContextBytes) / bytesPerGib),
    };
  });
}
