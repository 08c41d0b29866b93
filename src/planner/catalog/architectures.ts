import type { ModelArchitecture } from '../architecture.ts';

export interface CatalogArchitecture extends ModelArchitecture {
  /** Other names users type for the same weights: Hugging Face repository ids, tuneflow's builtin names. */
  aliases: readonly string[];
}

/**
 * Every number is copied from the model's published config.json on the Hugging Face Hub (repository named in the
 * aliases): num_hidden_layers, hidden_size, intermediate_size, num_attention_heads, num_key_value_heads, head_dim
 * (or hidden_size / num_attention_heads where the config omits it), vocab_size, tie_word_embeddings.
 * test/planner/catalog.test.ts checks each entry's parameter count against the count its model card publishes.
 */
export const architectureCatalog: readonly CatalogArchitecture[] = [
  // meta-llama/Llama-3.2-1B config.json
  {
    name: 'llama-3.2-1b',
    aliases: ['meta-llama/Llama-3.2-1B', 'meta-llama/Llama-3.2-1B-Instruct', 'unsloth/Llama-3.2-1B-Instruct'],
    num_layers: 16,
    hidden_size: 2048,
    intermediate_size: 8192,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    head_dim: 64,
    vocab_size: 128256,
    tie_word_embeddings: true,
  },
  // meta-llama/Llama-3.2-3B config.json
  {
    name: 'llama-3.2-3b',
    aliases: ['meta-llama/Llama-3.2-3B', 'meta-llama/Llama-3.2-3B-Instruct', 'unsloth/Llama-3.2-3B-Instruct'],
    num_layers: 28,
    hidden_size: 3072,
    intermediate_size: 8192,
    num_attention_heads: 24,
    num_key_value_heads: 8,
    head_dim: 128,
    vocab_size: 128256,
    tie_word_embeddings: true,
  },
  // meta-llama/Llama-3.1-8B config.json (Llama 3 8B has the same shape)
  {
    name: 'llama-3.1-8b',
    aliases: ['meta-llama/Llama-3.1-8B', 'meta-llama/Llama-3.1-8B-Instruct', 'meta-llama/Meta-Llama-3-8B', 'llama-3-8b', 'unsloth/Meta-Llama-3.1-8B-Instruct'],
    num_layers: 32,
    hidden_size: 4096,
    intermediate_size: 14336,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    head_dim: 128,
    vocab_size: 128256,
    tie_word_embeddings: false,
  },
  // meta-llama/Llama-3.1-70B config.json
  {
    name: 'llama-3.1-70b',
    aliases: ['meta-llama/Llama-3.1-70B', 'meta-llama/Llama-3.1-70B-Instruct', 'meta-llama/Meta-Llama-3-70B', 'llama-3-70b'],
    num_layers: 80,
    hidden_size: 8192,
    intermediate_size: 28672,
    num_attention_heads: 64,
    num_key_value_heads: 8,
    head_dim: 128,
    vocab_size: 128256,
    tie_word_embeddings: false,
  },
  // meta-llama/Llama-3.3-70B-Instruct config.json
  {
    name: 'llama-3.3-70b',
    aliases: ['meta-llama/Llama-3.3-70B-Instruct', 'unsloth/Llama-3.3-70B-Instruct'],
    num_layers: 80,
    hidden_size: 8192,
    intermediate_size: 28672,
    num_attention_heads: 64,
    num_key_value_heads: 8,
    head_dim: 128,
    vocab_size: 128256,
    tie_word_embeddings: false,
  },
  // Qwen/Qwen2.5-0.5B config.json
  {
    name: 'qwen2.5-0.5b',
    aliases: ['Qwen/Qwen2.5-0.5B', 'Qwen/Qwen2.5-0.5B-Instruct'],
    num_layers: 24,
    hidden_size: 896,
    intermediate_size: 4864,
    num_attention_heads: 14,
    num_key_value_heads: 2,
    head_dim: 64,
    vocab_size: 151936,
    tie_word_embeddings: true,
  },
  // Qwen/Qwen2.5-1.5B config.json
  {
    name: 'qwen2.5-1.5b',
    aliases: ['Qwen/Qwen2.5-1.5B', 'Qwen/Qwen2.5-1.5B-Instruct'],
    num_layers: 28,
    hidden_size: 1536,
    intermediate_size: 8960,
    num_attention_heads: 12,
    num_key_value_heads: 2,
    head_dim: 128,
    vocab_size: 151936,
    tie_word_embeddings: true,
  },
  // Qwen/Qwen2.5-3B config.json
  {
    name: 'qwen2.5-3b',
    aliases: ['Qwen/Qwen2.5-3B', 'Qwen/Qwen2.5-3B-Instruct'],
    num_layers: 36,
    hidden_size: 2048,
    intermediate_size: 11008,
    num_attention_heads: 16,
    num_key_value_heads: 2,
    head_dim: 128,
    vocab_size: 151936,
    tie_word_embeddings: true,
  },
  // Qwen/Qwen2.5-7B config.json
  {
    name: 'qwen2.5-7b',
    aliases: ['Qwen/Qwen2.5-7B', 'Qwen/Qwen2.5-7B-Instruct'],
    num_layers: 28,
    hidden_size: 3584,
    intermediate_size: 18944,
    num_attention_heads: 28,
    num_key_value_heads: 4,
    head_dim: 128,
    vocab_size: 152064,
    tie_word_embeddings: false,
  },
  // Qwen/Qwen2.5-14B config.json
  {
    name: 'qwen2.5-14b',
    aliases: ['Qwen/Qwen2.5-14B', 'Qwen/Qwen2.5-14B-Instruct'],
    num_layers: 48,
    hidden_size: 5120,
    intermediate_size: 13824,
    num_attention_heads: 40,
    num_key_value_heads: 8,
    head_dim: 128,
    vocab_size: 152064,
    tie_word_embeddings: false,
  },
  // Qwen/Qwen2.5-32B config.json
  {
    name: 'qwen2.5-32b',
    aliases: ['Qwen/Qwen2.5-32B', 'Qwen/Qwen2.5-32B-Instruct'],
    num_layers: 64,
    hidden_size: 5120,
    intermediate_size: 27648,
    num_attention_heads: 40,
    num_key_value_heads: 8,
    head_dim: 128,
    vocab_size: 152064,
    tie_word_embeddings: false,
  },
  // Qwen/Qwen2.5-72B config.json
  {
    name: 'qwen2.5-72b',
    aliases: ['Qwen/Qwen2.5-72B', 'Qwen/Qwen2.5-72B-Instruct'],
    num_layers: 80,
    hidden_size: 8192,
    intermediate_size: 29568,
    num_attention_heads: 64,
    num_key_value_heads: 8,
    head_dim: 128,
    vocab_size: 152064,
    tie_word_embeddings: false,
  },
  // mistralai/Mistral-7B-v0.3 config.json (v0.1 differs only in vocab_size 32000)
  {
    name: 'mistral-7b',
    aliases: ['mistralai/Mistral-7B-v0.3', 'mistralai/Mistral-7B-Instruct-v0.3', 'mistral-7b-v0.3'],
    num_layers: 32,
    hidden_size: 4096,
    intermediate_size: 14336,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    head_dim: 128,
    vocab_size: 32768,
    tie_word_embeddings: false,
  },
  // HuggingFaceTB/SmolLM2-135M config.json; tuneflow's builtin smollm2-135m-instruct is these weights.
  {
    name: 'smollm2-135m',
    aliases: ['HuggingFaceTB/SmolLM2-135M', 'HuggingFaceTB/SmolLM2-135M-Instruct', 'smollm2-135m-instruct'],
    num_layers: 30,
    hidden_size: 576,
    intermediate_size: 1536,
    num_attention_heads: 9,
    num_key_value_heads: 3,
    head_dim: 64,
    vocab_size: 49152,
    tie_word_embeddings: true,
  },
  // HuggingFaceTB/SmolLM2-360M config.json
  {
    name: 'smollm2-360m',
    aliases: ['HuggingFaceTB/SmolLM2-360M', 'HuggingFaceTB/SmolLM2-360M-Instruct'],
    num_layers: 32,
    hidden_size: 960,
    intermediate_size: 2560,
    num_attention_heads: 15,
    num_key_value_heads: 5,
    head_dim: 64,
    vocab_size: 49152,
    tie_word_embeddings: true,
  },
  // HuggingFaceTB/SmolLM2-1.7B config.json
  {
    name: 'smollm2-1.7b',
    aliases: ['HuggingFaceTB/SmolLM2-1.7B', 'HuggingFaceTB/SmolLM2-1.7B-Instruct'],
    num_layers: 24,
    hidden_size: 2048,
    intermediate_size: 8192,
    num_attention_heads: 32,
    num_key_value_heads: 32,
    head_dim: 64,
    vocab_size: 49152,
    tie_word_embeddings: true,
  },
  // google/gemma-2-2b config.json
  {
    name: 'gemma-2-2b',
    aliases: ['google/gemma-2-2b', 'google/gemma-2-2b-it'],
    num_layers: 26,
    hidden_size: 2304,
    intermediate_size: 9216,
    num_attention_heads: 8,
    num_key_value_heads: 4,
    head_dim: 256,
    vocab_size: 256000,
    tie_word_embeddings: true,
  },
  // google/gemma-2-9b config.json
  {
    name: 'gemma-2-9b',
    aliases: ['google/gemma-2-9b', 'google/gemma-2-9b-it'],
    num_layers: 42,
    hidden_size: 3584,
    intermediate_size: 14336,
    num_attention_heads: 16,
    num_key_value_heads: 8,
    head_dim: 256,
    vocab_size: 256000,
    tie_word_embeddings: true,
  },
  // google/gemma-2-27b config.json
  {
    name: 'gemma-2-27b',
    aliases: ['google/gemma-2-27b', 'google/gemma-2-27b-it'],
    num_layers: 46,
    hidden_size: 4608,
    intermediate_size: 36864,
    num_attention_heads: 32,
    num_key_value_heads: 16,
    head_dim: 128,
    vocab_size: 256000,
    tie_word_embeddings: true,
  },
  // tuneflow's builtin test model: a randomly initialised Llama with SmolLM2's tokenizer (see src/spec/schema.ts).
  {
    name: 'tiny-random-llama',
    aliases: [],
    num_layers: 2,
    hidden_size: 64,
    intermediate_size: 128,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 16,
    vocab_size: 49152,
    tie_word_embeddings: true,
  },
];

const byLowerCaseName = new Map<string, CatalogArchitecture>(
  architectureCatalog.flatMap((entry) => [entry.name, ...entry.aliases].map((name) => [name.toLowerCase(), entry] as const)),
);

/** Looks a model up by catalog name, alias or Hugging Face repository id, ignoring case. */
export function findArchitecture(name: string): ModelArchitecture | undefined {
  const entry = byLowerCaseName.get(name.trim().toLowerCase());
  if (entry === undefined) return undefined;
  const { aliases: _aliases, ...architecture } = entry;
  return architecture;
}
