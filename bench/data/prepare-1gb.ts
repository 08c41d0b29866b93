import { execFileSync } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median } from '../statistics.ts';

/**
 * The issue-6 benchmark: prepares a 1 GiB JSONL of ~300-byte alpaca rows (with a sprinkling of malformed rows,
 * exact and near duplicates) and records throughput and peak RSS in results/prepare-1gb.json: several cold runs
 * (each into an empty store, each in a process of its own), judged by the median throughput and the highest peak
 * RSS, then one cached re-run. The dataset is generated into /tmp once and reused; it is never committed.
 * Usage: npx tsx bench/data/prepare-1gb.ts [--bytes N] [--trials N]
 */

const benchDirectory = dirname(fileURLToPath(import.meta.url));
const option = (name: string): number => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : 0);
const targetBytes = option('--bytes') || 2 ** 30;
const trialCount = option('--trials') || 5;
const datasetPath = `/tmp/tuneflow-bench/prepare-${targetBytes}.jsonl`;
const storeRoot = '/tmp/tuneflow-bench/store';

const vocabulary = (
  'river lantern quiet vector amber signal orbit meadow copper rhythm canvas harbor pixel summit willow ' +
  'gradient lattice ember falcon marble tensor cobalt prism velvet beacon thistle quartz nimbus saffron'
).split(' ');

/** xorshift32: deterministic, so every run measures the same bytes. */
function createRandom(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

async function generateDataset(): Promise<number> {
  await mkdir(dirname(datasetPath), { recursive: true });
  const random = createRandom(6);
  const sentence = (words: number): string => Array.from({ length: words }, () => vocabulary[Math.floor(random() * vocabulary.length)]).join(' ');
  const out = createWriteStream(datasetPath);
  let written = 0;
  let rows = 0;
  let previous = '';
  while (written < targetBytes) {
    const lines: string[] = [];
    for (let index = 0; index < 10_000; index++, rows++) {
      let line: string;
      if (rows % 2_000 === 1_999) line = '{"instruction": "this row is cut off';
      else if (rows % 500 === 499) line = previous;
      else if (rows % 1_000 === 998)
        line = previous.toUpperCase().replace('"INSTRUCTION"', '"instruction"').replace('"INPUT"', '"input"').replace('"OUTPUT"', '"output"');
      else line = JSON.stringify({ instruction: `Row ${rows}: ${sentence(12)}?`, input: sentence(6), output: sentence(20) });
      previous = line;
      lines.push(line);
    }
    const block = `${lines.join('\n')}\n`;
    written += Buffer.byteLength(block);
    if (!out.write(block)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  await new Promise((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve(undefined))));
  return rows;
}

if (!existsSync(datasetPath) || statSync(datasetPath).size < targetBytes) await generateDataset();
const bytes = statSync(datasetPath).size;

const command = [process.execPath, '--import', 'tsx', join(benchDirectory, 'prepare-once.ts'), datasetPath, storeRoot];
const measure = () =>
  JSON.parse(execFileSync(command[0]!, command.slice(1), { encoding: 'utf8', maxBuffer: 1 << 28 })) as {
    seconds: number;
    cpu_seconds: number;
    peak_rss_bytes: number;
    report: Record<string, unknown>;
  };
/** CPU time counters from /proc/stat: steal is time the hypervisor gave this VM's CPUs to someone else. */
function cpuTimes(): { steal: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return { steal: fields[7] ?? 0, total: fields.reduce((sum, value) => sum + value, 0) };
}

// The machine may be shared: the load average and the steal share say how much of its cores each run could have had.
const trials = [];
for (let trial = 0; trial < trialCount; trial++) {
  await rm(storeRoot, { recursive: true, force: true });
  const loadBefore = loadavg()[0];
  const timesBefore = cpuTimes();
  const run = measure();
  const timesAfter = cpuTimes();
  trials.push({
    seconds: run.seconds,
    throughput_mb_per_s: bytes / 1e6 / run.seconds,
    peak_rss_mib: run.peak_rss_bytes / 2 ** 20,
    cpu_seconds: run.cpu_seconds,
    load_average_1m_before: loadBefore,
    cpu_steal_fraction: (timesAfter.steal - timesBefore.steal) / (timesAfter.total - timesBefore.total),
    report: run.report,
  });
}
const cached = measure();
// At least one trial ran, so there is a median.
const medianThroughput = median(trials.map((trial) => trial.throughput_mb_per_s))!;
const highestPeakRss = Math.max(...trials.map((trial) => trial.peak_rss_mib));
const targets = { throughput_mb_per_s: 50, peak_rss_mib: 300 };
const result = {
  date: new Date().toISOString(),
  node: process.version,
  commit: execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).trim(),
  machine: { cpus: availableParallelism(), platform: process.platform, arch: process.arch },
  command: `npx tsx bench/data/prepare-1gb.ts --trials ${trialCount}`,
  each_run: `node --import tsx bench/data/prepare-once.ts ${datasetPath} ${storeRoot}`,
  input_bytes: bytes,
  rows: trials[0]!.report.total_rows,
  median_throughput_mb_per_s: medianThroughput,
  highest_peak_rss_mib: highestPeakRss,
  meets_targets: medianThroughput >= targets.throughput_mb_per_s && highestPeakRss <= targets.peak_rss_mib,
  targets,
  trials: trials.map(({ report: _report, ...trial }) => trial),
  report: trials[0]!.report,
  cached_rerun_seconds: cached.seconds,
  cached_rerun_hit: cached.report.cached,
};
console.log(JSON.stringify(result, null, 2));
if (targetBytes === 2 ** 30) await writeFile(join(benchDirectory, 'results', 'prepare-1gb.json'), `${JSON.stringify(result, null, 2)}\n`);
