import { ApplicationFailure } from '@temporalio/workflow';
import { FailureType } from '../src/contract/index.ts';
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
