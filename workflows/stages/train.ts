import { startChild, workflowInfo } from '@temporalio/workflow';
import { ObjectiveKind, Stage, TaskQueue } from '../../src/contract/index.ts';
import { activitySummary } from '../activities.ts';
import type { RunControl } from '../run-control.ts';
import { type TrainedAdapter, trainAdapter, trainingWorkflowId } from '../train-adapter.ts';
import { type PlannedRun, runNameOf } from './plan.ts';

export interface TrainOptions {
  /** The calling workflow's run control (acceptRunControl): its pause, resume and checkpointNow reach training. */
  control?: RunControl;
  /** History length at which the training child continues as new (default 8,000). */
  maxHistoryEvents?: number;
  /** The child's workflow id; by default `trainingWorkflowId(<calling workflow id>, <run name>)`, where clients look for it. */
  workflowId?: string;
  /** Stop after this step, checkpointed (a sweep's rung); training it again later resumes there. */
  stopAtStep?: number;
}

/**
 * Train stage: runs the trainAdapter child workflow for the planned run and returns the adapter it trained. The
 * child runs on tuneflow's task queue, where tuneflow's orchestration worker serves it, whatever queue the calling
 * workflow runs on. Cancelling the caller cancels the child, which checkpoints before it stops.
 */
export async function train(run: PlannedRun, options: TrainOptions = {}): Promise<TrainedAdapter> {
  const name = runNameOf(run);
  const objective = run.spec.train.objective.kind;
  const known = { paused: options.control?.state.paused ?? false, checkpoint_requests: options.control?.state.checkpoint_requests ?? 0 };
  const child = await startChild(trainAdapter, {
    workflowId: options.workflowId ?? trainingWorkflowId(workflowInfo().workflowId, name),
    taskQueue: TaskQueue.Orchestration,
    staticSummary: activitySummary(
      Stage.Train,
      run.spec.model.source,
      [
        name === null ? '' : `run ${name}: `,
        objective === ObjectiveKind.SupervisedFineTuning ? '' : `${objective}, `,
        `${run.setup.backend} on ${run.setup.device}, ${run.setup.quantization === 'none' ? run.setup.dtype : run.setup.quantization}`,
      ].join(''),
    ),
    // Which run of its workflow the child trains, and where, for the UI and `temporal workflow describe`.
    ...(name === null ? {} : { memo: { run: name, run_uri: run.run_uri, objective } }),
    args: [
      {
        run,
        control: known,
        ...(options.maxHistoryEvents === undefined ? {} : { max_history_events: options.maxHistoryEvents }),
        ...(options.stopAtStep === undefined ? {} : { stop_at_step: options.stopAtStep }),
      },
    ],
  });
  const detach = options.control?.attach(child, known);
  try {
    return await child.result();
  } finally {
    detach?.();
  }
}
