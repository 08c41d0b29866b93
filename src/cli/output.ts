/**
 * How every command writes: results to stdout (plain text, or JSON with `--json`), progress and messages to
 * stderr as `[tuneflow] …` lines. Colour is decided here once: on only for a terminal, off with NO_COLOR
 * (https://no-color.org) or TERM=dumb, forced with FORCE_COLOR.
 */
import { WorkflowNotFoundError } from '@temporalio/client';
import picocolors from 'picocolors';
import { isTemporalUnreachableError, isTuneflowError } from '../errors/index.ts';
import { isGateFailedError } from '../quality/index.ts';
import { isCommandError } from './command-error.ts';
import { ExitCode } from './exit-code.ts';

export function coloursEnabled(stream: NodeJS.WriteStream): boolean {
  if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== '') return false;
  if (process.env.FORCE_COLOR !== undefined && process.env.FORCE_COLOR !== '0') return true;
  return stream.isTTY === true && process.env.TERM !== 'dumb';
}

/** Colours for what goes to stderr (messages, progress) and to stdout (results). */
export const colours = {
  stderr: picocolors.createColors(coloursEnabled(process.stderr)),
  stdout: picocolors.createColors(coloursEnabled(process.stdout)),
};

export const log = (line: string): void => {
  process.stderr.write(`${colours.stderr.dim('[tuneflow]')} ${line}\n`);
};

export const printJson = (value: unknown): void => {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
};

export interface DescribedError {
  message: string;
  hint?: string;
  exitCode: ExitCode;
}

/** Every error a command can end with, as one line, a hint and an exit code. */
export function describeError(error: unknown): DescribedError {
  if (isCommandError(error)) return { message: error.message, hint: error.hint, exitCode: error.exitCode };
  if (isTemporalUnreachableError(error)) return { message: error.message, exitCode: ExitCode.ServerUnreachable };
  if (error instanceof WorkflowNotFoundError) {
    return { message: `no run with id ${error.workflowId}`, hint: '`tuneflow list` shows the runs this server knows', exitCode: ExitCode.RunNotFound };
  }
  if (isGateFailedError(error)) {
    return { message: error.message, hint: '`tuneflow models promote --force` overrides the gates, on record', exitCode: ExitCode.Unsuccessful };
  }
  if (isTuneflowError(error)) return { message: error.message, exitCode: ExitCode.InvalidInput };
  const message = error instanceof Error ? error.message.split('\n')[0]! : String(error);
  return { message, hint: 'run again with --verbose for the stack trace', exitCode: ExitCode.Internal };
}

/** Prints an error as `[tuneflow] error: …` and `hint: …`; the stack only when asked. */
export function reportError(error: unknown, verbose: boolean): ExitCode {
  const described = describeError(error);
  log(`${colours.stderr.red('error:')} ${described.message}`);
  if (described.hint) log(`${colours.stderr.yellow('hint:')} ${described.hint}`);
  if (verbose && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
  return described.exitCode;
}
