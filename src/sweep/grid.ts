/**
 * The grid, decided once: `--grid` flags and the `sweep:` section become trials (each named by its parameters), each
 * trial's spec is the base spec with its parameters set and validated by the run-spec schema, and the rungs of
 * successive halving are fixed before anything runs. Pure: the client expands and validates, and the sweep workflow
 * derives the same trial specs from the same inputs.
 */
import { type RunSpec, runSpecSchema } from '../spec/schema.ts';
import { InvalidSweepError } from './invalid-sweep-error.ts';
import { type ParameterValue, SweepParameter, type SweepPlan, type SweepSpecInput, sweepSpecSchema, type Trial } from './schema.ts';

const knownParameters: readonly string[] = Object.values(SweepParameter);

/** `'8'` → 8, `'true'` → true, `'cosine'` → 'cosine': a flag's value as YAML would have typed it. */
function typedValue(text: string): ParameterValue {
  if (text === 'true' || text === 'false') return text === 'true';
  const number = Number(text);
  return text.trim() !== '' && Number.isFinite(number) ? number : text;
}

/** `['lora.r=8,16,64', 'train.learning_rate=1e-4,2e-4']` → the grid; a flag naming no known parameter is refused. */
export function parseGridFlags(flags: readonly string[]): Partial<Record<SweepParameter, ParameterValue[]>> {
  const grid: Partial<Record<SweepParameter, ParameterValue[]>> = {};
  for (const flag of flags) {
    const equals = flag.indexOf('=');
    const field = equals < 0 ? flag : flag.slice(0, equals);
    if (equals < 0 || equals === flag.length - 1) {
      throw new InvalidSweepError(`--grid ${flag}: expected <parameter>=<value>,<value>… such as lora.r=8,16,64`, { field, value: flag });
    }
    if (!knownParameters.includes(field)) {
      throw new InvalidSweepError(`--grid ${flag}: ${field} cannot be swept; sweepable: ${knownParameters.join(', ')}`, { field, value: flag });
    }
    const values = flag.slice(equals + 1).split(',');
    const empty = values.find((value) => value.trim() === '');
    if (empty !== undefined) throw new InvalidSweepError(`--grid ${flag}: an empty value`, { field, value: flag });
    grid[field as SweepParameter] = values.map((value) => typedValue(value.trim()));
  }
  return grid;
}

/** `lora.r=8,train.learning_rate=0.0001`: the trial's name in its workflow id and its run folder. */
export const trialKey = (parameters: Record<string, ParameterValue>) =>
  Object.entries(parameters)
    .map(([name, value]) => `${name}=${String(value)}`)
    .join(',');

/** Every combination of the grid's values, in the grid's order (the last parameter varies fastest). */
export function expandGrid(grid: Partial<Record<SweepParameter, readonly ParameterValue[]>>): Trial[] {
  let combinations: Record<string, ParameterValue>[] = [{}];
  for (const [name, values] of Object.entries(grid)) {
    combinations = combinations.flatMap((combination) => (values ?? []).map((value) => ({ ...combination, [name]: value })));
  }
  return combinations.map((parameters) => ({ key: trialKey(parameters), parameters }));
}

/**
 * A trial's spec: the base spec with the trial's parameters set and `train.max_steps` at the last rung (its
 * learning-rate schedule spans the whole sweep, whatever rung it stops at). A grid that sweeps `lora.r` but not
 * `lora.alpha` keeps the base spec's alpha/r, so every rank trains at the same scale. Validated by the run-spec
 * schema: a bad value fails naming the parameter and the value.
 */
export function trialSpec(base: RunSpec, trial: Trial, steps: number): RunSpec {
  const { sweep: _sweep, ...rest } = base;
  const spec = JSON.parse(JSON.stringify(rest)) as Record<string, Record<string, unknown>>;
  for (const [path, value] of Object.entries(trial.parameters)) {
    const [section, field] = path.split('.') as [string, string];
    spec[section] = { ...spec[section], [field]: value };
  }
  const rank = trial.parameters[SweepParameter.LoraRank];
  if (typeof rank === 'number' && !(SweepParameter.LoraAlpha in trial.parameters)) spec.lora!.alpha = (base.lora.alpha / base.lora.r) * rank;
  spec.train = { ...spec.train, max_steps: steps };
  const parsed = runSpecSchema.safeParse(spec);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join('.');
    const value = trial.parameters[field];
    throw new InvalidSweepError(`trial ${trial.key}: ${field}${value === undefined ? '' : `=${String(value)}`}: ${issue.message}`, { field, value });
  }
  return parsed.data;
}

/**
 * Rungs of successive halving for `trials` trials ending at `steps`: as many rungs as halving by `reductionFactor`
 * leaves trials to compare (8 trials, factor 2: 4 rungs), each `reductionFactor` times the previous in steps.
 */
export function deriveRungs(steps: number, trials: number, reductionFactor: number): number[] {
  const count = Math.floor(Math.log(Math.max(trials, 1)) / Math.log(reductionFactor) + 1e-9) + 1;
  const rungs = Array.from({ length: count }, (_, index) => Math.max(1, Math.round(steps / reductionFactor ** (count - 1 - index))));
  return [...new Set(rungs)];
}

/** How many trials each rung keeps: the best 1/reductionFactor, at least one. */
export const survivorsAfterRung = (trials: number, reductionFactor: number) => Math.max(1, Math.ceil(trials / reductionFactor));

/**
 * The sweep from the spec's `sweep:` section and `--grid` flags (which replace the section's values of the same
 * parameters): trials expanded and each one's spec validated, the rungs decided. Everything wrong is reported here,
 * before a workflow starts.
 */
export function planSweep(base: RunSpec, flags: readonly string[] = [], section: SweepSpecInput | undefined = base.sweep): SweepPlan {
  const parsed = sweepSpecSchema.safeParse(section ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InvalidSweepError(`sweep.${issue.path.join('.')}: ${issue.message}`, { field: `sweep.${issue.path.join('.')}`, value: undefined });
  }
  const sweep = parsed.data;
  const grid = { ...sweep.grid, ...parseGridFlags(flags) };
  const trials = expandGrid(grid);
  if (trials.length < 1 || Object.keys(grid).length === 0) {
    throw new InvalidSweepError('the sweep has no grid: give --grid lora.r=8,16 … or a sweep.grid section', { field: 'sweep.grid', value: grid });
  }
  const steps = sweep.steps ?? sweep.rungs?.at(-1) ?? base.train.max_steps;
  if (steps === undefined) {
    throw new InvalidSweepError('the sweep needs its length in steps: sweep.steps, sweep.rungs or train.max_steps', { field: 'sweep.steps', value: undefined });
  }
  const rungs = sweep.rungs ?? deriveRungs(steps, trials.length, sweep.reduction_factor);
  if (rungs.some((rung, index) => index > 0 && rung <= rungs[index - 1]!) || rungs.at(-1) !== steps) {
    throw new InvalidSweepError(`sweep.rungs ${JSON.stringify(rungs)}: ascending steps ending at the sweep's ${steps} steps`, {
      field: 'sweep.rungs',
      value: rungs,
    });
  }
  for (const trial of trials) trialSpec(base, trial, steps);
  return { trials, rungs, reduction_factor: sweep.reduction_factor, budget_seconds: sweep.budget ?? null, parallel: sweep.parallel };
}
