/**
 * The contract between the TypeScript side and the Python worker: names (task queues, activities, failure types,
 * messages, search attributes) and the zod schema of every payload under them. Sandbox-safe: workflows import it,
 * so nothing here may import a Node built-in.
 */
export * from './accelerator.ts';
export { checkPayload } from './check.ts';
export * from './messages.ts';
export * from './names.ts';
export * from './orchestration.ts';
export * from './vocabulary.ts';
