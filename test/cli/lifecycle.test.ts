/**
 * Process lifecycle, tried as a user would: the real `tuneflow` bin, real children (the temporal dev server,
 * the Python worker). Ctrl-C / SIGTERM stops every child and frees the ports within 30 s with no
 * `IllegalStateError`; a SIGKILLed supervisor leaves no child behind (the kernel's parent-death signal).
 */
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, inject, test } from 'vitest';
import { portIsFree } from '../../src/cli/stack.ts';
import { workerZygoteVariable } from '../../src/runtime/gpu-worker.ts';
import { freePort } from '../setup/global-setup.ts';
import { commandLineOf, descendantsOf, startCli, waitUntilGone } from './cli-process.ts';

const stopDeadline = 30_000;

// The CLI's workers are started as a user's are, not forked from the test run's zygote: these tests find them among
// the CLI's descendants.
delete process.env[workerZygoteVariable];

async function home(name: string): Promise<string> {
  return mkdtemp(join(inject('testRoot'), `lifecycle-${name}-`));
}

/** The children a command started: the temporal server and the Python worker, not tsx's esbuild helper. */
function servicesOf(pid: number): number[] {
  return descendantsOf(pid).filter((child) => /temporal server start-dev|tuneflow_activities\.worker/.test(commandLineOf(child)));
}

async function expectPortsFree(ports: number[]): Promise<void> {
  for (const port of ports) expect(await portIsFree(port), `port ${port} free`).toBe(true);
}

describe.each(['SIGINT', 'SIGTERM'] as const)('tuneflow dev, stopped by %s', (signal) => {
  test('stops the server and both workers and frees the ports', async () => {
    const [port, uiPort] = [await freePort(), await freePort()];
    const cli = startCli(['dev', '--port', String(port), '--ui-port', String(uiPort)], { TUNEFLOW_HOME: await home('dev') });
    await cli.waitForOutput(/ready: TEMPORAL_ADDRESS/);
    const children = servicesOf(cli.child.pid!);
    expect(children).toHaveLength(2);
    cli.child.kill(signal);
    const exit = await cli.waitForExit(stopDeadline);
    expect(exit.code, cli.output()).toBe(0);
    expect(cli.output()).not.toMatch(/IllegalStateError|Not running/);
    expect(await waitUntilGone(children, 1_000)).toEqual([]);
    await expectPortsFree([port, uiPort]);
  });
});

test('a SIGKILLed tuneflow dev leaves no server or worker behind', async () => {
  const [port, uiPort] = [await freePort(), await freePort()];
  const cli = startCli(['dev', '--port', String(port), '--ui-port', String(uiPort)], { TUNEFLOW_HOME: await home('dev-kill') });
  await cli.waitForOutput(/ready: TEMPORAL_ADDRESS/);
  const children = servicesOf(cli.child.pid!);
  expect(children).toHaveLength(2);
  cli.child.kill('SIGKILL');
  await cli.waitForExit();
  expect(await waitUntilGone(children, stopDeadline)).toEqual([]);
  await expectPortsFree([port, uiPort]);
});

describe('tuneflow gpu-worker', () => {
  test('SIGTERM stops the Python worker', async () => {
    const cli = startCli(['gpu-worker'], { TUNEFLOW_HOME: await home('gpu-term'), TEMPORAL_ADDRESS: inject('temporalAddress') });
    await cli.waitForOutput(/gpu-worker ready/);
    const children = servicesOf(cli.child.pid!);
    expect(children).toHaveLength(1);
    cli.child.kill('SIGTERM');
    const exit = await cli.waitForExit(stopDeadline);
    expect(exit.code, cli.output()).toBe(0);
    expect(await waitUntilGone(children, 1_000)).toEqual([]);
  });

  test('SIGKILLed, its Python worker does not keep polling as an orphan', async () => {
    const cli = startCli(['gpu-worker'], { TUNEFLOW_HOME: await home('gpu-kill'), TEMPORAL_ADDRESS: inject('temporalAddress') });
    await cli.waitForOutput(/gpu-worker ready/);
    const children = servicesOf(cli.child.pid!);
    expect(children).toHaveLength(1);
    cli.child.kill('SIGKILL');
    expect(await waitUntilGone(children, stopDeadline)).toEqual([]);
  });
});

test('tuneflow server stops on SIGTERM and frees its ports', async () => {
  const [port, uiPort] = [await freePort(), await freePort()];
  const cli = startCli(['server', '--port', String(port), '--ui-port', String(uiPort)], { TUNEFLOW_HOME: await home('server') });
  await cli.waitForOutput(/serving at/);
  const children = servicesOf(cli.child.pid!);
  expect(children).toHaveLength(1);
  cli.child.kill('SIGTERM');
  expect((await cli.waitForExit(stopDeadline)).code, cli.output()).toBe(0);
  expect(await waitUntilGone(children, 1_000)).toEqual([]);
  await expectPortsFree([port, uiPort]);
});

test('tuneflow worker stops on SIGINT without IllegalStateError', async () => {
  const cli = startCli(['worker'], { TUNEFLOW_HOME: await home('worker'), TEMPORAL_ADDRESS: inject('temporalAddress') });
  await cli.waitForOutput(/worker polling task queue tuneflow/);
  cli.child.kill('SIGINT');
  const exit = await cli.waitForExit(stopDeadline);
  expect(exit.code, cli.output()).toBe(0);
  expect(cli.output()).not.toMatch(/IllegalStateError|Not running/);
});

test('tuneflow demo, interrupted mid-run, stops everything; the run waits for the next demo', async () => {
  const [port, uiPort] = [await freePort(), await freePort()];
  const cli = startCli(['demo', '--port', String(port), '--ui-port', String(uiPort)], { TUNEFLOW_HOME: await home('demo') });
  await cli.waitForOutput(/started tuneflow-quickstart-demo/);
  const children = servicesOf(cli.child.pid!);
  expect(children).toHaveLength(2);
  cli.child.kill('SIGINT');
  const exit = await cli.waitForExit(stopDeadline);
  expect(exit.code, cli.output()).toBe(130);
  expect(cli.output()).toContain('`npm run demo` again continues the run');
  expect(cli.output()).not.toMatch(/IllegalStateError|Not running/);
  expect(await waitUntilGone(children, 1_000)).toEqual([]);
  await expectPortsFree([port, uiPort]);
});
