/**
 * Writes the JSON Schema of every payload that crosses to the Python worker, generated from the contract's zod
 * schemas, into python-activities/tuneflow_activities/schemas/ (where validation.py loads them), and the run spec's
 * input schema for editors into schemas/run-spec.schema.json. Deterministic: keys sorted, one file per shape, so
 * the committed files change only when the contract does (test/contract.test.ts checks they are current).
 *
 *   npm run generate:schemas
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { acceleratorActivitySchemas, heartbeatSchemas, messageSchemas } from '../src/contract/index.ts';
import { specFileSchema } from '../src/spec/runs.ts';

const repository = join(dirname(fileURLToPath(import.meta.url)), '..');
export const pythonSchemasDirectory = join(repository, 'python-activities', 'tuneflow_activities', 'schemas');
export const runSpecSchemaPath = join(repository, 'schemas', 'run-spec.schema.json');

function sortedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedKeys);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((key) => [key, sortedKeys((value as Record<string, unknown>)[key])]),
  );
}

const document = (schema: z.ZodType, io: 'input' | 'output') =>
  `${JSON.stringify(sortedKeys(z.toJSONSchema(schema, { io, target: 'draft-2020-12' })), null, 2)}\n`;

/**
 * Every generated file by path. Requests carry the parsed spec (defaults applied), so payloads are described as
 * parsed ('output'); the editors' spec schema describes what a user writes ('input').
 */
export function generatedSchemas(): Map<string, string> {
  const files = new Map<string, string>();
  for (const [activity, { request, result }] of Object.entries(acceleratorActivitySchemas)) {
    files.set(join(pythonSchemasDirectory, `${activity}.request.json`), document(request, 'output'));
    files.set(join(pythonSchemasDirectory, `${activity}.result.json`), document(result, 'output'));
  }
  for (const [name, schema] of Object.entries(heartbeatSchemas)) files.set(join(pythonSchemasDirectory, `${name}.heartbeat.json`), document(schema, 'output'));
  for (const [name, schema] of Object.entries(messageSchemas)) files.set(join(pythonSchemasDirectory, `${name}.message.json`), document(schema, 'output'));
  // A spec file holds one run or several (`runs:`): the editors' schema takes both.
  files.set(runSpecSchemaPath, document(specFileSchema, 'input'));
  return files;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const files = generatedSchemas();
  // A shape removed from the contract loses its file too.
  rmSync(pythonSchemasDirectory, { recursive: true, force: true });
  for (const [path, text] of files) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
  }
  console.log(`wrote ${files.size} JSON Schema files (${readdirSync(pythonSchemasDirectory).length} for the Python worker, and ${runSpecSchemaPath})`);
}
