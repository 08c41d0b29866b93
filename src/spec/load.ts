import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { InvalidSpecError } from '../errors/index.ts';
import { BuiltinModel, type RunSpec, runSpecSchema } from './schema.ts';

/** `model.max_seq_length: Invalid input: expected number, received string` — one line per bad field. */
export function describeIssues(issues: z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => `${issue.path.length ? issue.path.join('.') : '(spec)'}: ${issue.message}`);
}

/** Validates a spec object; paths in it are resolved against baseDirectory. */
export function parseSpec(value: unknown, baseDirectory: string, origin = 'spec'): RunSpec {
  const parsed = runSpecSchema.safeParse(value);
  if (!parsed.success) {
    const problems = describeIssues(parsed.error.issues);
    throw new InvalidSpecError(`${origin} is invalid:\n  ${problems.join('\n  ')}`, {
      origin,
      fields: parsed.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message })),
    });
  }
  return resolvePaths(parsed.data, baseDirectory);
}

/** Loads a spec from a YAML or JSON file (YAML is a superset of JSON, so one parser reads both). */
export function loadSpec(path: string): RunSpec {
  const absolute = resolve(path);
  let text: string;
  try {
    text = readFileSync(absolute, 'utf8');
  } catch (error) {
    throw new InvalidSpecError(`cannot read spec ${absolute}: ${(error as Error).message}`, { origin: absolute });
  }
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (error) {
    throw new InvalidSpecError(`${absolute} is not valid YAML or JSON: ${(error as Error).message}`, { origin: absolute });
  }
  return parseSpec(value, dirname(absolute), absolute);
}

const builtinModels: readonly string[] = Object.values(BuiltinModel);

function resolvePaths(spec: RunSpec, baseDirectory: string): RunSpec {
  const absolute = (path: string) => (isAbsolute(path) ? path : resolve(baseDirectory, path));
  // A model source is a builtin name, a name the planner's catalog knows (`tuneflow plan`), or a path: it is
  // made absolute only when it names something on disk, so names pass through and a typo is reported as given.
  const modelSource = (source: string) => (builtinModels.includes(source) || !existsSync(absolute(source)) ? source : absolute(source));
  return {
    ...spec,
    model: { ...spec.model, source: modelSource(spec.model.source) },
    dataset: {
      ...spec.dataset,
      path: absolute(spec.dataset.path),
      ...(spec.dataset.val_path === undefined ? {} : { val_path: absolute(spec.dataset.val_path) }),
    },
    evaluate: {
      ...spec.evaluate,
      ...(spec.evaluate.references_path === undefined ? {} : { references_path: absolute(spec.evaluate.references_path) }),
      suites: spec.evaluate.suites.map((suite) => {
        if (suite.kind === 'json' && suite.schema_path !== undefined) return { ...suite, schema_path: absolute(suite.schema_path) };
        if (suite.kind === 'judge' && suite.model !== undefined) return { ...suite, model: modelSource(suite.model) };
        return suite;
      }),
    },
  };
}
