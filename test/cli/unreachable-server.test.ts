/**
 * With no Temporal server at the address, the client and the CLI say so in one line instead of a gRPC stack.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, test } from 'vitest';
import { connectClient } from '../../src/client.ts';
import { isTemporalUnreachableError } from '../../src/errors/index.ts';
import { portIsFree } from '../../src/cli/stack.ts';

const cli = fileURLToPath(new URL('../../scripts/tuneflow.mjs', import.meta.url));

async function closedAddress(): Promise<string> {
  for (let port = 47_311; ; port++) if (await portIsFree(port)) return `127.0.0.1:${port}`;
}

describe('no Temporal server', () => {
  test('connectClient throws TemporalUnreachableError naming the address', async () => {
    const address = await closedAddress();
    const error = await connectClient(address).catch((caught: unknown) => caught);
    expect(isTemporalUnreachableError(error)).toBe(true);
    expect((error as Error).message).toContain(`cannot reach a Temporal server at ${address}`);
  }, 60_000);

  test('tuneflow status exits 4 with one line, no stack', async () => {
    const address = await closedAddress();
    const outcome = await promisify(execFile)(process.execPath, [cli, 'status', 'some-run'], {
      env: { ...process.env, NO_COLOR: '1', TEMPORAL_ADDRESS: address },
    }).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(outcome.code).toBe(4);
    expect(outcome.stderr.trim()).toBe(
      `[tuneflow] error: cannot reach a Temporal server at ${address}: start one with \`tuneflow dev\`, or point TEMPORAL_ADDRESS at yours`,
    );
  }, 60_000);
});
