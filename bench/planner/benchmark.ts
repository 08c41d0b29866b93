/**
 * How long one planner candidate takes. Writes bench/planner/results/planner-benchmark.json.
 *   npx tsx bench/planner/benchmark.ts
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { timePlanner } from './timing.ts';

const timing = timePlanner(20);
const record = { date: new Date().toISOString(), command: 'npx tsx bench/planner/benchmark.ts', node: process.version, cpu: cpus()[0]?.model, ...timing };
mkdirSync('bench/planner/results', { recursive: true });
// --out: elsewhere than the committed result (the bench dry run's scratch folder).
const outIndex = process.argv.indexOf('--out');
writeFileSync(
  outIndex === -1 ? 'bench/planner/results/planner-benchmark.json' : (process.argv[outIndex + 1] as string),
  `${JSON.stringify(record, null, 2)}\n`,
);
console.log(record);
