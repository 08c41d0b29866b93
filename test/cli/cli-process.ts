/**
 * The real `tuneflow` bin as a child process, the way a user starts it: output collected, lines awaited, the
 * process tree inspected through /proc (Linux).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export const cliPath = fileURLToPath(new URL('../../scripts/tuneflow.mjs', import.meta.url));

export interface CliProcess {
  child: ChildProcess;
  output(): string;
  waitForOutput(pattern: RegExp, timeoutMilliseconds?: number): Promise<void>;
  /** Resolves with the exit code (or the signal's name) and how long it took from now. */
  waitForExit(timeoutMilliseconds?: number): Promise<{ code: number | string; milliseconds: number }>;
}

export function startCli(args: string[], environment: Record<string, string>): CliProcess {
  const child = spawn(process.execPath, [cliPath, ...args], { env: { ...process.env, NO_COLOR: '1', ...environment }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  return {
    child,
    output: () => output,
    waitForOutput: async (pattern, timeoutMilliseconds = 180_000) => {
      const deadline = Date.now() + timeoutMilliseconds;
      while (!pattern.test(output)) {
        if (child.exitCode !== null) throw new Error(`tuneflow ${args.join(' ')} exited (${child.exitCode}) before printing ${pattern}:\n${output}`);
        if (Date.now() > deadline) throw new Error(`tuneflow ${args.join(' ')} did not print ${pattern} within ${timeoutMilliseconds} ms:\n${output}`);
        await sleep(200);
      }
    },
    waitForExit: async (timeoutMilliseconds = 60_000) => {
      const started = Date.now();
      const code = await Promise.race([exited, sleep(timeoutMilliseconds).then(() => 'still running')]);
      return { code, milliseconds: Date.now() - started };
    },
  };
}

interface ProcessEntry {
  pid: number;
  parent: number;
  state: string;
}

function processTable(): ProcessEntry[] {
  const entries: ProcessEntry[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // The command name (field 2) is in parentheses and may contain spaces: split after its closing one.
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const [state, parent] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      entries.push({ pid: Number(name), parent: Number(parent), state: state! });
    } catch {
      // The process ended while the table was read.
    }
  }
  return entries;
}

/** Every live descendant of pid. */
export function descendantsOf(pid: number): number[] {
  const table = processTable();
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    for (const entry of table) {
      if (entry.parent === parent && entry.state !== 'Z') {
        found.push(entry.pid);
        queue.push(entry.pid);
      }
    }
  }
  return found;
}

/** A pid that exists and is not a zombie (an orphan reaped late by a container's init still counts as gone). */
export function isAlive(pid: number): boolean {
  if (!existsSync(`/proc/${pid}/stat`)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

export const commandLineOf = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    return '';
  }
};

export async function waitUntilGone(pids: number[], timeoutMilliseconds: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMilliseconds;
  while (Date.now() < deadline) {
    const alive = pids.filter(isAlive);
    if (alive.length === 0) return [];
    await sleep(250);
  }
  return pids.filter(isAlive);
}
