import { ApplicationFailure } from '@temporalio/workflow';
import { FailureType, type TrainingSetup } from '../src/contract/index.ts';
import { type RunSpec, runSpecSchema } from '../src/spec/schema.ts';

/**
 * A spec as today's release reads it. A workflow started by an earlier release carries its spec as that release
 * parsed it, frozen in its history: fields added since (train.objective) are absent, and the Python worker, which
 * checks every request against today's contract, would refuse it. Parsing it again applies today's defaults (an
 * old run is an 'sft' run), so a run that was live while the workers upgraded finishes on the new code
 * (docs/upgrading.md). Pure and deterministic: safe to run on every replay. A spec that today's rules refuse fails
 * the run, naming the fields, rather than failing its workflow task forever.
 */
export function currentSpec(spec: RunSpec): RunSpec {
  const parsed = runSpecSchema.safeParse(spec);
  if (parsed.success) return parsed.data;
  const fields = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ');
  throw ApplicationFailure.create({
    type: FailureType.InvalidSpec,
    nonRetryable: true,
    message: `the run's spec, written by an earlier release, does not pass today's spec: ${fields}`,
  });
}

/**
 * A training setup as today's release reads it. A setup frozen in a live run's history by an earlier release lacks
 * the fields decided since, which today's contract requires; each is filled with what that release did: rows
 * unpacked (before train.packing), one process (before device.gpu_count and cpu_processes), and the spec's own fixed
 * micro-batch and accumulation (before micro_batch_size auto, the worker read them from the spec, which that release
 * wrote with its defaults applied: both always numbers). Pure and deterministic, like currentSpec.
 */
export function currentSetup(setup: TrainingSetup, writtenSpec: RunSpec): TrainingSetup {
  const recorded: Partial<TrainingSetup> = setup;
  const { micro_batch_size, gradient_accumulation_steps } = writtenSpec.train;
  return {
    ...setup,
    packing: recorded.packing ?? false,
    processes: recorded.processes ?? 1,
    parallelism: recorded.parallelism ?? 'single',
    micro_batch_size: recorded.micro_batch_size ?? (micro_batch_size === 'auto' ? 1 : micro_batch_size),
    gradient_accumulation_steps: recorded.gradient_accumulation_steps ?? gradient_accumulation_steps ?? 1,
  };
}

/** A planned run handed over by an earlier release, with today's spec and setup (currentSpec, currentSetup). */
export function currentRun<Run extends { spec: RunSpec; setup: TrainingSetup }>(run: Run): Run {
  return { ...run, spec: currentSpec(run.spec), setup: currentSetup(run.setup, run.spec) };
}
