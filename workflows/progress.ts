import type { TrainingProgressMessage } from '../src/contract/index.ts';

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
}
