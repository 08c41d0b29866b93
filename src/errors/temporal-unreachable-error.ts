const marker = Symbol.for('tuneflow.temporal-unreachable');

/**
 * No Temporal server answered at the address. Not a `TuneflowError`: it never crosses an activity boundary, so it
 * has no failure type; it is what a client or CLI call gets when no `tuneflow dev` (or other server) is running.
 */
export class TemporalUnreachableError extends Error {
  readonly [marker] = true;

  constructor(
    readonly address: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot reach a Temporal server at ${address}: start one with \`tuneflow dev\`, or point TEMPORAL_ADDRESS at yours`, options);
    this.name = new.target.name;
  }
}

export const isTemporalUnreachableError = (error: unknown): error is TemporalUnreachableError =>
  typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[marker] === true;
