import { readFileSync, writeFileSync } from 'node:fs';

/**
 * Writes a benchmark's requests file, or with --check (the bench dry run) fails when the committed one is not what
 * the product's code builds now: the one rule for every *_requests.ts generator.
 */
export function writeOrCheckRequests(path: string, text: string, command: string): void {
  if (!process.argv.includes('--check')) {
    writeFileSync(path, text);
    return;
  }
  if (readFileSync(path, 'utf8') !== text) {
    process.stderr.write(`${path} is stale: run ${command} and commit it\n`);
    process.exit(1);
  }
}
