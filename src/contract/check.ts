import type { z } from 'zod';
import { ContractViolationError } from '../errors/contract-violation-error.ts';

/**
 * The payload, parsed by its contract schema; a payload that does not match fails as a non-retryable contract
 * violation naming what it is, the field (as a JSON path, like the Python side's) and why.
 */
export function checkPayload<Schema extends z.ZodType>(schema: Schema, payload: unknown, describedAs: string): z.output<Schema> {
  const parsed = schema.safeParse(payload);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((issue) => ({ path: ['$', ...issue.path.map(String)].join('.'), message: issue.message }));
  const [first] = issues;
  throw new ContractViolationError(
    `${describedAs} violates the contract at ${first?.path}: ${first?.message}${issues.length > 1 ? ` (and ${issues.length - 1} more)` : ''}`,
    {
      path: first?.path,
      violations: issues.slice(0, 20),
    },
  );
}
