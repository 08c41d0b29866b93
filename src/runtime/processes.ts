import { type ChildProcess, spawn, type SpawnOptions } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readyEnvironment } from '../../scripts/python-environment.mjs';

/** A child process whose output goes to a log file (and optionally the console), stoppable gracefully. */
export interface ManagedProcess {
  readonly child: ChildProcess;
  readonly logFile: string;
  /** SIGTERM, then SIGKILL after the grace period; resolves once the process is gone. */
  stop(graceMilliseconds?: number): Promise<void>;
  /** SIGKILL: the crash a user's machine can have at any instant. */
  kill(): Promise<void>;
  readonly exited: Promise<number | null>;
}

export interface StartProcessOptions extends SpawnOptions {
  logFile: string;
  /** Resolves start once a line of output matches. */
  readyPattern?: RegExp;
  readyTimeoutMilliseconds?: number;
  echo?: boolean;
}

/**
 * Linux: asks the kernel to SIGTERM the child when its parent dies however it dies (SIGKILL, OOM killer), then
 * execs the real command in the same process, so the child's pid is the one the supervisor knows.
 * PR_SET_PDEATHSIG survives exec; a parent that died before the prctl is caught by comparing getppid().
 * Python is tuneflow's own dependency already (the workers, and the temporal CLI ship in its environment).
 */
const dieWithParentLauncher = [
  'import ctypes, os, signal, sys',
  'PR_SET_PDEATHSIG = 1',
  'ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)',
  'if os.getppid() != int(sys.argv[1]): sys.exit(143)',
  'os.execv(sys.argv[2], sys.argv[2:])',
].join('\n');

/** The command line that starts `command` tied to this process's life (Linux), or `command` itself elsewhere. */
function tiedToThisProcess(command: string, args: string[]): [string, string[]] {
  if (process.platform !== 'linux') return [command, args];
  return [readyEnvironment().python, ['-c', dieWithParentLauncher, String(process.pid), command, ...args]];
}

/**
 * A deadline raced against a child: the child's own handles keep the event loop alive while it runs, and a pending
 * deadline must not once the race is decided (a ready timeout of minutes held a finished test run open).
 */
const unreferencedSleep = (milliseconds: number) => sleep(milliseconds, undefined, { ref: false });

/**
 * Starts a supervised child. Two rules keep a supervisor's children from outliving it: the child leads its own
 * process group (detached), so Ctrl-C in a terminal reaches only the supervisor, which stops its children in
 * order; and on Linux the kernel terminates the child if the supervisor dies without stopping it.
 */
export async function startProcess(command: string, args: string[], options: StartProcessOptions): Promise<ManagedProcess> {
  mkdirSync(dirname(options.logFile), { recursive: true });
  const log = createWriteStream(options.logFile, { flags: 'a' });
  const [executable, argv] = tiedToThisProcess(command, args);
  const child = spawn(executable, argv, { ...options, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let ready: () => void = () => {};
  const readyPromise = new Promise<void>((resolve) => (ready = resolve));
  for (const stream of [child.stdout, child.stderr]) {
    stream?.on('data', (chunk: Buffer) => {
      log.write(chunk);
      if (options.echo) process.stderr.write(chunk);
      if (options.readyPattern?.test(chunk.toString())) ready();
    });
  }
  const stopWith = async (signal: NodeJS.Signals, graceMilliseconds: number) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    const outcome = await Promise.race([exited.then(() => 'exited'), unreferencedSleep(graceMilliseconds).then(() => 'timeout')]);
    if (outcome === 'timeout') {
      child.kill('SIGKILL');
      await exited;
    }
  };
  const managed: ManagedProcess = {
    child,
    logFile: options.logFile,
    exited,
    stop: (graceMilliseconds = 10_000) => stopWith('SIGTERM', graceMilliseconds),
    kill: () => stopWith('SIGKILL', 10_000),
  };
  if (options.readyPattern) {
    const timeout = options.readyTimeoutMilliseconds ?? 120_000;
    const outcome = await Promise.race([
      readyPromise.then(() => 'ready'),
      exited.then((code) => `exited with code ${code}`),
      unreferencedSleep(timeout).then(() => `not ready after ${timeout} ms`),
    ]);
    if (outcome !== 'ready') {
      await managed.kill();
      throw new Error(`${command} ${args.join(' ')} ${outcome}; see ${options.logFile}`);
    }
  }
  return managed;
}
