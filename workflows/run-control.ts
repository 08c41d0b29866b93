/**
 * Pause, resume and checkpointNow for a workflow that composes the stages. Clients send the control signals to the
 * run's own workflow id (they know no other); the workflow keeps its own copy of the control state, to hold its
 * later stages while paused, and forwards each signal to the training child while one runs. Forwarding costs a few
 * history events per signal a person sends, none per step or checkpoint.
 */
import { type ChildWorkflowHandle, condition, type SignalDefinition, setHandler, type Workflow } from '@temporalio/workflow';
import type { ControlState } from '../src/contract/index.ts';
import { checkpointNowSignal, pauseSignal, resumeSignal } from './train-adapter.ts';

export interface RunControl {
  /** Paused, and how many checkpoints were asked for: what a training child is started with. */
  readonly state: Readonly<ControlState>;
  /** Resolves at once when running, or when a paused run is resumed: call it before each stage that may wait. */
  untilResumed(): Promise<void>;
  /**
   * Routes control to a child that accepts pause, resume and checkpointNow (a training child, a sweep), besides any others attached, from now until the returned function is called. `known` is the control
   * state the child was started with: requests made since (while the child was starting) are sent first.
   */
  attach(child: ChildWorkflowHandle<Workflow>, known: ControlState): () => void;
}

/**
 * Installs the pause, resume and checkpointNow handlers on the calling workflow. `onChange` runs after each
 * change (fineTune upserts its status search attribute there). Call it once, at the workflow's start.
 */
export function acceptRunControl(
  onChange: (state: Readonly<ControlState>) => void = () => {},
  initial: ControlState = { paused: false, checkpoint_requests: 0 },
): RunControl {
  // `initial`: the control state an execution continued as new carries over (a pause must outlast the rollover).
  const state: ControlState = { ...initial };
  // Usually one training child; a sweep trains several at once and controls them all.
  const children = new Set<ChildWorkflowHandle<Workflow>>();

  // A child that finished between a signal and its delivery has nothing left to control: such a failure is dropped.
  const forwardTo = (child: ChildWorkflowHandle<Workflow>, signal: SignalDefinition<[]>) => void child.signal(signal).catch(() => undefined);
  const forward = (signal: SignalDefinition<[]>) => {
    for (const child of children) forwardTo(child, signal);
  };

  setHandler(pauseSignal, () => {
    if (state.paused) return;
    state.paused = true;
    forward(pauseSignal);
    onChange(state);
  });
  setHandler(resumeSignal, () => {
    if (!state.paused) return;
    state.paused = false;
    forward(resumeSignal);
    onChange(state);
  });
  setHandler(checkpointNowSignal, () => {
    state.checkpoint_requests += 1;
    forward(checkpointNowSignal);
  });

  return {
    state,
    untilResumed: () => condition(() => !state.paused),
    attach(started, known) {
      children.add(started);
      if (state.paused !== known.paused) forwardTo(started, state.paused ? pauseSignal : resumeSignal);
      for (let request = known.checkpoint_requests; request < state.checkpoint_requests; request += 1) forwardTo(started, checkpointNowSignal);
      return () => {
        children.delete(started);
      };
    },
  };
}
