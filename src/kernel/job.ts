/**
 * The contraction job the main thread shares with the worker threads (a message pool of
 * src/util/workers.ts running ./worker.ts). Each worker runs the same block code as the main thread
 * on per-point factors shared through SharedArrayBuffers (loading tfjs and initialising its own
 * backend, the main thread's, only for the 'tfjs' contraction); blocks are handed out through an
 * atomic counter.
 * When the job carries `factors` (./factor-job.ts), the workers also compute factor blocks: each
 * rebuilds the model from its serialised topology and weights and runs the same factor code as the
 * main thread on its own backend. Either way every factor block and every kernel block is
 * computed by the same code, so the result does not depend on which thread did what.
 */
import {
  discardMessagePool,
  type MessagePool,
  sharedMessagePool,
  terminateMessagePools,
} from '../util/index.js';
import { disposeFactorGemm } from './factor-gemm.js';
import type { FactorSchedule, FactorSource } from './factor-job.js';
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
  /**
   * Length of the prefix of factor positions whose blocks are all published (Int32[1]; blocks finish
   * out of order, see ./factor-job.ts publishFactorBlock); ABORTED when the job is cancelled.
   */
  ready: SharedArrayBuffer;
  /** Write blocks (and mirrors when `mirror`) into this matrix; null = post each block back. */
  out: { buffer: SharedArrayBuffer; byteOffset: number; length: number; cols: number } | null;
  /** Symmetric kernel: also write the transpose of every off-diagonal block. */
  mirror: boolean;
  /** The factor blocks: order and claim / done state (`ready` counts the done prefix). */
  schedule: FactorSchedule;
  /** The model, for workers to compute factor blocks too (null: the main thread computes them all). */
  factors: FactorSource | null;
}

export type WorkerRequest = { type: 'init'; backend: string } | ({ type: 'job' } & ContractionJob);

export type WorkerReply =
  | { type: 'ready' }
  | { type: 'block'; index: number; data?: Float32Array | Float64Array }
  | { type: 'features'; position: number }
  | {
      type: 'done';
      numTensors: number;
      flops: number;
      /** Why this worker computed no factor blocks of a job that offered them (null: it could). */
      factorsRefused: string | null;
    }
  | { type: 'error'; message: string };

/** The workers' entry module (TypeScript sources run through tsx, compiled builds directly). */
const ENTRY = new URL(/\.[cm]?ts$/.test(import.meta.url) ? './worker.ts' : './worker.js', import.meta.url)
  .href;

type ContractionPool = MessagePool<{ type: 'job' } & ContractionJob, Exclude<WorkerReply, { type: 'error' }>>;

const lastTensors = new WeakMap<ContractionPool, number[]>();
const lastRefusals = new WeakMap<ContractionPool, string[]>();

/** tf.memory().numTensors of each worker of `pool` after its last job (0 unless a tensor leaked). */
export function lastWorkerTensors(pool: ContractionPool): number[] {
  return lastTensors.get(pool) ?? [];
}

/** Why workers of `pool` computed no factor blocks in its last job (empty when all could). */
export function lastFactorRefusals(pool: ContractionPool): string[] {
  return lastRefusals.get(pool) ?? [];
}

/** The shared pool of `size` contraction workers on `backend` (started on first use); `started` if this call started it. */
export function sharedPool(
  size: number,
  backend: string,
): Promise<{ pool: ContractionPool; started: boolean }> {
  return sharedMessagePool(ENTRY, size, { backend }, 'eNTK');
}

/**
 * Run a job on every worker of `pool`; `onBlock` sees each finished block (with its data when
 * job.out is null). Resolves when every worker has finished, with the floating-point operations
 * their contractions executed; rejects (and the pool must be discarded) when a worker fails.
 */
export async function runContraction(
  pool: ContractionPool,
  job: ContractionJob,
  onBlock: (index: number, data?: Float32Array | Float64Array) => void,
  onFeatures: (position: number) => void = () => undefined,
): Promise<{ flops: number }> {
  let flops = 0;
  const tensors: number[] = [];
  const factorsRefused: string[] = [];
  lastTensors.set(pool, tensors);
  lastRefusals.set(pool, factorsRefused);
  await pool.run({ type: 'job', ...job }, (k, m) => {
    if (m.type === 'block') onBlock(m.index, m.data);
    else if (m.type === 'features') onFeatures(m.position);
    else if (m.type === 'done') {
      tensors[k] = m.numTensors;
      flops += m.flops;
      if (m.factorsRefused) factorsRefused.push(m.factorsRefused);
    }
  });
  return { flops };
}

/** Terminate a shared pool after a failure (the next call starts a fresh one). */
export function discardPool(pool: ContractionPool): Promise<void> {
  return discardMessagePool(pool as unknown as MessagePool<object, { type: string }>);
}

/** Terminate every shared worker thread (they restart on demand). */
export function terminateNtkWorkers(): Promise<void> {
  disposeFactorGemm();
  return terminateMessagePools(ENTRY);
}

/** Value of `ready` telling the threads to stop. */
export const ABORTED = 0x7fffffff;
