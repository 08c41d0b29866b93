import { statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { familyOfRowKeys, familySchemas, normaliseRow, type ParsedRow } from '../../src/data/formats.ts';
import { readRowBatches, visitRows } from '../../src/data/read.ts';
import { LineEncoder } from '../../src/data/line-encoder.ts';
import { lineHeadBytes, lineText } from '../../src/data/serialise.ts';

/**
 * Where a row's validation CPU goes, stage by stage, on one thread: each stage runs every stage before it, so the
 * difference between two rows of the result is one stage's cost. Best of 5 CPU times per stage.
 * Usage: npx tsx bench/data/row-stages.ts [DATASET [OUT]] (default: the 100 MB file prepare-1gb.ts --bytes 100000000
 * makes, into results/row-stages.json; the bench dry run gives a small file and a scratch OUT)
 */
const datasetPath = process.argv[2] ?? '/tmp/tuneflow-bench/prepare-100000000.jsonl';
const file = { absolutePath: datasetPath, relativePath: 'rows.jsonl', size: statSync(datasetPath).size };
const batches = [];
for await (const batch of readRowBatches(file, 64 << 10)) batches.push(batch);

const encoder = new LineEncoder();
const source = '"source":{"file":"rows.jsonl","row":1}';
function parsed(text: string): ParsedRow | undefined {
  let row: Record<string, unknown>;
  try {
    row = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const family = familyOfRowKeys(row);
  if (family === undefined) return undefined;
  const result = familySchemas[family].safeParse(row);
  return result.success ? ({ family, row: result.data } as ParsedRow) : undefined;
}
function line(text: string): { text: string; headBytes: number } | undefined {
  const row = parsed(text);
  if (row === undefined) return undefined;
  const content = normaliseRow(row);
  return { text: lineText(content, source), headBytes: lineHeadBytes(content.kind, source.length) };
}
/** Per row; `perBatch` runs after each batch's rows. */
const stages: Record<string, { row: (text: string) => number; perBatch?: () => number }> = {
  decode_and_split: { row: (text) => text.length },
  json_parse: {
    row: (text) => {
      try {
        return JSON.parse(text) ? 1 : 0;
      } catch {
        return 0;
      }
    },
  },
  schema: { row: (text) => (parsed(text) ? 1 : 0) },
  normalise_and_line_text: { row: (text) => line(text)?.text.length ?? 0 },
  encode_and_content_keys: {
    row: (text) => {
      const built = line(text);
      if (built !== undefined) encoder.add(built.text, built.headBytes);
      return 1;
    },
    perBatch: () => encoder.finish().bytes.byteLength,
  },
};

const best: Record<string, number> = {};
for (let repetition = 0; repetition < 5; repetition++) {
  for (const [name, stage] of Object.entries(stages)) {
    const before = process.cpuUsage();
    let sink = 0;
    for (const batch of batches) {
      visitRows(batch, (text) => (sink += text === undefined ? 0 : stage.row(text)));
      sink += stage.perBatch?.() ?? 0;
    }
    const used = process.cpuUsage(before);
    best[name] = Math.min(best[name] ?? Infinity, (used.user + used.system) / 1e6);
  }
}
const result = {
  date: new Date().toISOString(),
  node: process.version,
  command: `npx tsx bench/data/row-stages.ts ${datasetPath}`,
  machine: { cpus: availableParallelism(), load_average_1m: loadavg()[0] },
  input_bytes: file.size,
  cumulative_cpu_seconds_best_of_5: best,
};
console.log(JSON.stringify(result, null, 2));
await writeFile(process.argv[3] ?? join(dirname(fileURLToPath(import.meta.url)), 'results', 'row-stages.json'), `${JSON.stringify(result, null, 2)}\n`);
