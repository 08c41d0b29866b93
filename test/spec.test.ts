import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isInvalidSpecError } from '../src/errors/index.ts';
import { loadSpec, parseSpec } from '../src/spec/load.ts';

const directory = mkdtempSync(join(tmpdir(), 'tuneflow-spec-'));
const write = (name: string, text: string) => {
  const path = join(directory, name);
  writeFileSync(path, text);
  return path;
};

describe('run spec', () => {
  it('applies current LoRA defaults: r=16, alpha=r, no dropout, all linear layers, lr 2e-4, AdamW chosen per device', () => {
    const spec = parseSpec({ model: { source: 'smollm2-135m-instruct' }, dataset: { path: 'data.jsonl' } }, '/data');
    expect(spec.lora).toEqual({ r: 16, alpha: 16, dropout: 0, target_modules: 'all-linear', use_rslora: false });
    expect(spec.train.learning_rate).toBe(2e-4);
    expect(spec.train.optimizer).toBe('auto');
    expect(parseSpec({ model: { source: 'x' }, dataset: { path: 'd' }, lora: { r: 64 } }, '/').lora.alpha).toBe(64);
  });

  it('resolves paths against the spec file and leaves builtin model names alone', () => {
    mkdirSync(join(directory, 'weights'), { recursive: true });
    const path = write('paths.yaml', 'model:\n  source: ./weights\ndataset:\n  path: data/train.jsonl\n');
    const spec = loadSpec(path);
    expect(spec.model.source).toBe(join(directory, 'weights'));
    expect(spec.dataset.path).toBe(join(directory, 'data/train.jsonl'));
    expect(parseSpec({ model: { source: 'tiny-random-llama' }, dataset: { path: 'd' } }, '/x').model.source).toBe('tiny-random-llama');
    // Names the planner's catalog knows pass through; so does a path that does not exist (reported as written).
    expect(parseSpec({ model: { source: 'llama-3.1-8b' }, dataset: { path: 'd' } }, directory).model.source).toBe('llama-3.1-8b');
  });

  it('reads JSON as well as YAML', () => {
    const path = write('spec.json', JSON.stringify({ model: { source: 'tiny-random-llama' }, dataset: { path: 'd.jsonl' }, train: { epochs: 3 } }));
    expect(loadSpec(path).train.epochs).toBe(3);
  });

  it('names the path of every bad field', () => {
    const path = write(
      'bad.yaml',
      'model:\n  source: x\n  max_seq_length: long\ndataset:\n  path: d.jsonl\n  val_fraction: 0.1\n  val_count: 5\nlora:\n  r: 0\ntrain:\n  optimizer: sgd\nmystery: 1\n',
    );
    let error: unknown;
    try {
      loadSpec(path);
    } catch (caught) {
      error = caught;
    }
    expect(isInvalidSpecError(error)).toBe(true);
    const message = (error as Error).message;
    expect(message).toContain(path);
    for (const field of [
      'model.max_seq_length',
      'lora.r',
      'train.optimizer',
      'dataset: give at most one of val_fraction, val_count, val_path',
      'Unrecognized key: "mystery"',
    ]) {
      expect(message).toContain(field);
    }
  });

  it('says so when the file is missing or not YAML', () => {
    expect(() => loadSpec(join(directory, 'absent.yaml'))).toThrow(/cannot read spec/);
    expect(() => loadSpec(write('broken.yaml', 'model: [unclosed'))).toThrow(/not valid YAML or JSON/);
  });
});
