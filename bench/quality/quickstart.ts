/**
 * The demo's quality numbers: runs `tuneflow demo` (the quickstart fine-tune of SmolLM2-135M on CPU) in a fresh
 * TUNEFLOW_HOME, then writes bench/results/quality-cpu.json from the run's manifest: base vs tuned scores of the
 * spec's suites (json field accuracy, parse and schema-valid rates, diversity) and the gate verdict, with the
 * command, date, commit and wall time.
 *
 *   node --import tsx bench/quality/quickstart.ts [--port 7391 --ui-port 8391]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runQualitySchema } from '../../src/quality/index.ts';
import { writeFileAtomic } from '../../src/runtime/atomic-write.ts';

const repository = fileURLToPath(new URL('../..', import.meta.url));
const home = mkdtempSync(join(tmpdir(), 'tuneflow-quality-bench-'));
const args = ['scripts/tuneflow.mjs', 'demo', ...process.argv.slice(2)];
const started = Date.now();
const demo = spawnSync(process.execPath, args, {
  cwd: repository,
  env: { ...process.env, TUNEFLOW_HOME: home },
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'inherit'],
});
const wallSeconds = (Date.now() - started) / 1000;
process.stdout.write(demo.stdout);
if (demo.status !== 0) throw new Error(`tuneflow demo exited with ${demo.status}`);

const manifest = JSON.parse(readFileSync(join(home, 'artifacts', 'runs', 'tuneflow-quickstart-demo', 'run.json'), 'utf8')) as { quality?: unknown };
const quality = runQualitySchema.parse(manifest.quality);
const scores = Object.fromEntries(quality.suites.results.map((result) => [result.name, { base: result.base, tuned: result.tuned }]));
mkdirSync(join(repository, 'bench', 'results'), { recursive: true });
await writeFileAtomic(
  join(repository, 'bench', 'results', 'quality-cpu.json'),
  `${JSON.stringify(
    {
      date: new Date(started).toISOString(),
      command: `TUNEFLOW_HOME=<fresh> node ${args.join(' ')}   (what \`npm run demo\` runs after its set-up), via bench/quality/quickstart.ts`,
      commit: execFileSync('git', ['rev-parse', 'HEAD'], { cwd: repository, encoding: 'utf8' }).trim(),
      machine: `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'})`,
      wall_seconds: wallSeconds,
      reference_rows: quality.suites.rows,
      references: quality.suites.references,
      field_accuracy: { base: scores.json?.base?.field_accuracy ?? null, tuned: scores.json?.tuned.field_accuracy ?? null },
      scores,
      gates: quality.gates,
      examples: quality.suites.examples,
    },
    null,
    2,
  )}\n`,
);
