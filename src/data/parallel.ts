import { Worker } from 'node:worker_threads';
import type { RowBatch } from './read.ts';
import { processBatch, type BatchResult, type BatchSettings } from './validate.ts';

/**
 * Validation is CPU-bound (JSON parsing, schema checks, hashing), so large datasets spread it over worker threads
 * and the main thread: a batch goes to a worker with room in its queue, else the main thread validates it itself
 * between reading and writing. That balances itself to whatever the main thread's own share of the work leaves,
 * and one worker per spare core keeps memory low (each thread is a V8 heap). Results come back through promises
 * the caller awaits in submission order, so parallelism never reorders rows.
 */

/** Batches queued per worker: one running, one waiting, so a worker never idles on the round trip. */
const queuedPerWorker = 2;
/**
 * Batches the caller may hold unconsumed: enough that the main thread keeps reading and validating while the
 * oldest batch is still on a worker, instead of idling on it. Batches are small, so this costs little memory.
 */
const inFlightBatches = 16;

/**
 * The workers run the same TypeScript sources through tsx's loader, registered by a tiny bootstrap module:
 * Node 20 does not apply a parent's loader hooks to worker threads.
 */
// Resolved when a pool starts, not at import: vitest's module runner has no import.meta.resolve, and only
// datasets above the parallel threshold need the pool.
function workerBootstrap(): URL {
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const workerModule = new URL('./worker.ts', import.meta.url).href;
  return new URL(
    `data:text/javascript,${encodeURIComponent(`import { register } from ${JSON.stringify(tsxApi)}; register(); await import(${JSON.stringify(workerModule)});`)}`,
  );
}

type Pending = { resolve: (result: BatchResult) => void; reject: (error: unknown) => void };

export class BatchProcessor {
  /** How many batches may be in flight before the caller should consume the oldest. */
  readonly inFlightLimit: number;
  private readonly workers: { thread: Worker; queued: number }[];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;

  constructor(
    private readonly settings: BatchSettings,
    workerThreads: number,
  ) {
    this.inFlightLimit = workerThreads === 0 ? 1 : inFlightBatches;
    const bootstrap = workerThreads === 0 ? undefined : workerBootstrap();
    this.workers = Array.from({ length: workerThreads }, () => {
      const thread = new Worker(bootstrap!, {
        workerData: { settings },
        // Batches are about a megabyte and die young: a small young generation keeps each thread's memory small.
        resourceLimits: { maxYoungGenerationSizeMb: 16 },
      });
      const worker = { thread, queued: 0 };
      thread.on('message', ({ id, result }: { id: number; result: BatchResult }) => {
        worker.queued--;
        this.pending.get(id)?.resolve(result);
        this.pending.delete(id);
      });
      thread.on('error', (error) => this.failAll(error));
      thread.on('exit', (code) => {
        if (code !== 0) this.failAll(new Error(`dataset worker exited with code ${code}`));
      });
      return worker;
    });
  }

  process(batch: RowBatch): Promise<BatchResult> {
    const worker = this.workers.find((candidate) => candidate.queued < queuedPerWorker);
    if (worker === undefined) return Promise.resolve(processBatch(batch, this.settings));
    const id = this.nextId++;
    worker.queued++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const ranges = batch.layout === 'ranges' ? [batch.starts.buffer, batch.ends.buffer, batch.rowNumbers.buffer] : [];
      worker.thread.postMessage({ id, batch }, [batch.bytes.buffer, ...ranges] as ArrayBuffer[]);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.thread.terminate()));
  }

  private failAll(error: unknown): void {
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }
}
