/**
 * The demo model's GGUF export in a real llama.cpp client: node-llama-cpp's prebuilt CPU binary loads both files,
 * tokenises the chat prompt exactly as transformers does, and the F16 file's greedy tokens are transformers'.
 * Q8_0 rounds every weight, so it is held to loading, generating and starting with one of transformers' top tokens.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getLlama, type Llama, LlamaLogLevel } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { pythonActivitiesDirectory, readyEnvironment } from '../../scripts/python-environment.mjs';

const GREEDY_TOKENS = 8;
const PROMPT = 'Write one sentence about the sea.';

interface Reference {
  exports: { format: 'f16' | 'q8_0'; uri: string }[];
  modelfile_uri: string;
  prompt_text: string;
  prompt_ids: number[];
  greedy_ids: number[];
  top_first_ids: number[];
}

async function greedy(llama: Llama, modelPath: string, promptText: string) {
  const model = await llama.loadModel({ modelPath });
  const context = await model.createContext({ contextSize: 256, threads: 2 });
  try {
    const promptIds = Array.from(model.tokenize(promptText, true));
    const generated: number[] = [];
    // temperature 0 is greedy; evaluation ends by itself at the end-of-generation token.
    for await (const token of context.getSequence().evaluate(promptIds, { temperature: 0 })) {
      generated.push(token);
      if (generated.length === GREEDY_TOKENS) break;
    }
    return { promptIds, generated, template: model.fileInfo.metadata.tokenizer.chat_template };
  } finally {
    await context.dispose();
    await model.dispose();
  }
}

describe('GGUF export of smollm2-135m-instruct', () => {
  let reference: Reference;
  let llama: Llama;

  beforeAll(async () => {
    const run = await mkdtemp(join(inject('testRoot'), 'gguf-'));
    const output = execFileSync(
      readyEnvironment().python,
      [fileURLToPath(new URL('./export-and-reference.py', import.meta.url)), 'smollm2-135m-instruct', run, PROMPT, String(GREEDY_TOKENS)],
      { cwd: pythonActivitiesDirectory, env: { ...process.env, PYTHONPATH: pythonActivitiesDirectory }, encoding: 'utf8' },
    );
    reference = JSON.parse(output.trim().split('\n').at(-1) ?? '');
    // build: 'never' — the prebuilt binary from the optional platform package, never a download or a compile.
    llama = await getLlama({ gpu: false, build: 'never', progressLogs: false, logLevel: LlamaLogLevel.error });
  });
  afterAll(async () => {
    await llama?.dispose();
  });

  const path = (format: 'f16' | 'q8_0') => fileURLToPath(reference.exports.find((entry) => entry.format === format)?.uri ?? '');

  it("F16: llama.cpp tokenises like transformers and its first greedy tokens are transformers'", async () => {
    const { promptIds, generated, template } = await greedy(llama, path('f16'), reference.prompt_text);
    expect(promptIds).toEqual(reference.prompt_ids);
    expect(template).toContain('<|im_start|>');
    // The prompt is chosen so that neither side reaches end-of-sequence within GREEDY_TOKENS.
    expect(reference.greedy_ids).toHaveLength(GREEDY_TOKENS);
    expect(generated).toEqual(reference.greedy_ids);
  });

  it("Q8_0: loads and generates, starting with one of transformers' top tokens", async () => {
    const { promptIds, generated } = await greedy(llama, path('q8_0'), reference.prompt_text);
    expect(promptIds).toEqual(reference.prompt_ids);
    expect(generated.length).toBeGreaterThan(0);
    expect(reference.top_first_ids).toContain(generated[0]);
  });

  it('writes an Ollama Modelfile beside the weights', async () => {
    const modelfile = await readFile(fileURLToPath(reference.modelfile_uri), 'utf8');
    expect(modelfile).toBe('FROM ./model-q8_0.gguf\nPARAMETER stop "<|im_end|>"\n');
  });
});
