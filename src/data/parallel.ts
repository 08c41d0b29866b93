import { extname } from 'node:path';
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
 * worker threads): one more V8 heap, which a preparation held to 300 MB cannot afford.
 */
let workerScript: URL | undefined;

function bundledWorker(): URL {
  if (workerScript === undefined) {
    const { outputFiles } = buildSync({
      // The worker's entry beside this module: worker.ts under tsx, worker.js in the built package.
      entryPoints: [fileURLToPath(new URL(`./worker${extname(import.meta.url)}`, import.meta.url))],
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

/**
 * Worker deaths a processor recovers from by starting another worker; after that many, it validates inline. A
 * worker dies when its capped heap runs out (a row that makes the schema report tens of thousands of issues can),
 * or on a bug, which then fails its batch on the main thread too, with the bug's own error.
 */
const maxWorkerRestarts = 3;

type Pending = { batch: RowBatch; resolve: (result: BatchResult) => void; reject: (error: unknown) => void };
type PoolWorker = { thread: Worker; pending: Map<number, Pending>; retired: boolean };

export class BatchProcessor {
  /** How many batches may be in flight before the caller should consume the oldest. */
  readonly inFlightLimit: number;
  private readonly workers: PoolWorker[];
  private nextId = 0;
  private restarts = 0;
  private closing = false;

  constructor(
    private readonly settings: BatchSettings,
    workerThreads: number,
  ) {
    this.inFlightLimit = workerThreads === 0 ? 1 : inFlightBatches;
    this.workers = Array.from({ length: workerThreads }, () => this.startWorker());
  }

  process(batch: RowBatch): Promise<BatchResult> {
    const worker = batch.bytes.byteLength > maxWorkerBatchBytes ? undefined : this.workers.find((candidate) => candidate.pending.size < queuedPerWorker);
    if (worker === undefined) return Promise.resolve(this.processInline(batch));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      worker.pending.set(id, { batch, resolve, reject });
      // Copied, not transferred: should the worker die, its batches are validated again here.
      worker.thread.postMessage({ id, batch });
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((worker) => worker.thread.terminate()));
  }

  private processInline(batch: RowBatch): BatchResult {
    mainThreadEncoder ??= new LineEncoder();
    return processBatch(batch, this.settings, mainThreadEncoder);
  }

  private startWorker(): PoolWorker {
    const thread = new Worker(bundledWorker(), {
      // The bundle has no file of its own to find the WebAssembly next to; compiled modules can be shared.
      workerData: { settings: this.settings, lineEncoder: lineEncoderModule() },
      // Batches are small and die young. Left to itself, V8 lets a busy thread's heap grow by tens of megabytes
      // before collecting; capped, the worker's heap stays small, and a 1 GB preparation within 300 MB.
      resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 32 },
    });
    const worker: PoolWorker = { thread, pending: new Map(), retired: false };
    thread.on('message', ({ id, result }: { id: number; result: BatchResult }) => {
      const pending = worker.pending.get(id);
      worker.pending.delete(id);
      pending?.resolve(result);
    });
    thread.on('error', () => this.retire(worker));
    thread.on('exit', (code) => {
      if (code !== 0) this.retire(worker);
    });
    return worker;
  }

  /** Replaces a dead worker (up to `maxWorkerRestarts` times) and validates its batches here. */
  private retire(worker: PoolWorker): void {
    if (worker.retired || this.closing) return;
    worker.retired = true;
    const index = this.workers.indexOf(worker);
    if (this.restarts++ < maxWorkerRestarts) this.workers[index] = this.startWorker();
    else this.workers.splice(index, 1);
    for (const { batch, resolve, reject } of worker.pending.values()) {
      try {
        resolve(this.processInline(batch));
      } catch (error) {
        reject(error);
      }
    }
    worker.pending.clear();
  }
}
