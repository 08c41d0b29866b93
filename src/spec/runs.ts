import { z } from 'zod';
import { RunLayout } from '../runtime/layout.ts';
import {
  checkpointSpecSchema,
  datasetSpecSchema,
  deviceSpecSchema,
  evaluateSpecSchema,
  loraSpecInputSchema,
  mergeSpecSchema,
  modelSpecSchema,
  type RunSpec,
  runSpecSchema,
  trainSpecSchema,
  validationSpecSchema,
} from './schema.ts';

/**
 * A spec of several runs (`runs:`), trained one after another in one workflow: SFT then DPO on the SFT model, two
 * ranks, a second pass on new data. The sections at the top (model, lora, train, …) are shared; each run names
 * itself and changes what differs. The rule, decided here once: a run's section fields replace the shared
 * section's fields of the same name (one level: `train: { learning_rate }` keeps the shared epochs), and a field's
 * value is replaced whole (an objective, a list of prompts). A run with `from` trains on that earlier run's merged
 * model, which is then also its DPO reference.
 */

/** The sections a run may change, as a user writes them: every field optional, checked again once merged. */
const sectionOverrides = {
  model: z.strictObject(modelSpecSchema.shape).partial(),
  dataset: z.strictObject(datasetSpecSchema.shape).partial(),
  lora: loraSpecInputSchema.partial(),
  train: trainSpecSchema.partial(),
  checkpoint: checkpointSpecSchema.partial(),
  validation: validationSpecSchema.partial(),
  merge: mergeSpecSchema.partial(),
  evaluate: z.strictObject(evaluateSpecSchema.shape).partial(),
  device: deviceSpecSchema.partial(),
};
type Section = keyof typeof sectionOverrides;
const sections = Object.keys(sectionOverrides) as Section[];
const optionalSections = Object.fromEntries(sections.map((section) => [section, sectionOverrides[section].optional()])) as {
  [Name in Section]: z.ZodOptional<(typeof sectionOverrides)[Name]>;
};

const runEntrySchema = z.strictObject({
  /** The run's name: its folder `runs/<workflow id>/<name>/` and its training child `<workflow id>/train/<name>`. */
  name: z.string().superRefine((name, context) => {
    const problem = RunLayout.runNameProblem(name);
    if (problem !== null) context.addIssue({ code: 'custom', message: problem });
  }),
  /** An earlier run whose merged model this run trains on (and, for dpo, takes as its reference). */
  from: z.string().min(1).optional(),
  ...optionalSections,
});

/** The file shape of a spec with several runs: shared sections (all optional) and the runs, in training order. */
export const runsSpecSchema = z.strictObject({
  name: z.string().min(1).optional(),
  ...optionalSections,
  runs: z.array(runEntrySchema).min(1),
});

/** What a spec file may hold, for editors: one run, or several (`runs:`). */
export const specFileSchema = z.union([runSpecSchema, runsSpecSchema]);

/** One run of a spec with several: its name, the earlier run whose merged model it trains on, its whole spec. */
export interface NamedRunSpec {
  name: string;
  from: string | null;
  /** Every default applied, paths not yet resolved; a run with `from` keeps the shared model.source until it starts. */
  spec: RunSpec;
}

export interface SpecIssue {
  path: (string | number)[];
  message: string;
}

type RawSections = Partial<Record<Section, Record<string, unknown>>>;
type RawEntry = RawSections & { name: string; from?: string };

/** The run's sections laid over the shared ones, field by field (the rule above). */
function runSpecInput(shared: RawSections & { name?: string }, entry: RawEntry): Record<string, unknown> {
  const merged: Record<string, unknown> = shared.name === undefined ? {} : { name: shared.name };
  for (const section of sections) {
    const value = shared[section] === undefined && entry[section] === undefined ? undefined : { ...shared[section], ...entry[section] };
    if (value !== undefined) merged[section] = value;
  }
  return merged;
}

/**
 * Parses a spec with several runs: its shape, the references between runs (names unique, `from` an earlier run, a
 * run started from keeping its merged model), then each run's merged spec by the run spec's own rules. An issue in
 * a field the run sets names `runs.<i>.<field>`; one in a shared field names the field and the run.
 */
