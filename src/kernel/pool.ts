/**
 * Worker threads for the block contraction. Each worker initialises its own tfjs backend (the
 * main thread's, via initBackend) and runs the same block code as the main thread on per-point
 * factors shared through SharedArrayBuffers; blocks are handed out through an atomic counter.
 * The model never leaves the main thread: workers only see factors, which keeps them small and
 * makes the result independent of which worker computed which block.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ContractionMode, TermMeta } from './terms.js';

/** Factors of one point set, each array holding all points contiguously (see TermFeatures). */
export interface SharedSet {
  /** Block boundaries in points: block k is [offsets[k], offsets[k+1]). */
  offsets: number[];
  /** Per term: layer inputs a [n, dIn] and δ / gradient rows d [n·V, width] (SharedArrayBuffers). */
  terms: Array<{ a?: SharedArrayBuffer; d?: SharedArrayBuffer }>;
}

/** A contraction job sent to every worker. */
export interface ContractionJob {
  terms: TermMeta[];
  V: number;
  mode: ContractionMode;
  accumulation: 'float32' | 'float64';
  /** Bytes of factors each worker keeps on its backend. */
  capacity: number;
  /** Point sets: [x1] or [x1, x2]. */
  sets: SharedSet[];
  /** Blocks as quadruples (rowSet, rowBlock, colSet, colBlock), Int32 in a SharedArrayBuffer. */
  blocks: SharedArrayBuffer;
  /** Next block to take (Int32[1]); workers Atomics.add it. */
  counter: SharedArrayBuffer;
  /** Write blocks (and mirrors when `mirror`) into this matrix; null = post each block back. */
  out: { buffer: SharedArrayBuffer; cols: number } | null;
  /** Symmetric kernel: also write the transpose of every off-diagonal block. */
  mirror: boolean;
}

export type WorkerRequest = { type: 'init'; backend: string } | ({ type: 'job' } & ContractionJob);

export type WorkerReply =
  | { type: 'ready' }
  | { type: 'block'; index: number; data?: Float32Array | Float64Array }
  | { type: 'done'; numTensors: number }
  | { type: 'error'; message: string };

/** The worker entry point (TypeScript sources run through tsx, compiled builds directly). */
function spawn(): Worker {
  const here = import.meta.url;
  const isTs = /\.[cm]?ts$/.test(here);
  const target = new URL(isTs ? './worker.ts' : './worker.js', here).href;
  if (!isTs) return new Worker(new URL(target));
  // A .ts entry cannot be given to Worker directly (Node resolves its format before any loader
  // hook runs), so a one-line bootstrap registers tsx in the worker and imports the entry.
  let tsx: string;
  try {
    tsx = import.meta.resolve('tsx/esm/api');
  } catch {
    tsx = pathToFileURL(createRequire(here).resolve('tsx/esm/api')).href;
  }
  const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(target)}); });`;
  return new Worker(code, { eval: true });
}

/** A fixed set of worker threads, idle ones never keeping the process alive. */
export class WorkerPool {
  private busy = false;
  private constructor(private readonly workers: Worker[]) {}

  get size(): number {
    return this.workers.length;
  }

  /** Start `size` workers, each initialising `backend`. */
  static async start(size: number, backend: string): Promise<WorkerPool> {
    const workers = Array.from({ length: size }, () => spawn());
    const pool = new WorkerPool(workers);
    try {
      await Promise.all(
        workers.map(
          (w) =>
            new Promise<void>((resolve, reject) => {
              const onMessage = (m: WorkerReply) => {
                if (m.type === 'ready') done(null);
                else if (m.type === 'error') done(new Error(`eNTK worker: ${m.message}`));
              };
              const onError = (e: Error) => done(e);
              const onExit = (code: number) => done(new Error(`eNTK worker exited with code ${code} during start-up`));
              const done = (e: Error | null) => {
                w.off('message', onMessage);
                w.off('error', onError);
                w.off('exit', onExit);
                if (e) reject(e);
                else resolve();
              };
              w.on('message', onMessage);
              w.on('error', onError);
              w.on('exit', onExit);
              w.postMessage({ type: 'init', backend } satisfies WorkerRequest);
            }),
        ),
      );
    } catch (error) {
      await pool.terminate();
      throw error;
    }
    for (const w of workers) w.unref();
    return pool;
  }

  /**
   * Run a job on every worker; `onBlock` sees each finished block (with its data when job.out is
   * null). Resolves when every worker has finished; rejects (and the pool must be terminated) when
   * a worker fails.
   */
  async run(job: ContractionJob, onBlock: (index: number, data?: Float32Array | Float64Array) => void): Promise<void> {
    if (this.busy) throw new Error('eNTK worker pool is busy (concurrent calls of one kernel function)');
    this.busy = true;
    for (const w of this.workers) w.ref();
    try {
      await Promise.all(
        this.workers.map(
          (w) =>
            new Promise<void>((resolve, reject) => {
              const onMessage = (m: WorkerReply) => {
                if (m.type === 'block') {
                  try {
                    onBlock(m.index, m.data);
                  } catch (e) {
                    done(e as Error);
                  }
                } else if (m.type === 'done') done(null);
                else if (m.type === 'error') done(new Error(`eNTK worker: ${m.message}`));
              };
              const onError = (e: Error) => done(e);
              const onExit = (code: number) => done(new Error(`eNTK worker exited with code ${code}`));
              const done = (e: Error | null) => {
                w.off('message', onMessage);
                w.off('error', onError);
                w.off('exit', onExit);
                if (e) reject(e);
                else resolve();
              };
              w.on('message', onMessage);
              w.on('error', onError);
              w.on('exit', onExit);
              w.postMessage({ type: 'job', ...job } satisfies WorkerRequest);
            }),
        ),
      );
    } finally {
      for (const w of this.workers) w.unref();
      this.busy = false;
    }
  }

  async terminate(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
