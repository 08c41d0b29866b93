import type { ExitCode } from './exit-code.ts';

const marker = Symbol.for('tuneflow.command-error');

/** What a command says when it cannot do what was asked: one line, a hint for what to do instead, an exit code. */
export class CommandError extends Error {
  readonly [marker] = true;

  constructor(
    message: string,
    readonly exitCode: ExitCode,
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

export const isCommandError = (error: unknown): error is CommandError =>
  typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[marker] === true;
