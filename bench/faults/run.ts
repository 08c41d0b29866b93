/**
 * `npm run faults -- [--trials N] [--scenarios a,b] [--out FILE] [--timeout SECONDS] [--keep] [--check]`
 *
 * Runs the fault-injection suite (bench/faults/harness.ts) and writes one JSON file: date, command, versions,
 * machine, the per-scenario summary, the reference run and every trial's record. Exits non-zero if any trial failed.
 *
 * --check (the bench dry run) trains nothing: it checks the arguments and scenario names, bundles the workflows as a
 * suite does, and passes each faulted run's spec through today's spec schema and resolveTrainingSetup on this
 * machine's CPU, so a spec or contract change that would stop the suite before its first trial fails CI. The
 * trials themselves run in CI as test/faults/faults.test.ts (one of each SFT scenario, 24 steps).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { resolveTrainingSetup } from '../../src/setup/index.ts';
import { runSpecSchema } from '../../src/spec/schema.ts';
import { defaultHeartbeatTimeoutSeconds, faultRunShape, prepareSuite, type TrialRecord } from './harness.ts';
import { scenariosNamed } from './scenarios.ts';
import { runSuite, summarise, summaryTable } from './suite.ts';
import { versions } from '../versions.ts';

const { values } = parseArgs({
  options: {
    trials: { type: 'string', default: '1' },
    scenarios: { type: 'string' },
    out: { type: 'string' },
    timeout: { type: 'string', default: '300' },
    keep: { type: 'boolean', default: false },
    'heartbeat-timeout': { type: 'string', default: String(defaultHeartbeatTimeoutSeconds) },
    check: { type: 'boolean', default: false },
  },
});
const trials = Number(values.trials);
if (!Number.isInteger(trials) || trials < 1) throw new Error(`--trials must be a positive integer, got ${values.trials}`);
const scenarios = scenariosNamed(
  values.scenarios
    ?.split(',')
    .map((name) => name.trim())
    .filter(Boolean),
);
if (values.check) await checkSuite();

/** --check: everything a suite does before its first trial, and each faulted run's spec decided as the workflow would. */
async function checkSuite(): Promise<never> {
  const suite = await prepareSuite({ heartbeatTimeoutSeconds: Number(values['heartbeat-timeout']) });
  const cpuWorker = {
    device: { kind: 'cpu' as const, name: 'cpu', memory_gib: totalmem() / 2 ** 30, count: 1, cores: cpus().length },
    cuda_bf16_supported: false,
    unsloth_importable: false,
    bitsandbytes_importable: false,
  };
  for (const [run, spec] of Object.entries(suite.specs)) {
    const setup = resolveTrainingSetup(runSpecSchema.parse(spec), cpuWorker);
    console.log(
      `faults --check: ${run} run's spec parses and resolves (${setup.backend}, micro-batch ${setup.micro_batch_size} × ${setup.gradient_accumulation_steps}, packing ${setup.packing})`,
    );
  }
  console.log(
    `faults --check: ${scenarios.length} scenarios (${scenarios.map((scenario) => scenario.name).join(', ')}), ${trials} trials each; workflows bundled in ${suite.root}`,
  );
  await rm(suite.root, { recursive: true, force: true });
  process.exit(0);
}

const date = new Date().toISOString();
const out = values.out ?? join(dirname(fileURLToPath(import.meta.url)), 'results', `${date.slice(0, 10)}-faults-${trials}x.json`);

const loadBefore = loadavg()[0]!;
const versionsAtStart = versions();
const finished: TrialRecord[] = [];

/** Rewritten after every trial, so an interrupted suite still leaves every finished trial on disk. */
function writeResults(reference: TrialRecord | null, complete: boolean): void {
  mkdirSync(dirname(out), { recursive: true });
  const records = finished.filter((record) => record !== reference);
  const document = {
    date,
    command: `npm run faults -- ${process.argv.slice(2).join(' ')}`.trim(),
    complete,
    versions: versionsAtStart,
    machine: {
      cpus: cpus().length,
      cpu_model: cpus()[0]?.model,
      platform: process.platform,
      load_average_1m_before: loadBefore,
      load_average_1m_after: loadavg()[0],
    },
    run_shape: { ...faultRunShape, heartbeatTimeoutSeconds: Number(values['heartbeat-timeout']) },
    summary: summarise(scenarios, records),
    reference,
    records,
  };
  writeFileSync(out, `${JSON.stringify(document, null, 2)}\n`);
}

console.error(`faults: ${scenarios.length} scenarios × ${trials} trials, results to ${out}`);
const result = await runSuite({
  scenarios,
  trials,
  timeoutSeconds: Number(values.timeout),
  heartbeatTimeoutSeconds: Number(values['heartbeat-timeout']),
  keepSucceeded: values.keep,
  onRecord: (record) => {
    console.error(
      `${record.success ? 'ok  ' : 'FAIL'} ${record.scenario} #${record.trial} ${record.seconds.toFixed(0)} s, redone ${record.steps_redone}, ` +
        `restart→step ${record.restart_to_first_step_seconds?.toFixed(1) ?? '–'} s (ready→step ${record.ready_to_first_step_seconds?.toFixed(1) ?? '–'} s), landed ${record.fault?.landed ?? '–'}` +
        (record.failure ? `: ${record.failure} (logs ${record.logs})` : ''),
    );
    finished.push(record);
    writeResults(finished[0] ?? null, false);
  },
});
writeResults(result.reference, true);
console.log(summaryTable(result.summary));
if (result.records.some((record) => !record.success)) process.exitCode = 1;
