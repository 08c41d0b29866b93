import { pathToFileURL } from 'node:url';
import { prepareDataset } from '../../activities/index.ts';
import { runSpecSchema } from '../../src/spec/schema.ts';

/**
 * One measured prepare, in its own process so its peak RSS is the prepare's alone (worker threads included): the
 * workflow's prepare activity on a spec that names only the dataset, so every other dataset field is the spec's default.
 * Usage: prepare-once.ts DATASET STORE_ROOT; prints one JSON line.
 */
const [datasetPath, storeRoot] = process.argv.slice(2);
if (datasetPath === undefined || storeRoot === undefined) throw new Error('usage: prepare-once.ts DATASET STORE_ROOT');
const started = performance.now();
const cpuBefore = process.cpuUsage();
const spec = runSpecSchema.parse({ model: { source: 'tiny-random-llama' }, dataset: { path: datasetPath } });
const report = await prepareDataset({ spec, artifact_root_uri: pathToFileURL(storeRoot).href });
const seconds = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuBefore);
const { errors, ...counts } = report;
console.log(
  JSON.stringify({
    seconds,
    // All threads of the process: the main thread and the validation workers.
    cpu_seconds: (cpu.user + cpu.system) / 1e6,
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
    error_count: errors.length,
    report: counts,
  }),
);
