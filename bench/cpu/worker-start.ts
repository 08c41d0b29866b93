/**
 * What a Python worker start costs, plain and forked from the worker zygote (the tests' way): wall time from
 * startGpuWorker to its `gpu-worker ready` line, and the CPU the worker's processes used by then (utime + stime from
 * /proc: the worker, and for a forked start the zygote's client too). Also the zygote's own start, paid once per
 * test run. Each worker is stopped before the next starts; all against one local dev server.
 *
 *   npx tsx bench/cpu/worker-start.ts --starts 3 --out bench/results/worker-start.json
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startDevServer } from '../../src/runtime/dev-server.ts';
import { startGpuWorker, startWorkerZygote, workerZygoteVariable } from '../../src/runtime/gpu-worker.ts';
import type { ManagedProcess } from '../../src/runtime/processes.ts';
import { descendantsOf } from '../../test/cli/cli-process.ts';
import { freePort } from '../../test/setup/global-setup.ts';
import { versions } from '../versions.ts';

const { values } = parseArgs({ options: { starts: { type: 'string', default: '3' }, out: { type: 'string' } } });
const starts = Number(values.starts);

/** Linux's clock ticks per second for /proc's utime and stime (USER_HZ, 100 on every Linux tuneflow runs on). */
const clockTicksPerSecond = 100;

function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may contain spaces: fields after it start at state (field 3).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond;
}

interface Start {
  ready_seconds: number;
  cpu_seconds: number;
}

async function timedStart(address: string, logFile: string, workerPids: (worker: ManagedProcess) => number[]): Promise<Start> {
  const began = performance.now();
  const worker = await startGpuWorker({ address, logFile });
  const ready = (performance.now() - began) / 1000;
  const cpu = workerPids(worker).reduce((sum, pid) => sum + processCpuSeconds(pid), 0);
  await worker.stop();
  return { ready_seconds: Math.round(ready * 1000) / 1000, cpu_seconds: Math.round(cpu * 100) / 100 };
}

const root = await mkdtemp(join(tmpdir(), 'tuneflow-worker-start-'));
const server = await startDevServer({ logFile: join(root, 'temporal.log'), port: await freePort(), uiPort: await freePort() });
try {
  delete process.env[workerZygoteVariable];
  const plain: Start[] = [];
  for (let start = 0; start < starts; start += 1)
    plain.push(await timedStart(server.address, join(root, `plain-${start}.log`), (worker) => [worker.child.pid!]));

  const zygoteBegan = performance.now();
  const zygote = await startWorkerZygote({ socket: join(root, 'zygote.sock'), logFile: join(root, 'zygote.log') });
  const zygoteStart = {
    ready_seconds: Math.round(performance.now() - zygoteBegan) / 1000,
    cpu_seconds: Math.round(processCpuSeconds(zygote.child.pid!) * 100) / 100,
  };
  process.env[workerZygoteVariable] = join(root, 'zygote.sock');
  const forked: Start[] = [];
  try {
    for (let start = 0; start < starts; start += 1) {
      forked.push(await timedStart(server.address, join(root, `forked-${start}.log`), (worker) => [worker.child.pid!, ...descendantsOf(zygote.child.pid!)]));
    }
  } finally {
    delete process.env[workerZygoteVariable];
    await zygote.stop();
  }
  const result = {
    what: 'Python worker start: startGpuWorker -> "gpu-worker ready", plain and forked from the worker zygote',
    command: `npx tsx bench/cpu/worker-start.ts --starts ${starts}${values.out ? ` --out ${values.out}` : ''}`,
    date: new Date().toISOString(),
    load_average_1_minute_at_end: Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]),
    plain,
    zygote_start: zygoteStart,
    forked,
    versions: versions(),
  };
  const text = `${JSON.stringify(result, null, 2)}\n`;
  if (values.out) await writeFile(values.out, text);
  console.log(text);
} finally {
  await server.stop();
  await rm(root, { recursive: true, force: true });
}
