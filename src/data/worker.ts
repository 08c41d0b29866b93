import { parentPort, workerData } from 'node:worker_threads';
import { LineEncoder } from './line-encoder.ts';
import { processBatch, type BatchSettings } from './validate.ts';
import type { RowBatch } from './read.ts';

/** Worker-thread entry: validates batches as they arrive and hands the typed arrays back without copying. */
const { settings, lineEncoder } = workerData as { settings: BatchSettings; lineEncoder: WebAssembly.Module };
const encoder = new LineEncoder(lineEncoder);
const port = parentPort!;
port.on('message', ({ id, batch }: { id: number; batch: RowBatch }) => {
  const result = processBatch(batch, settings, encoder);
  port.postMessage({ id, result }, [
    result.rowNumbers.buffer,
    result.valid.buffer,
    result.families.buffer,
    result.lines.bytes.buffer,
    result.lines.lengths.buffer,
    result.lines.keys.buffer,
  ] as ArrayBuffer[]);
});
