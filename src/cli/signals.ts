/**
 * tuneflow owns SIGINT and SIGTERM: `main` installs the Temporal runtime with no shutdown signals of its own
 * (otherwise the runtime shuts every worker down on Ctrl-C before tuneflow can, and tuneflow's own shutdown then
 * fails with `IllegalStateError: Not running`).
 *
 * A long-running command listens from its first line. A signal while it is still starting exits at once: every
 * child is tied to this process (runtime/processes.ts), so the kernel sends each one SIGTERM and they stop on
 * their own. A signal once it runs resolves `received`, and the command stops its children in order. A second
 * signal while stopping exits at once, the same way.
 */
import { ExitCode } from './exit-code.ts';
import { log } from './output.ts';

export interface StopSignal {
  /** Resolves with the first SIGINT or SIGTERM after `running()`. */
  readonly received: Promise<NodeJS.Signals>;
  /** Start-up is over: from now on a signal asks for an orderly stop. */
  running(): void;
  /** Stops listening (the command is done). */
  dispose(): void;
}

export function listenForStopSignal(): StopSignal {
  let resolveReceived: (signal: NodeJS.Signals) => void = () => {};
  const received = new Promise<NodeJS.Signals>((resolve) => (resolveReceived = resolve));
  let phase: 'starting' | 'running' | 'stopping' = 'starting';
  const handler = (signal: NodeJS.Signals) => {
    if (phase === 'running') {
      phase = 'stopping';
      resolveReceived(signal);
      return;
    }
    log(phase === 'starting' ? `${signal} while starting: exiting now` : `${signal} again: exiting now`);
    process.exit(ExitCode.Interrupted);
  };
  process.on('SIGINT', handler).on('SIGTERM', handler);
  return {
    received,
    running: () => {
      phase = 'running';
    },
    dispose: () => {
      process.off('SIGINT', handler).off('SIGTERM', handler);
    },
  };
}
