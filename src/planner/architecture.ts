import { match } from 'ts-pattern';
import { InvalidSpecError } from '../errors/index.ts';

/** The shape of a decoder-only transformer: every number the memory and throughput models need. */
export interface ModelArchitecture {
  name: string;
  num_layers: number;
  hidden_size: number;
  intermediate_size: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  vocab_size: number;
  tie_word_embeddings: boolean;
}

/** The linear layers of a Llama-style decoder layer, by the module names PEFT's `target_modules` uses. */
export const LinearModule = {
  Query: 'q_proj',
  Key: 'k_proj',
  Value: 'v_proj',
  Output: 'o_proj',
  Gate: 'gate_proj',
  Up: 'up_proj',
  Down: 'down_proj',
} as const;
export type LinearModule = (typeof LinearModule)[keyof typeof LinearModule];

export const allLinearModules: readonly LinearModule[] = Object.values(LinearModule);

export interface LinearShape {
  in_features: number;
  out_features: number;
}

export function linearShape(architecture: ModelArchitecture, module: LinearModule): LinearShape {
  const hidden = architecture.hidden_size;
  const queryWidth = architecture.num_attention_heads * architecture.head_dim;
  const keyValueWidth = architecture.num_key_value_heads * architecture.head_dim;
  const intermediate = architecture.intermediate_size;
  return match(module)
    .with('q_proj', () => ({ in_features: hidden, out_features: queryWidth }))
    .with('k_proj', 'v_proj', () => ({ in_features: hidden, out_features: keyValueWidth }))
    .with('o_proj', () => ({ in_features: queryWidth, out_features: hidden }))
    .with('gate_proj', 'up_proj', () => ({ in_features: hidden, out_features: intermediate }))
    .with('down_proj', () => ({ in_features: intermediate, out_features: hidden }))
    .exhaustive();
}

/** Weights of the seven linear layers of one decoder layer: what quantisation shrinks and LoRA adapts. */
export function linearParametersPerLayer(architecture: ModelArchitecture): number {
  return allLinearModules.reduce((sum, module) => {
    const shape = linearShape(architecture, module);
    return sum + shape.in_features * shape.out_features;
  }, 0);
}

/** The largest single linear weight: bitsandbytes dequantises one such matrix at a time into a 16-bit buffer. */
export function largestLinearParameters(architecture: ModelArchitecture): number {
  return Math.max(
    ...allLinearModules.map((module) => {
      const shape = linearShape(architecture, module);
      return shape.in_features * shape.out_features;
    }),
  );
}

/** Parameters that stay in 16 bits under bitsandbytes: token embeddings, the untied lm_head, and the RMSNorm scales. */
export function unquantizedParameters(architecture: ModelArchitecture): number {
  const embeddings = architecture.vocab_size * architecture.hidden_size;
  const head = architecture.tie_word_embeddings ? 0 : embeddings;
  const norms = (2 * architecture.num_layers + 1) * architecture.hidden_size;
  return embeddings + head + norms;
}

export function totalParameters(architecture: ModelArchitecture): number {
  return architecture.num_layers * linearParametersPerLayer(architecture) + unquantizedParameters(architecture);
}

/**
 * Parameters that take part in matrix multiplies for every token: every linear layer plus the lm_head (which reuses
 * the embedding matrix when tied). The embedding lookup itself costs no FLOPs.
 */
export function matmulParameters(architecture: ModelArchitecture): number {
  return architecture.num_layers * linearParametersPerLayer(architecture) + architecture.vocab_size * architecture.hidden_size;
}

export function resolveTargetModules(targetModules: 'all-linear' | readonly string[]): LinearModule[] {
  if (targetModules === 'all-linear') return [...allLinearModules];
  const unknown = targetModules.filter((module) => !(allLinearModules as readonly string[]).includes(module));
  if (unknown.length > 0) {
    throw new InvalidSpecError(`unknown LoRA target module(s) ${unknown.join(', ')}; the planner knows ${allLinearModules.join(', ')}`, {
      field: 'lora.target_modules',
    });
  }
  return [...new Set(targetModules as readonly LinearModule[])];
}

/** LoRA adds A (r × in) and B (out × r) to each targeted linear layer of each decoder layer. */
export function loraParameters(architecture: ModelArchitecture, rank: number, targetModules: readonly LinearModule[]): number {
  const perLayer = targetModules.reduce((sum, module) => {
    const shape = linearShape(architecture, module);
    return sum + rank * (shape.in_features + shape.out_features);
  }, 0);
  return architecture.num_layers * perLayer;
}

/**
 * Reads a Hugging Face `config.json`. Multimodal configs nest the language model under `text_config`; older
 * GPT-style configs use n_layer / n_embd / n_head, accepted as aliases.
 */
export function architectureFromHuggingFaceConfig(config: Record<string, unknown>, name?: string): ModelArchitecture {
  const textConfig = config.text_config;
  const source = isRecord(textConfig) ? { ...config, ...textConfig } : config;
  const modelType = typeof source.model_type === 'string' ? source.model_type : undefined;
  const architectureName = name ?? (typeof source._name_or_path === 'string' && source._name_or_path !== '' ? source._name_or_path : (modelType ?? 'custom'));

  const integer = (keys: readonly string[], fallback?: number): number => {
    for (const key of keys) {
      const value = source[key];
      if (typeof value === 'number' && Number.isInteger(value) && value > 0) return value;
    }
    if (fallback !== undefined) return fallback;
    throw new InvalidSpecError(`config.json of ${architectureName} has no positive integer ${keys.join(' / ')}`, { keys });
  };

  const hiddenSize = integer(['hidden_size', 'n_embd', 'd_model']);
  const numAttentionHeads = integer(['num_attention_heads', 'n_head']);
  const tieWordEmbeddings = source.tie_word_embeddings;
  return {
    name: architectureName,
    num_layers: integer(['num_hidden_layers', 'n_layer', 'num_layers']),
    hidden_size: hiddenSize,
    // GPT-style configs leave the MLP width implicit at four times the hidden size.
    intermediate_size: integer(['intermediate_size', 'n_inner', 'ffn_dim'], 4 * hiddenSize),
    num_attention_heads: numAttentionHeads,
    num_key_value_heads: integer(['num_key_value_heads'], numAttentionHeads),
    head_dim: integer(['head_dim'], Math.floor(hiddenSize / numAttentionHeads)),
    vocab_size: integer(['vocab_size']),
    tie_word_embeddings: typeof tieWordEmbeddings === 'boolean' ? tieWordEmbeddings : defaultTieWordEmbeddings(modelType),
  };
}

/**
 * When config.json omits tie_word_embeddings, transformers uses the model class's default: False for the Llama,
 * Mistral and Qwen2 families, True for PretrainedConfig (and so Gemma and most others).
 */
function defaultTieWordEmbeddings(modelType: string | undefined): boolean {
  return !['llama', 'mistral', 'mixtral', 'qwen2', 'qwen3'].includes(modelType ?? '');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