export function parseRunsSpec(value: unknown): { ok: true; name: string | null; runs: NamedRunSpec[] } | { ok: false; issues: SpecIssue[] } {
  const shaped = runsSpecSchema.safeParse(value);
  if (!shaped.success) {
    const issues: SpecIssue[] = shaped.error.issues.map(({ path, message }) => ({ path: path as (string | number)[], message }));
    // The references too, where the runs are there to read: a misspelt `from` shows beside a wrong type.
    const entries = (value as { runs?: unknown }).runs;
    const named =
      Array.isArray(entries) && entries.every((entry) => typeof entry?.name === 'string' && (entry.from === undefined || typeof entry.from === 'string'));
    if (named) issues.push(...referenceIssues(entries.map(({ name, from }: RawEntry) => ({ name, from: from ?? null, merges: true }))));
    return { ok: false, issues };
  }
  // The raw input, not the shape's output: the partial sections' output carries defaults that would hide the shared fields.
  const file = value as RawSections & { name?: string; runs: RawEntry[] };
  const issues: SpecIssue[] = [];
  for (const [index, entry] of file.runs.entries()) {
    if (entry.from !== undefined && entry.model?.source !== undefined) {
      issues.push({
        path: ['runs', index, 'model', 'source'],
        message: `run "${entry.name}" starts from "${entry.from}" and trains on its merged model: remove model.source`,
      });
    }
  }

  const runs: NamedRunSpec[] = [];
  /** Whether each run merges, where its spec parsed. */
  const merges: (boolean | undefined)[] = [];
  for (const [index, entry] of file.runs.entries()) {
    const parsed = runSpecSchema.safeParse(runSpecInput(file, entry));
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        // A value the run took from the shared sections is named there; anything else (also a field neither gives) in the run.
        const [section, field] = issue.path as [Section | undefined, string | undefined];
        const shared = section === undefined ? undefined : file[section];
        const fromShared =
          shared !== undefined && (field === undefined ? entry[section!] === undefined : shared[field] !== undefined && entry[section!]?.[field] === undefined);
        issues.push(
          fromShared
            ? { path: issue.path as (string | number)[], message: `${issue.message} (in run "${entry.name}")` }
            : { path: ['runs', index, ...(issue.path as (string | number)[])], message: issue.message },
        );
      }
      continue;
    }
    const spec = parsed.data;
    merges[index] = spec.merge.enabled;
    runs.push({ name: entry.name, from: entry.from ?? null, spec });
  }
  // Checked on every run the file names, parsed or not: a misspelt `from` shows beside a bad field.
  issues.push(...referenceIssues(file.runs.map(({ name, from }, index) => ({ name, from: from ?? null, merges: merges[index] ?? true }))));
  return issues.length > 0 ? { ok: false, issues } : { ok: true, name: file.name ?? null, runs };
}

/**
 * What is wrong with the runs' references to each other, each issue at `runs.<i>.<field>`: two runs of one name
 * (their folders and training children would collide), a `from` that is not an earlier run (runs train in the
 * order given), or a run started from that does not merge (its merged model is the next run's model). The spec's
 * parser and fineTune (for runs given by a program) both ask it.
 */
export function referenceIssues(runs: readonly { name: string; from: string | null; merges: boolean }[]): SpecIssue[] {
  const issues: SpecIssue[] = [];
  const earlier = new Map<string, number>();
  for (const [index, { name, from }] of runs.entries()) {
    if (earlier.has(name)) issues.push({ path: ['runs', index, 'name'], message: `two runs are named "${name}": give each run its own name` });
    if (from !== null) {
      const source = earlier.get(from);
      if (from === name) issues.push({ path: ['runs', index, 'from'], message: `run "${name}" cannot start from itself` });
      else if (source === undefined) {
        const names = [...earlier.keys()];
        issues.push({
          path: ['runs', index, 'from'],
          message: `run "${name}" starts from "${from}", which is not an earlier run (runs train in the order written${names.length ? `; earlier: ${names.join(', ')}` : ''})`,
        });
      } else if (!runs[source]!.merges) {
        issues.push({ path: ['runs', source, 'merge', 'enabled'], message: `run "${name}" starts from run "${from}"'s merged model: "${from}" must merge` });
      }
    }
    if (!earlier.has(name)) earlier.set(name, index);
  }
  return issues;
}

/** Whether a spec file's value is a spec with several runs (it has `runs:`). */
export const hasRuns = (value: unknown): boolean => typeof value === 'object' && value !== null && 'runs' in value;
