import type { Plan } from '../src/planner/index.ts';
import { describeRollbacks, type RunStatus, type TrainingProgressState } from './progress.ts';

/** What the Temporal UI's "Current Details" shows of a run: the workflow knows it at each stage and checkpoint. */
export interface RunDetails {
  stage: string;
  status: RunStatus;
  model: string;
  progress: TrainingProgressState;
  plan: Plan | null;
  /** Where live training progress is, while the training child runs. */
  training_workflow_id?: string | null;
}

const formatDuration = (seconds: number) => {
  const minutes = Math.round(seconds / 60);
  if (minutes < 1) return `${Math.max(0, Math.round(seconds))} s`;
  return minutes < 60 ? `${minutes} min` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
};

/**
 * Seconds left: the remaining steps at the plan's step time, scaled by the measured throughput once there is one
 * (the plan's estimate of the hardware may be off; its tokens per step are not).
 */
function etaSeconds({ progress, plan }: RunDetails): number | null {
  if (plan === null || progress.total_steps === null) return null;
  const measured = progress.tokens_per_second;
  const stepSeconds = measured === null || measured <= 0 ? plan.step_seconds : (plan.step_seconds * plan.tokens_per_s) / measured;
  return (progress.total_steps - progress.step) * stepSeconds;
}

/**
 * The run's state as markdown for `setCurrentDetails`: served by the workflow metadata query, so updating it adds no
 * history events and the UI always shows the latest.
 */
export function describeRunDetails(details: RunDetails): string {
  const { progress } = details;
  const rows: [string, string][] = [
    ['Stage', details.stage],
    ['Status', details.status],
    ['Model', details.model],
  ];
  if (progress.total_steps !== null) rows.push(['Step', `${progress.step} of ${progress.total_steps}`]);
  if (progress.loss !== null) rows.push(['Loss', progress.loss.toFixed(4)]);
  if (progress.val_loss !== null) rows.push(['Validation loss', progress.val_loss.toFixed(4)]);
  const eta = details.status === 'running' ? etaSeconds(details) : null;
  if (eta !== null && eta > 0) rows.push(['ETA', formatDuration(eta)]);
  if (progress.last_checkpoint !== null) rows.push(['Last checkpoint', `step ${progress.last_checkpoint.step}`]);
  if (progress.resumes > 0) rows.push(['Resumes', String(progress.resumes)]);
  const rollbacks = describeRollbacks(progress.rollbacks);
  if (rollbacks !== null) rows.push(['Rollbacks', rollbacks]);
  if (details.training_workflow_id) rows.push(['Training', `live in \`${details.training_workflow_id}\``]);
  return ['| | |', '|---|---|', ...rows.map(([name, value]) => `| ${name} | ${value} |`)].join('\n');
}
