/**
 * Histories of real runs, committed under test/histories/ and replayed by test/replay.test.ts against the current
 * workflow code: a change that would break a run in flight fails there (use `patched()` for such changes).
 * Recorded only when TUNEFLOW_RECORD_HISTORIES=1, by the e2e tests that produce them, with the temporal CLI's own
 * JSON export (the format `historyFromJSON` reads).
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { inject } from 'vitest';
import { readyEnvironment } from '../../scripts/python-environment.mjs';

export const historiesDirectory = fileURLToPath(new URL('../histories/', import.meta.url));

export function recordHistory(workflowId: string, name: string): void {
  if (process.env.TUNEFLOW_RECORD_HISTORIES !== '1') return;
  const json = execFileSync(
    readyEnvironment().temporal,
    ['workflow', 'show', '--workflow-id', workflowId, '--address', inject('temporalAddress'), '--output', 'json'],
    { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  writeFileSync(`${historiesDirectory}${name}.json`, json);
}
