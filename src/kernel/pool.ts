/**
 * Worker threads for the block contraction. Each worker runs the same block code as the main thread
 * on per-point factors shared through SharedArrayBuffers (loading tfjs and initialising its own
 * backend, the main thread's, only for the 'tfjs' contraction); blocks are handed out through an
 * atomic counter.
 * The model never leaves the main thread: workers only see factors, which keeps them small and
 * makes the result independent of which worker computed which block.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ContractionMode, TermMeta } from './terms.js';
import type { ResolvedNtkContraction } from './types.js';

/** Factors of one point set, each array holding all points contiguously (see TermFeatures). */
export interface SharedSet {
  /** Block boundaries in points: block k is [offsets[k], offsets[k+1]). */
  offsets: number[];
  /**
   * Per term (SharedArrayBuffers): layer inputs a [n, dIn], δ / gradient rows d [n·V, width], and for
   * gated terms s [n, width] and U [width, V] (the same U in every set).
   */
  terms: Array<{
    a?: SharedArrayBuffer;
    d?: SharedArrayBuffer;
    s?: SharedArrayBuffer;
    u?: SharedArrayBuffer;
  }>;
}

/** A contraction job sent to every worker. */
export interface ContractionJob {
  terms: TermMeta[];
  V: number;
  mode: ContractionMode;
  accumulation: 'float32' | 'float64';
  /** Where float32 blocks are contracted. */
  contraction: ResolvedNtkContraction;
  /** Bytes of factors each worker keeps on its backend. */
  capacity: number;
  /** Point sets: [x1] or [x1, x2]. */
  sets: SharedSet[];
  /**
   * Blocks as quintuples (rowSet, rowBlock, colSet, colBlock, need), Int32 in a SharedArrayBuffer:
   * a block may start once `ready` ≥ need (the factors it uses have been published).
   */
  blocks: SharedArrayBuffer;
  /** Next block to take (Int32[1]); every contracting thread Atomics.adds it. */
  counter: SharedArrayBuffer;
  /** Number of factor blocks published so far (Int32[1]); ABORTED when the job is cancelled. */
  ready: SharedArrayBuffer;
  /** Write blocks (and mirrors when `mirror`) into this matrix; null = post each block back. */
  out: { buffer: SharedArrayBuffer; cols: number } | null;
  /** Symmetric kernel: also write the transpose of every off-diagonal block. */
  mirror: boolean;
}

export type WorkerRequest = { type: 'init'; backend: string } | ({ type: 'job' } & ContractionJob);

export type WorkerReply =
  | { type: 'ready' }
  | { type: 'block'; index: number; data?: Float32Array | Float64Array }
  | { type: 'done'; numTensors: number; flops: number }
  | { type: 'error'; message: string };

/** URL of tsx's ESM register API (`tsx/esm/api`, import condition), resolved from `from`. */
function tsxApiUrl(from: string): string {
  try {
    return import.meta.resolve('tsx/esm/api');
  } catch {
    // Runtimes without import.meta.resolve (e.g. vitest's module runner): read tsx's exports map.
    const pkgFile = createRequire(from).resolve('tsx/package.json');
    const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as {
      exports: Record<string, { import?: { default?: string } | string }>;
    };
    const entry = pkg.exports['./esm/api']?.import;
    const rel = typeof entry === 'string' ? entry : entry?.default;
    if (!rel) throw new Error('cannot locate tsx/esm/api (is tsx installed?)');
    return pathToFileURL(path.join(path.dirname(pkgFile), rel)).href;
  }
}

/** The worker entry point (TypeScript sources run through tsx, compiled builds directly). */
function spawn(): Worker {
  const here = import.meta.url;
  const isTs = /\.[cm]?ts$/.test(here);
  const target = new URL(isTs ? './worker.ts' : './worker.js', here).href;
  if (!isTs) return new Worker(new URL(target));
  // A .ts entry cannot be given to Worker directly (Node resolves its format before any loader
  // hook runs), so a one-line bootstrap registers tsx in the worker and imports the entry.
  const code0 = tsxApiUrl(here);
  const code = `import(${JSON.stringify(code0)}).then((m) => { m.register(); return import(${JSON.stringify(target)}); });`;
  return new Worker(code, { eval: true });
}

