import { Worker } from 'node:worker_threads';
import type { RowBatch } from './read.ts';
import { processBatch, type BatchResult, type BatchSettings } from './validate.ts';

/**
 * Validation is CPU-bound (JSON parsing, schema checks, hashing), so large datasets spread it over worker
 * threads while the main thread reads, dedupes, splits and writes. Results come back through promises the caller
 * awaits in submission order, so parallelism never reorders rows.
 */
export interface BatchProcessor {
  process(batch: RowBatch): Promise<BatchResult>;
  /** How many batches may be in flight before the caller should wait for the oldest. */
  readonly inFlightLimit: number;
  close(): Promise<void>;
}

export function createBatchProcessor(settings: BatchSettings, workerThreads: number): BatchProcessor {
  return workerThreads > 0 ? new WorkerPool(settings, workerThreads) : new InlineProcessor(settings);
}

class InlineProcessor implements BatchProcessor {
  readonly inFlightLimit = 1;
  constructor(private readonly settings: BatchSettings) {}
  async process(batch: RowBatch): Promise<BatchResult> {
    return processBatch(batch, this.settings);
  }
  async close(): Promise<void> {}
}

type Pending = { resolve: (result: BatchResult) => void; reject: (error: unknown) => void };

/**
 * The workers run the same TypeScript sources through tsx's loader, registered by a tiny bootstrap module:
 * Node 20 does not apply a parent's loader hooks to worker threads.
 */
const tsxApi = import.meta.resolve('tsx/esm/api');
const workerModule = new URL('./worker.ts', import.meta.url).href;
const workerBootstrap = new URL(
  `data:text/javascript,${encodeURIComponent(`import { register } from ${JSON.stringify(tsxApi)}; register(); await import(${JSON.stringify(workerModule)});`)}`,
);

class WorkerPool implements BatchProcessor {
  readonly inFlightLimit: number;
  private readonly workers: Worker[];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;

  constructor(settings: BatchSettings, size: number) {
    this.inFlightLimit = size * 2;
    this.workers = Array.from({ length: size }, () => {
      const worker = new Worker(workerBootstrap, {
        workerData: { settings },
        // Each worker holds about two batches; a small young generation keeps its resident memory small.
        resourceLimits: { maxYoungGenerationSizeMb: 16 },
      });
      worker.on('message', ({ id, result }: { id: number; result: BatchResult }) => {
        this.pending.get(id)?.resolve(result);
        this.pending.delete(id);
      });
      worker.on('error', (error) => this.failAll(error));
      worker.on('exit', (code) => {
        if (code !== 0) this.failAll(new Error(`dataset worker exited with code ${code}`));
      });
      return worker;
    });
  }

  process(batch: RowBatch): Promise<BatchResult> {
    const id = this.nextId++;
    const worker = this.workers[id % this.workers.length]!;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const ranges = batch.layout === 'ranges' ? [batch.starts.buffer, batch.ends.buffer, batch.rowNumbers.buffer] : [];
      worker.postMessage({ id, batch }, [batch.bytes.buffer, ...ranges] as ArrayBuffer[]);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }

  private failAll(error: unknown): void {
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }
}
