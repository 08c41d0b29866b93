import { parentPort, workerData } from 'node:worker_threads';
import { processBatch, type BatchSettings } from './validate.ts';
import type { RowBatch } from './read.ts';

/** Worker-thread entry: validates batches as they arrive and hands the typed arrays back without copying. */
const settings = (workerData as { settings: BatchSettings }).settings;
const port = parentPort!;
port.on('message', ({ id, batch }: { id: number; batch: RowBatch }) => {
  const result = processBatch(batch, settings);
  port.postMessage({ id, result }, [result.rowNumbers.buffer, result.valid.buffer, result.families.buffer, result.keys.buffer, result.lineLengths.buffer, result.lineBytes.buffer] as ArrayBuffer[]);
});
