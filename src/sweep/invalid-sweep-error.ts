import { FailureType } from '../contract/vocabulary.ts';
import { TuneflowError } from '../errors/tuneflow-error.ts';

/** A sweep that cannot run as written: names the field (a grid parameter, a sweep option) and the value at fault. */
export class InvalidSweepError extends TuneflowError {
  readonly failureType = FailureType.InvalidSpec;
  readonly field: string;
  readonly value: unknown;

  constructor(message: string, fields: { field: string; value: unknown }) {
    super(message, fields);
    this.field = fields.field;
    this.value = fields.value;
  }
}
export const isInvalidSweepError = (error: unknown): error is InvalidSweepError => error instanceof InvalidSweepError;