/**
 * Post `request` to worker `w` and wait for the exchange to end: `onReply` sees every reply but
 * 'error' and calls `settle(null)` on success or `settle(error)` on failure; an 'error' reply, a
 * worker error or an exit (reported with `exitContext` appended) fail it. Listeners are removed
 * once it settles.
 */
function exchange(
  w: Worker,
  request: WorkerRequest,
  onReply: (m: WorkerReply, settle: (e: Error | null) => void) => void,
  exitContext: string,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onMessage = (m: WorkerReply) => {
      if (m.type === 'error') settle(new Error(`eNTK worker: ${m.message}`));
      else onReply(m, settle);
    };
    const onError = (e: Error) => settle(e);
    const onExit = (code: number) => settle(new Error(`eNTK worker exited with code ${code}${exitContext}`));
    const settle = (e: Error | null) => {
      w.off('message', onMessage);
      w.off('error', onError);
      w.off('exit', onExit);
      if (e) reject(e);
      else resolve();
    };
    w.on('message', onMessage);
    w.on('error', onError);
    w.on('exit', onExit);
    w.postMessage(request);
  });
}

/** A fixed set of worker threads, idle ones never keeping the process alive. */
export class WorkerPool {
  private queue: Promise<void> = Promise.resolve();
  private idle = true;
  /** tf.memory().numTensors of each worker after its last job (0 unless a tensor leaked). */
  readonly lastNumTensors: number[] = [];
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
        workers.map((w) =>
          exchange(
            w,
            { type: 'init', backend },
            (m, settle) => {
              if (m.type === 'ready') settle(null);
            },
            ' during start-up',
          ),
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
   * null). Resolves when every worker has finished, with the floating-point operations their
   * contractions executed; rejects (and the pool must be terminated) when a worker fails.
   */
  run(
    job: ContractionJob,
    onBlock: (index: number, data?: Float32Array | Float64Array) => void,
  ): Promise<number> {
    // Jobs run one after the other (concurrent kernel calls queue here). An idle pool posts the job
    // synchronously, so the workers start while the caller goes on computing factors.
    const task = this.idle ? this.runNow(job, onBlock) : this.queue.then(() => this.runNow(job, onBlock));
    const settled = task.then(
      () => undefined,
      () => undefined,
    );
    this.queue = settled;
    this.idle = false;
    settled.then(() => {
      if (this.queue === settled) this.idle = true;
    });
    return task;
  }

  private async runNow(
    job: ContractionJob,
    onBlock: (index: number, data?: Float32Array | Float64Array) => void,
  ): Promise<number> {
    let flops = 0;
    for (const w of this.workers) w.ref();
    try {
      await Promise.all(
        this.workers.map((w, k) =>
          exchange(
            w,
            { type: 'job', ...job },
            (m, settle) => {
              if (m.type === 'block') {
                try {
                  onBlock(m.index, m.data);
                } catch (e) {
                  settle(e as Error);
                }
              } else if (m.type === 'done') {
                this.lastNumTensors[k] = m.numTensors;
                flops += m.flops;
                settle(null);
              }
            },
            '',
          ),
        ),
      );
    } finally {
      for (const w of this.workers) w.unref();
    }
    return flops;
  }

  async terminate(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** Process-wide pools by (size, backend): workers hold no model state, so every kernel function shares them. */
const pools = new Map<string, Promise<WorkerPool>>();

/** The shared pool of `size` workers on `backend` (started on first use); `started` if this call started it. */
export async function sharedPool(
  size: number,
  backend: string,
): Promise<{ pool: WorkerPool; started: boolean }> {
  const key = `${size}:${backend}`;
  let entry = pools.get(key);
  const started = !entry;
  if (!entry) {
    entry = WorkerPool.start(size, backend);
    pools.set(key, entry);
    entry.catch(() => pools.delete(key));
  }
  return { pool: await entry, started };
}

/** Terminate a shared pool after a failure (the next call starts a fresh one). */
export async function discardPool(pool: WorkerPool): Promise<void> {
  for (const [key, entry] of pools) {
    if ((await entry.catch(() => null)) === pool) pools.delete(key);
  }
  await pool.terminate();
}

/** Terminate every shared worker thread (they restart on demand). */
export async function terminateNtkWorkers(): Promise<void> {
  const all = [...pools.values()];
  pools.clear();
  await Promise.all(all.map((p) => p.then((pool) => pool.terminate()).catch(() => undefined)));
}

/** Value of `ready` telling the threads to stop. */
export const ABORTED = 0x7fffffff;
