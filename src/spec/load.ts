import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { InvalidSpecError } from '../errors/index.ts';
import { hasRuns, type NamedRunSpec, parseRunsSpec, type SpecIssue } from './runs.ts';
import { BuiltinModel, type RunSpec, runSpecSchema } from './schema.ts';

/** `model.max_seq_length: Invalid input: expected number, received string` — one line per bad field. */
export function describeIssues(issues: z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => `${issue.path.length ? issue.path.join('.') : '(spec)'}: ${issue.message}`);
}

function invalidSpec(origin: string, issues: SpecIssue[]): InvalidSpecError {
  const problems = issues.map((issue) => `${issue.path.length ? issue.path.join('.') : '(spec)'}: ${issue.message}`);
  return new InvalidSpecError(`${origin} is invalid:\n  ${problems.join('\n  ')}`, {
    origin,
    fields: issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message })),
  });
}

/** Validates a spec object of one run; paths in it are resolved against baseDirectory. */
export function parseSpec(value: unknown, baseDirectory: string, origin = 'spec'): RunSpec {
  if (hasRuns(value)) {
    throw invalidSpec(origin, [
      {
        path: ['runs'],
        message: 'this spec has several runs: `tuneflow run` trains them in one workflow (loadSpecFile reads it); this takes a spec of one run',
      },
    ]);
  }
  const parsed = runSpecSchema.safeParse(value);
  if (!parsed.success)
    throw invalidSpec(
      origin,
      parsed.error.issues.map(({ path, message }) => ({ path: path as (string | number)[], message })),
    );
  return resolvePaths(parsed.data, baseDirectory);
}

/** A spec with several runs, parsed: the workflow's name for them and the runs, in training order. */
export interface RunsSpec {
  name: string | null;
  runs: NamedRunSpec[];
}

/** What a spec file holds: one run (fineTune's default run) or several, trained in order in one workflow. */
export type SpecFile = { kind: 'run'; spec: RunSpec } | { kind: 'runs'; runs: RunsSpec };

/** Validates a spec object of one run or of several (`runs:`); paths are resolved against baseDirectory. */
export function parseSpecFile(value: unknown, baseDirectory: string, origin = 'spec'): SpecFile {
  if (!hasRuns(value)) return { kind: 'run', spec: parseSpec(value, baseDirectory, origin) };
  const parsed = parseRunsSpec(value);
  if (!parsed.ok) throw invalidSpec(origin, parsed.issues);
  return {
    kind: 'runs',
    runs: { name: parsed.name, runs: parsed.runs.map((run) => ({ ...run, spec: resolvePaths(run.spec, baseDirectory) })) },
  };
}

/** Loads a spec of one run from a YAML or JSON file (YAML is a superset of JSON, so one parser reads both). */
export function loadSpec(path: string): RunSpec {
  const { value, absolute } = readSpecFile(path);
  return parseSpec(value, dirname(absolute), absolute);
}

/** Loads a spec file of one run or of several (`runs:`). */
export function loadSpecFile(path: string): SpecFile {
  const { value, absolute } = readSpecFile(path);
  return parseSpecFile(value, dirname(absolute), absolute);
}

function readSpecFile(path: string): { value: unknown; absolute: string } {
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
  return { value, absolute };
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
