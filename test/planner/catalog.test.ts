import { describe, expect, it } from 'vitest';
import { architectureFromHuggingFaceConfig, architectureCatalog, findArchitecture, findGpu, gpuCatalog, totalParameters } from '../../src/planner/index.ts';
import { InvalidSpecError } from '../../src/errors/index.ts';

/** Parameter counts the model cards and Hub pages publish: each catalog shape must reproduce its own. */
const publishedBillions: Record<string, number> = {
  'llama-3.2-1b': 1.24,
  'llama-3.2-3b': 3.21,
  'llama-3.1-8b': 8.03,
  'llama-3.1-70b': 70.6,
  'llama-3.3-70b': 70.6,
  'qwen2.5-0.5b': 0.494,
  'qwen2.5-1.5b': 1.54,
  'qwen2.5-3b': 3.09,
  'qwen2.5-7b': 7.62,
  'qwen2.5-14b': 14.7,
  'qwen2.5-32b': 32.5,
  'qwen2.5-72b': 72.7,
  'mistral-7b': 7.25,
  'smollm2-135m': 0.135,
  'smollm2-360m': 0.362,
  'smollm2-1.7b': 1.71,
  'gemma-2-2b': 2.61,
  'gemma-2-9b': 9.24,
  'gemma-2-27b': 27.2,
};

describe('architecture catalog', () => {
  it.each(Object.entries(publishedBillions))('%s has its published parameter count', (name, billions) => {
    const architecture = findArchitecture(name);
    expect(architecture).toBeDefined();
    // Qwen counts q/k/v biases the planner leaves out (well under 0.1 %); 1 % covers that and the cards' rounding.
    expect(Math.abs(totalParameters(architecture!) / 1e9 / billions - 1)).toBeLessThan(0.01);
  });

  it('covers every catalog entry with a published count, except the random test model', () => {
    const covered = architectureCatalog.map((entry) => entry.name).filter((name) => name !== 'tiny-random-llama');
    expect(covered.sort()).toEqual(Object.keys(publishedBillions).sort());
  });

  it('finds models by Hugging Face id and by tuneflow builtin name, ignoring case', () => {
    expect(findArchitecture('meta-llama/Llama-3.1-8B-Instruct')?.name).toBe('llama-3.1-8b');
    expect(findArchitecture('smollm2-135m-instruct')?.name).toBe('smollm2-135m');
    expect(findArchitecture('TINY-RANDOM-LLAMA')).toEqual({
      name: 'tiny-random-llama',
      num_layers: 2,
      hidden_size: 64,
      intermediate_size: 128,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 16,
      vocab_size: 49152,
      tie_word_embeddings: true,
    });
    expect(findArchitecture('no-such-model')).toBeUndefined();
  });
});

describe('architectureFromHuggingFaceConfig', () => {
  it('reads a Llama config.json', () => {
    const config = {
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      hidden_size: 4096,
      intermediate_size: 14336,
      num_attention_heads: 32,
      num_hidden_layers: 32,
      num_key_value_heads: 8,
      vocab_size: 128256,
      tie_word_embeddings: false,
    };
    const { name: _name, ...shape } = findArchitecture('llama-3.1-8b')!;
    expect(architectureFromHuggingFaceConfig(config, 'my-llama')).toEqual({ name: 'my-llama', ...shape });
  });

  it('applies transformers defaults: kv heads = heads, head_dim = hidden / heads, untied for llama, tied otherwise', () => {
    const base = { hidden_size: 512, intermediate_size: 1024, num_attention_heads: 8, num_hidden_layers: 4, vocab_size: 1000 };
    expect(architectureFromHuggingFaceConfig({ ...base, model_type: 'llama' })).toMatchObject({
      num_key_value_heads: 8,
      head_dim: 64,
      tie_word_embeddings: false,
      name: 'llama',
    });
    expect(architectureFromHuggingFaceConfig({ ...base, model_type: 'gemma2', head_dim: 256 })).toMatchObject({ head_dim: 256, tie_word_embeddings: true });
  });

  it('reads the language model of a multimodal config from text_config', () => {
    const config = {
      model_type: 'gemma3',
      text_config: {
        hidden_size: 2560,
        intermediate_size: 10240,
        num_attention_heads: 8,
        num_key_value_heads: 4,
        head_dim: 256,
        num_hidden_layers: 34,
        vocab_size: 262208,
      },
    };
    expect(architectureFromHuggingFaceConfig(config, 'gemma-3-4b')).toMatchObject({ num_layers: 34, hidden_size: 2560, head_dim: 256, vocab_size: 262208 });
  });

  it('applies the defaults inside text_config too, and reads a null head_dim as absent', () => {
    const config = {
      model_type: 'llava',
      text_config: {
        model_type: 'llama',
        hidden_size: 512,
        intermediate_size: 1024,
        num_attention_heads: 8,
        head_dim: null,
        num_hidden_layers: 4,
        vocab_size: 1000,
      },
    };
    expect(architectureFromHuggingFaceConfig(config, 'vision')).toMatchObject({ num_key_value_heads: 8, head_dim: 64, tie_word_embeddings: false });
  });

  it('names the missing field', () => {
    expect(() => architectureFromHuggingFaceConfig({ hidden_size: 64 }, 'broken')).toThrow(InvalidSpecError);
    expect(() => architectureFromHuggingFaceConfig({ hidden_size: 64 }, 'broken')).toThrow(/num_attention_heads/);
  });
});

describe('GPU catalog', () => {
  it('has every GPU the issue names', () => {
    expect(gpuCatalog.map((gpu) => gpu.id)).toEqual(
      expect.arrayContaining(['rtx-3090', 'rtx-4090', 'rtx-5090', 'a10g', 'l4', 'l40s', 'a100-40gb', 'a100-80gb', 'h100', 'h200']),
    );
  });

  it('matches names as torch and nvidia-smi report them', () => {
    expect(findGpu('NVIDIA H100 80GB HBM3')?.id).toBe('h100');
    expect(findGpu('NVIDIA GeForce RTX 4090')?.id).toBe('rtx-4090');
    expect(findGpu('NVIDIA L40S')?.id).toBe('l40s');
    expect(findGpu('NVIDIA H200')?.id).toBe('h200');
    expect(findGpu('NVIDIA A100-SXM4-80GB')?.id).toBe('a100-80gb');
    expect(findGpu('some other card')).toBeUndefined();
  });
});
