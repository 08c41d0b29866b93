/**
 * Every example spec names the shipped JSON Schema (editor completion through yaml-language-server) and is valid
 * against it, and the schema agrees with the zod spec that tuneflow itself parses with.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { describe, expect, test } from 'vitest';
import { loadSpecFile } from '../../src/spec/load.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const schemaPath = join(root, 'schemas', 'run-spec.schema.json');
const examples = readdirSync(join(root, 'examples'), { recursive: true, encoding: 'utf8' })
  .filter((path) => /\.(ya?ml)$/.test(path))
  .map((path) => join(root, 'examples', path))
  .sort();

describe('example specs', () => {
  const validate = new Ajv2020({ allErrors: true, strict: false }).compile(JSON.parse(readFileSync(schemaPath, 'utf8')));

  test('there are examples to check', () => {
    expect(examples.length).toBeGreaterThanOrEqual(2);
  });

  test.each(examples.map((path) => [path.slice(root.length), path]))('%s names the schema and is valid against it', (_, path) => {
    const text = readFileSync(path, 'utf8');
    const modeline = text.split('\n')[0]!.match(/^# yaml-language-server: \$schema=(.+)$/);
    expect(modeline, 'first line: # yaml-language-server: $schema=…').not.toBeNull();
    expect(resolve(dirname(path), modeline![1]!)).toBe(schemaPath);
    const valid = validate(parse(text));
    expect(validate.errors ?? [], JSON.stringify(validate.errors)).toEqual([]);
    expect(valid).toBe(true);
    expect(() => loadSpecFile(path)).not.toThrow();
  });

  test('the schema rejects what the zod spec rejects: an unknown field, a wrong type', () => {
    expect(validate({ model: { source: 'tiny-random-llama' }, dataset: { path: 'data.jsonl' }, lora: { rank: 8 } })).toBe(false);
    expect(validate({ model: { source: 'tiny-random-llama' }, dataset: { path: 'data.jsonl' }, train: { epochs: 'two' } })).toBe(false);
  });
});
