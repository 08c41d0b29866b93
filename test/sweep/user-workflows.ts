/**
 * A user's own workflow file that runs a sweep: it reaches tuneflow through `tuneflow/workflow` alone (bundled by
 * the Temporal bundler, which rejects any Node built-in reached from workflow code), expands the grid in the
 * workflow and runs the sweep as its child.
 */
import { planSweep, type RunSpec, runSweep, type SweepResult } from 'tuneflow/workflow';

export async function tuneGrid(spec: RunSpec, grid: string[], artifactRootUri: string): Promise<SweepResult> {
  const plan = planSweep(spec, grid, { steps: 6, rungs: [3, 6] });
  return runSweep(spec, plan, { artifactRootUri });
}
