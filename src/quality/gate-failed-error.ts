import { FailureType } from '../contract/vocabulary.ts';
import { hasFailureType, TuneflowError } from '../errors/tuneflow-error.ts';
import type { GateVerdict } from './gates.ts';

/** A promotion refused because the version's gates failed; `tuneflow models promote --force` overrides it, on record. */
export class GateFailedError extends TuneflowError {
  readonly failureType = FailureType.GateFailed;
  constructor(
    message: string,
    readonly facts: { name: string; version: number; verdict: GateVerdict },
  ) {
    super(message, facts);
  }
}
export const isGateFailedError = (error: unknown): error is GateFailedError => hasFailureType(error, FailureType.GateFailed);
