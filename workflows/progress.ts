import type { RollbackRecord, TrainingProgressMessage } from '../src/contract/index.ts';

/**
 * Training progress and run control as the workflows hold them: updated at checkpoints and resumes, never per step
 * (live step and loss travel in the train activity's heartbeats).
 */

export type RunStatus = 'running' | 'pausing' | 'paused' | 'completed' | 'failed' | 'cancelled';

export interface TrainingProgressState {
  step: number;
  total_steps: number | null;
  loss: number | null;
  val_loss: number | null;
  best: { val_loss: number; step: number } | null;
  tokens_per_second: number | null;
  last_checkpoint: { step: number; uri: string } | null;
  /** Times training restarted from a checkpoint: after a crash, a pause, or a continue-as-new. */
  resumes: number;
  /** Steps trained twice because a crash lost them (work after the last checkpoint). */
  steps_redone: number;
  /** [step, loss] pairs, halved by averaging neighbours whenever they exceed lossHistoryLimit. */
  loss_history: [number, number][];
  /** Each out-of-memory recovery: the micro-batch that failed and the one the planner chose instead. */
  out_of_memory_recoveries: {
    from_micro_batch_size: number;
    micro_batch_size: number;
    gradient_accumulation_steps: number;
    /** On from here: the first recovery of a run whose 'auto' had chosen checkpointing off turns it on. */
    gradient_checkpointing?: boolean;
    peak_vram_gib: number;
  }[];
  /**
   * Each rollback (train.rollback): a NaN or spiking step refused, training restored to its last checkpoint and the
   * step's rows skipped. Absent from the state of runs started before rollback existed.
   */
  rollbacks?: RollbackRecord[];
}

const lossHistoryLimit = 256;

export const emptyProgress = (): TrainingProgressState => ({
  step: 0,
  total_steps: null,
  loss: null,
  val_loss: null,
  best: null,
  tokens_per_second: null,
  last_checkpoint: null,
  resumes: 0,
  steps_redone: 0,
  loss_history: [],
  out_of_memory_recoveries: [],
  rollbacks: [],
});

function appendLosses(history: [number, number][], losses: [number, number][]): [number, number][] {
  let merged = [...history, ...losses];
  while (merged.length > lossHistoryLimit) {
    const halved: [number, number][] = [];
    for (let index = 0; index + 1 < merged.length; index += 2) {
      const [, first] = merged[index]!;
      const [step, second] = merged[index + 1]!;
      halved.push([step, (first + second) / 2]);
    }
    if (merged.length % 2 === 1) halved.push(merged.at(-1)!);
    merged = halved;
  }
  return merged;
}

/** `step 17 refused (loss spike: loss 9.81, gradient norm 3.2, z 14.2) → back to step 15, 6 rows skipped`. */
export function describeRollback(rollback: RollbackRecord): string {
  const value = (observed: RollbackRecord['loss']) => (typeof observed === 'number' ? observed.toPrecision(4) : observed);
  const z = rollback.z_score === null ? '' : `, z ${rollback.z_score.toFixed(1)}`;
  const median = rollback.loss_median === null ? '' : `, window median loss ${rollback.loss_median.toPrecision(4)}`;
  return (
    `step ${rollback.step} refused (${rollback.reason.replaceAll('_', ' ')}: loss ${value(rollback.loss)}, gradient norm ${value(rollback.gradient_norm)}${median}${z})` +
    ` → back to step ${rollback.restored_step}, ${rollback.rows.length} rows skipped`
  );
}

/** `2 rollbacks, 10 rows skipped; last: step 17 refused (…)`, or null when there were none. Shown by the UI, status and report. */
export function describeRollbacks(rollbacks: readonly RollbackRecord[] | undefined): string | null {
  if (!rollbacks?.length) return null;
  const rowsSkipped = rollbacks.reduce((sum, rollback) => sum + rollback.rows.length, 0);
  return `${rollbacks.length} rollback${rollbacks.length === 1 ? '' : 's'}, ${rowsSkipped} rows skipped; last: ${describeRollback(rollbacks.at(-1)!)}`;
}

/** Folds a message from the train activity into the progress. */
export function applyProgressMessage(progress: TrainingProgressState, message: TrainingProgressMessage): void {
  progress.step = message.step;
  progress.total_steps = message.total_steps;
  progress.loss = message.loss;
  progress.val_loss = message.val_loss;
  progress.best = message.best;
  progress.tokens_per_second = message.tokens_per_second;
  progress.last_checkpoint = message.last_checkpoint;
  progress.steps_redone = message.steps_redone;
  progress.loss_history = appendLosses(progress.loss_history, message.losses);
  if (message.event === 'resumed') progress.resumes += 1;
  // The worker sends the run's whole list (a handful at most: train.rollback.max_rollbacks bounds it).
  if (message.rollback_records !== undefined) progress.rollbacks = message.rollback_records;
}
