/**
 * The registry's log does not read back: a missing, torn or misnumbered event file (the log is only ever appended
 * by link(2), so this means a hand edit or a failing disk). Retryable: a restored file lets the retry succeed.
 */
export class RegistryCorruptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RegistryCorruptError';
  }
}
export const isRegistryCorruptError = (error: unknown): error is RegistryCorruptError => error instanceof RegistryCorruptError;
