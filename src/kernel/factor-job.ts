/**
 * Factor blocks shared by the threads of a contraction job (./job.ts). The factors of a block of
 * points (forward and backward signals, ./structured.ts) are computed by whichever thread claims the
 * block from a shared counter: the main thread, and — when the job offers the model (`FactorSource`)
 * — the workers too, each on its own tfjs backend with the model rebuilt from its topology and
 * weights (./factor-worker.ts). On a transformer the factor passes are ≈ 90 % of the kernel's time
 * and tfjs-wasm runs one thread per backend, so this is where the second core pays.
 *
 * A kernel block may start once every factor block it reads has been published. Blocks finish out
 * of order, so each thread marks its block done and advances the shared `ready` count over the
 * prefix of done blocks (sequentially consistent Atomics: whichever thread finishes last advances it).
 *
 * No tfjs here: the worker loads this module before it knows whether it needs tfjs.
 */
import type { TermMeta } from './terms.js';
import type { NtkLogits, NtkOutput, NtkParameters } from './types.js';

/** Factors of one term for a block of points (see ./structured.ts TermFeatures). */
export interface BlockFactors {
  a?: Float32Array;
  d?: Float32Array;
  s?: Float32Array;
  u?: Float32Array;
}

/** A thread's views of one point set's shared factor arrays (all points of the set, contiguous). */
export type SetViews = BlockFactors[];

/** The points of one set, shared with the workers. */
export interface SharedPoints {
  n: number;
  data: SharedArrayBuffer;
  dtype: 'float32' | 'int32';
  /** Shape of one example. */
  exampleShape: number[];
}

/** Test hooks of the main thread that change which rule or kernel computes a factor. */
export interface FactorHooks {
  /** ruleTestHooks.autodiff (./analyze.ts). */
  autodiff: string[];
  /** structuredTestHooks.sparseEmbeddings (./structured.ts). */
  sparseEmbeddings: boolean;
  /** structuredTestHooks.pooledConvolutions (./structured.ts). */
  pooledConvolutions: 'cost' | 'always' | 'never';
  /** structuredTestHooks.pooledPixels (./structured.ts). */
  pooledPixels: 'cost' | 'always' | 'never';
  /** structuredTestHooks.positionTerms (./structured.ts). */
  positionTerms: 'cost' | 'always' | 'never';
  /** The factor GEMM's threshold (./factor-gemm.ts). */
  gemmMinWork: number;
  /** engine testHooks.mainThreadFactors = false: a worker that cannot take factor blocks fails (else nobody would). */
  requireWorkers: boolean;
  /** positionGradTestHooks.enabled (./position-grads.ts), read while computing factors. */
  ownGradientRows: boolean;
  /** structuredTestHooks.replicatedAttention (./structured.ts), read while computing factors. */
  replicatedAttention: boolean;
}

/** What a worker needs to compute factor blocks itself. */
export interface FactorSource {
  /** Identifies the model configuration: workers keep the model built for the last key. */
  key: string;
  /** model.toJSON(null, false) of the model given to empiricalNtkFn, when it was configured. */
  topology: object;
  /**
   * Every weight (float32), concatenated in leaf-layer order (analyze.ts leafWeights: stable when
   * layers are frozen, unlike model.weights, which lists trainable weights first).
   */
  weights: SharedArrayBuffer;
  /** Their shapes and the names of their layers, in the same order. */
  shapes: number[][];
  layers: string[];
  parameters: NtkParameters;
  logits: NtkLogits;
  /** The output the plan was made for. */
  output: NtkOutput;
  hooks: FactorHooks;
  /** Point sets, as in the job's `sets`. */
  points: SharedPoints[];
  /**
   * Workers that may compute factors (each holds a copy of the model — these count against the
   * memory budget — and a factor pass's working memory on its own backend): the first
   * `maxWorkers` to take a slot from `slots` (Int32[1]) do.
   */
  maxWorkers: number;
  slots: SharedArrayBuffer;
}

/** At most this many workers compute factors (memory: each also holds a factor pass's working set). */
export const MAX_FACTOR_WORKERS = 7;

/** Whether this worker is among the job's factor workers (takes a slot). */
export function takeFactorSlot(source: FactorSource): boolean {
  return Atomics.add(new Int32Array(source.slots), 0, 1) < source.maxWorkers;
}

/** The factor blocks of a job: computation order and the claim / done state. */
export interface FactorSchedule {
  /** Number of positions (factor blocks). */
  positions: number;
  /** Int32 pairs (set, block) in computation order, one per position. */
  sequence: SharedArrayBuffer;
  /** Next position to claim (Int32[1]). */
  claim: SharedArrayBuffer;
  /** 1 once a position's factors are written (Int32 per position). */
  done: SharedArrayBuffer;
}

export function makeFactorSchedule(sequence: Array<[number, number]>): FactorSchedule {
  // (A SharedArrayBuffer of 0 bytes is fine; `positions` is the count.)
  const shared = (ints: number) => new SharedArrayBuffer(4 * ints);
  const schedule = {
    positions: sequence.length,
    sequence: shared(2 * sequence.length),
    claim: shared(1),
    done: shared(sequence.length),
  };
  new Int32Array(schedule.sequence).set(sequence.flat());
  return schedule;
}

