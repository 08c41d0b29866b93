import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isInvalidSpecError } from '../src/errors/index.ts';
import { loadSpec, loadSpecFile, parseSpec, parseSpecFile } from '../src/spec/load.ts';

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

describe('a spec of several runs (runs:)', () => {
  const shared = { model: { source: 'tiny-random-llama', max_seq_length: 128 }, lora: { r: 8 }, train: { learning_rate: 1e-4, epochs: 2 } };
  const fieldsOf = (value: unknown) => {
    try {
      parseSpecFile(value, '/data');
    } catch (error) {
      if (isInvalidSpecError(error)) return (error.details.fields as { path: string; message: string }[]).map(({ path, message }) => `${path}: ${message}`);
      throw error;
    }
    throw new Error('the spec was accepted');
  };

  it("lays each run's section fields over the shared ones, field by field, and resolves each run's paths", () => {
    const file = parseSpecFile(
      {
        ...shared,
        name: 'pipeline',
        runs: [
          { name: 'sft', dataset: { path: 'sft.jsonl' } },
          { name: 'dpo', from: 'sft', dataset: { path: 'pairs.jsonl' }, train: { objective: { kind: 'dpo', beta: 0.2 }, epochs: 1 } },
        ],
      },
      '/data',
    );
    if (file.kind !== 'runs') throw new Error('expected runs');
    const [sft, dpo] = file.runs.runs;
    expect(file.runs.name).toBe('pipeline');
    expect(sft).toMatchObject({ name: 'sft', from: null, spec: { name: 'pipeline', dataset: { path: '/data/sft.jsonl' }, lora: { r: 8, alpha: 8 } } });
    expect(sft!.spec.train).toMatchObject({ objective: { kind: 'sft' }, learning_rate: 1e-4, epochs: 2 });
    // The run's train fields replace the shared ones they name and keep the others.
    expect(dpo).toMatchObject({ name: 'dpo', from: 'sft', spec: { dataset: { path: '/data/pairs.jsonl' }, model: { source: 'tiny-random-llama' } } });
    expect(dpo!.spec.train).toMatchObject({ objective: { kind: 'dpo', beta: 0.2, loss_type: 'sigmoid' }, learning_rate: 1e-4, epochs: 1 });
    expect(parseSpecFile({ ...shared, dataset: { path: 'd.jsonl' } }, '/data')).toMatchObject({ kind: 'run', spec: { dataset: { path: '/data/d.jsonl' } } });
  });

  it('refuses bad references at parse time, naming the field: duplicate names, an unknown or later `from`, a model.source on a started run, a run started from that does not merge', () => {
    expect(
      fieldsOf({
        ...shared,
        runs: [
          { name: 'a', dataset: { path: 'a.jsonl' }, merge: { enabled: false } },
          { name: 'a', dataset: { path: 'b.jsonl' } },
          { name: 'b', from: 'c', dataset: { path: 'b.jsonl' } },
          { name: 'c', from: 'a', dataset: { path: 'c.jsonl' }, model: { source: 'other' } },
        ],
      }),
    ).toEqual([
      'runs.3.model.source: run "c" starts from "a" and trains on its merged model: remove model.source',
      'runs.1.name: two runs are named "a": give each run its own name',
      'runs.2.from: run "b" starts from "c", which is not an earlier run (runs train in the order written; earlier: a)',
      'runs.0.merge.enabled: run "c" starts from run "a"\'s merged model: "a" must merge',
    ]);
  });

  it("names a bad field in the run that sets it, a bad shared field with the run it broke, and a run's bad name", () => {
    expect(fieldsOf({ ...shared, runs: [{ name: 'x', dataset: { path: 'x.jsonl' }, train: { learning_rate: 'fast' } }] })).toEqual([
      'runs.0.train.learning_rate: Invalid input: expected number, received string',
    ]);
    expect(fieldsOf({ ...shared, train: { micro_batch_size: 0 }, runs: [{ name: 'x', dataset: { path: 'x.jsonl' } }] })).toEqual([
      'train.micro_batch_size: Too small: expected number to be >0',
    ]);
    // Valid alone, wrong together: the shared val_fraction and the run's val_count.
    expect(fieldsOf({ ...shared, dataset: { val_fraction: 0.1 }, runs: [{ name: 'x', dataset: { path: 'x.jsonl', val_count: 3 } }] })).toEqual([
      'runs.0.dataset: give at most one of val_fraction, val_count, val_path',
    ]);
    expect(
      fieldsOf({
        ...shared,
        lora: { alpha: 8 },
        runs: [{ name: 'x', dataset: { path: 'x.jsonl' }, train: { objective: { kind: 'dpo', loss_type: 'ipo', label_smoothing: 0.1 } } }],
      }),
    ).toEqual(["runs.0.train.objective.label_smoothing: label_smoothing applies to loss_type 'sigmoid' only (IPO has none)"]);
    expect(fieldsOf({ ...shared, runs: [{ name: 'x' }] })).toEqual(['runs.0.dataset: Invalid input: expected object, received undefined']);
    expect(fieldsOf({ ...shared, runs: [{ name: 'a/b', dataset: { path: 'x.jsonl' } }] })[0]).toMatch(/^runs\.0\.name: run name "a\/b" must be/);
    expect(fieldsOf({ ...shared, runs: [] })).toEqual(['runs: Too small: expected array to have >=1 items']);
  });

  it('is refused where one run is expected, and loads from a file', () => {
    const path = write('runs.yaml', 'model:\n  source: tiny-random-llama\nruns:\n  - name: one\n    dataset:\n      path: one.jsonl\n');
    expect(() => loadSpec(path)).toThrow(/runs: this spec has several runs/);
    expect(loadSpecFile(path)).toMatchObject({ kind: 'runs', runs: { runs: [{ name: 'one', spec: { dataset: { path: join(directory, 'one.jsonl') } } }] } });
  });
});
