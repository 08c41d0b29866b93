import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { buildSync } from 'esbuild';
import { LineEncoder, lineEncoderModule } from './line-encoder.ts';
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
const inFlightBatches = 6;
/**
 * A worker's heap is capped (below), so a batch above this size (a row of megabytes) is validated on the main
 * thread, whose heap is not: a capped heap that runs out ends the thread.
 */
const maxWorkerBatchBytes = 1 << 20;

/**
 * The workers run the same sources, bundled once per process into one JavaScript module: a worker that loaded the
 * TypeScript through tsx would need a loader thread of its own (Node 20 does not apply a parent's loader hooks to
 * worker threads), about 35 MB of memory, more than a tenth of the 300 MB a large preparation may use.
 */
let workerScript: URL | undefined;

function bundledWorker(): URL {
  if (workerScript === undefined) {
    const { outputFiles } = buildSync({
      entryPoints: [fileURLToPath(new URL('./worker.ts', import.meta.url))],
      bundle: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      write: false,
      logLevel: 'silent',
    });
    workerScript = new URL(`data:text/javascript,${encodeURIComponent(outputFiles[0]!.text)}`);
  }
  return workerScript;
}

/** The main thread's encoder, shared by every preparation in the process: a batch is encoded in one synchronous call. */
let mainThreadEncoder: LineEncoder | undefined;

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
    const script = workerThreads === 0 ? undefined : bundledWorker();
    this.workers = Array.from({ length: workerThreads }, () => {
      const thread = new Worker(script!, {
        // The bundle has no file of its own to find the WebAssembly next to; compiled modules can be shared.
        workerData: { settings, lineEncoder: lineEncoderModule() },
        // Batches are small and die young. Left to itself, V8 lets a busy thread's heap grow by tens of megabytes
        // before collecting; capped, the worker's heap stays small, and a 1 GB preparation within 300 MB.
        resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 32 },
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
    const worker = batch.bytes.byteLength > maxWorkerBatchBytes ? undefined : this.workers.find((candidate) => candidate.queued < queuedPerWorker);
    if (worker === undefined) return Promise.resolve(processBatch(batch, this.settings, (mainThreadEncoder ??= new LineEncoder())));
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