/** Whether a position is left to claim (without claiming it). */
export function factorBlocksLeft(schedule: FactorSchedule): boolean {
  return Atomics.load(new Int32Array(schedule.claim), 0) < schedule.positions;
}

/** The next unclaimed position, as [position, set, block], or null when none is left. */
export function claimFactorBlock(schedule: FactorSchedule): [number, number, number] | null {
  const p = Atomics.add(new Int32Array(schedule.claim), 0, 1);
  if (p >= schedule.positions) return null;
  const seq = new Int32Array(schedule.sequence);
  return [p, seq[2 * p]!, seq[2 * p + 1]!];
}

/**
 * Mark position p done and advance `ready` (Int32[1]: positions 0 … ready−1 are all done) as far as
 * the done prefix reaches; wakes the threads waiting on it. An aborted job's `ready` (≥ every
 * position count) is left alone.
 */
export function publishFactorBlock(
  schedule: FactorSchedule,
  readyBuffer: SharedArrayBuffer,
  p: number,
): void {
  const done = new Int32Array(schedule.done);
  const ready = new Int32Array(readyBuffer);
  Atomics.store(done, p, 1);
  for (let r = Atomics.load(ready, 0); r < schedule.positions && Atomics.load(done, r) === 1; ) {
    const seen = Atomics.compareExchange(ready, 0, r, r + 1);
    r = seen === r ? r + 1 : seen;
  }
  Atomics.notify(ready, 0);
}

/** Float32 views of shared factor buffers. */
export function viewsOf(
  terms: Array<{
    a?: SharedArrayBuffer;
    d?: SharedArrayBuffer;
    s?: SharedArrayBuffer;
    u?: SharedArrayBuffer;
  }>,
): SetViews {
  return terms.map((t) => ({
    a: t.a ? new Float32Array(t.a) : undefined,
    d: t.d ? new Float32Array(t.d) : undefined,
    s: t.s ? new Float32Array(t.s) : undefined,
    u: t.u ? new Float32Array(t.u) : undefined,
  }));
}

/**
 * Where a block's gram rows and pooled slot vectors and signals (the bulk of the factors) go:
 * straight into the shared arrays at the block's first point `start` (no fresh array, whose first
 * touch is slow).
 */
export function sharedDestination(
  terms: TermMeta[],
  V: number,
  views: SetViews,
  start: number,
): (term: number, key: keyof BlockFactors, length: number) => Float32Array | undefined {
  return (j, key, length) => {
    const t = terms[j]!;
    const direct =
      key === 'd' ? t.kind === 'gram' || t.kind === 'pooled' : key === 'a' && t.kind === 'pooled';
    const target = direct ? views[j]![key] : undefined;
    const at = start * (key === 'a' ? t.dIn : V * t.width);
    return target && at + length <= target.length ? target.subarray(at, at + length) : undefined;
  };
}

/**
 * Copy a block's factors (points from `start`) into the shared arrays; what is already there is
 * skipped. U (gated terms: the head's weights, the same for every block) is written by position 0.
 */
export function storeFactors(
  terms: TermMeta[],
  V: number,
  views: SetViews,
  start: number,
  factors: BlockFactors[],
  position: number,
): void {
  terms.forEach((t, j) => {
    const target = views[j]!;
    const f = factors[j]!;
    if (target.a && f.a!.buffer !== target.a.buffer) target.a.set(f.a!, start * t.dIn);
    if (target.d && f.d!.buffer !== target.d.buffer) target.d.set(f.d!, start * V * t.width);
    if (target.s) target.s.set(f.s!, start * t.width);
    if (target.u && position === 0) target.u.set(f.u!);
  });
}

/** Computes the factors of block k of point set `set` (points [start, end)), writing gram rows into `dest`. */
export type BlockFactorsFn = (
  set: number,
  k: number,
  dest: (term: number, key: keyof BlockFactors, length: number) => Float32Array | undefined,
) => BlockFactors[];

/**
 * The factor loop every thread runs (main thread and workers alike): claim a position, compute its
 * block's factors into the shared arrays `views` (per set), publish it; until none is left.
 */
export function computeClaimedFactors(
  job: FactorJobView,
  views: SetViews[],
  compute: BlockFactorsFn,
  onPublished: (position: number) => void = () => undefined,
): void {
  for (let claim = claimFactorBlock(job.schedule); claim; claim = claimFactorBlock(job.schedule)) {
    const [p, set, k] = claim;
    const start = job.sets[set]!.offsets[k]!;
    const factors = compute(set, k, sharedDestination(job.terms, job.V, views[set]!, start));
    storeFactors(job.terms, job.V, views[set]!, start, factors, p);
    publishFactorBlock(job.schedule, job.ready, p);
    onPublished(p);
  }
}

/** What the factor loop reads of a contraction job (./job.ts). */
export interface FactorJobView {
  terms: TermMeta[];
  V: number;
  sets: Array<{ offsets: number[] }>;
  schedule: FactorSchedule;
  ready: SharedArrayBuffer;
}
