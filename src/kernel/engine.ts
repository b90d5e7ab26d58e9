/**
 * Orchestration of a kernel computation: points → per-block factors → kernel blocks → output
 * (an in-memory matrix or a streaming sink), on the main thread or spread over worker threads.
 *
 * The points are cut into blocks of `blockSize` points; the factors of each block are computed by
 * the same code on whichever thread claims the block (the main thread, and with threads the workers
 * too when the model can be rebuilt there: ./factor-job.ts), and each kernel block (a, b) is
 * contracted by the same block code wherever it runs — so the result does not depend on the number
 * of threads, bit for bit.
 * Without x2 the kernel is symmetric: only blocks a ≤ b are computed and mirrored.
 */
import * as tf from '@tensorflow/tfjs';
import { InvalidArgumentError } from '../errors.js';
import { type Progress, progressBar } from '../util/index.js';
import { leafWeights, type ModelAnalysis, type TokenIdInput } from './analyze.js';
import { makeBlockComputer, provideTfContraction, resolveContraction } from './contractions.js';
import { factorGemmMinWork, setFactorGemmThreads } from './factor-gemm.js';
import {
  computeClaimedFactors,
  type FactorHooks,
  type FactorSource,
  MAX_FACTOR_WORKERS,
  makeFactorSchedule,
  type SetViews,
} from './factor-job.js';
import { jacobianFeatures } from './jacobian.js';
import { type ContractionJob, discardPool, runContraction, sharedPool } from './job.js';
import { abortJob, BLOCK_FIELDS, BlockLoop } from './loop.js';
import { positionGradTestHooks } from './position-grads.js';
import {
  type FeatureDestination,
  type StructuredPlan,
  structuredFeatures,
  structuredTestHooks,
  type TermFeatures,
} from './structured.js';
import {
  type BlockInput,
  type ContractionMode,
  computeOriented,
  featureBytes,
  placeBlock,
  type TermMeta,
  transposeBlock,
  writeBlock,
} from './terms.js';
import { TfBlockComputer } from './tf-terms.js';
import type {
  NtkAccumulation,
  NtkBlock,
  NtkBlockSink,
  NtkContraction,
  NtkInput,
  NtkLogits,
  NtkOutput,
  NtkParameters,
  ResolvedNtkContraction,
  ResolvedNtkImplementation,
} from './types.js';

/** Points normalised to row-major data. */
export interface Points {
  n: number;
  data: Float32Array | Int32Array;
  dtype: 'float32' | 'int32';
  /** Shape of one example. */
  exampleShape: number[];
  /** Entries per example. */
  rowSize: number;
}

provideTfContraction(TfBlockComputer);

/**
 * Refuse token ids an Embedding cannot look up (tfjs would fail deep inside GatherV2, or truncate a
 * fraction): every entry of `data` (row-major examples of `exampleShape`) that a layer of `tokenIds`
 * reads must be an integer in [0, inputDim). One pass over those entries; InvalidArgumentError
 * naming `argument`, the point, the entry, the value and the layer.
 */
export function checkTokenIds(
  data: ArrayLike<number>,
  exampleShape: readonly number[],
  tokenIds: readonly TokenIdInput[],
  argument: string,
): void {
  const rowSize = exampleShape.reduce((a, b) => a * b, 1);
  for (const { layer, inputDim, entries } of tokenIds) {
    const [start, end] = entries ?? [0, rowSize];
    for (let row = 0; row < data.length; row += rowSize) {
      for (let e = row + start; e < row + end; e++) {
        const id = data[e]!;
        if (Number.isInteger(id) && id >= 0 && id < inputDim) continue;
        // The entry's index within its example, e.g. [3] or [1, 2].
        const index: number[] = [];
        for (let r = e - row, d = exampleShape.length - 1; d >= 0; d--) {
          index.unshift(r % exampleShape[d]!);
          r = Math.floor(r / exampleShape[d]!);
        }
        throw new InvalidArgumentError(
          argument,
          `${id} at point ${row / rowSize}, entry [${index.join(', ')}]`,
          `integer token ids in [0, ${inputDim}) for layer ${layer}`,
        );
      }
    }
  }
}

/**
 * Validate and normalise an NtkInput against the model's input shape (and the token ids of
 * `tokenIds`: see checkTokenIds).
 */
export function toPoints(
  input: NtkInput,
  argument: string,
  inputShape: number[],
  inputDtype: string,
  tokenIds: readonly TokenIdInput[] = [],
): Points {
  let data: Float32Array | Int32Array;
  let shape: number[];
  if (input instanceof tf.Tensor) {
    shape = input.shape;
    if (input.dtype !== 'float32' && input.dtype !== 'int32') {
      throw new InvalidArgumentError(argument, `tensor of dtype ${input.dtype}`, 'a float32 or int32 tensor');
    }
    data = input.dataSync() as Float32Array | Int32Array;
  } else if (input && typeof input === 'object' && 'data' in input && 'shape' in input) {
    shape = input.shape;
    data = input.data;
    if (!(data instanceof Float32Array) && !(data instanceof Int32Array)) {
      throw new InvalidArgumentError(`${argument}.data`, data, 'a Float32Array or Int32Array');
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new InvalidArgumentError(`${argument}.shape`, shape, 'an array of non-negative integers');
    }
    const size = shape.reduce((a, b) => a * b, 1);
    if (size !== data.length) {
      throw new InvalidArgumentError(
        `${argument}.data`,
        data,
        `${size} values (shape [${shape.join(', ')}])`,
      );
    }
  } else {
    throw new InvalidArgumentError(argument, input, 'a tf.Tensor or { data, shape }');
  }
  const expected = `shape [n, ${inputShape.join(', ')}] with n >= 1`;
  if (
    shape.length !== inputShape.length + 1 ||
    shape[0]! < 1 ||
    shape.slice(1).some((d, i) => d !== inputShape[i])
  ) {
    throw new InvalidArgumentError(argument, `shape [${shape.join(', ')}]`, expected);
  }
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) {
      throw new InvalidArgumentError(argument, `a non-finite value at flat index ${i}`, 'finite values');
    }
  }
  checkTokenIds(data, inputShape, tokenIds, argument);
  const rowSize = inputShape.reduce((a, b) => a * b, 1);
  // The model's input dtype decides (token ids may arrive as float32, features as int32).
  const dtype = inputDtype === 'int32' ? 'int32' : 'float32';
  if (dtype === 'float32' && data instanceof Int32Array) data = Float32Array.from(data);
  if (dtype === 'int32' && data instanceof Float32Array) data = Int32Array.from(data);
  return { n: shape[0]!, data, dtype, exampleShape: inputShape, rowSize };
}

/**
 * For tests only: `mainThreadContracts = false` leaves every kernel block to the workers,
 * `mainThreadFactors = false` every factor block of a structured model (a worker that cannot
 * compute them then fails the call).
 */
export const testHooks = { mainThreadContracts: true, mainThreadFactors: true };

/** The model as empiricalNtkFn received it, for worker threads to rebuild (./factor-job.ts). */
export interface ModelSource {
  model: tf.LayersModel;
  /** Its topology when the kernel function was configured (null: tfjs cannot serialise it). */
  topology: object | null;
  parameters: NtkParameters;
  logits: NtkLogits;
  /** The output the plan was made for (see planStructured). */
  output: NtkOutput;
  /** The test hooks in force when the plan was made. */
  hooks: Pick<
    FactorHooks,
    'autodiff' | 'sparseEmbeddings' | 'pooledConvolutions' | 'pooledPixels' | 'positionTerms'
  >;
  /** Unique per configured kernel function. */
  key: string;
}

/** Everything a computation needs (fixed when the kernel function is configured). */
export interface EngineState {
  /** null: factors are computed on the main thread only. */
  source: ModelSource | null;
  model: tf.LayersModel;
  analysis: ModelAnalysis;
  implementation: ResolvedNtkImplementation;
  plan: StructuredPlan | null;
  terms: TermMeta[];
  V: number;
  accumulation: NtkAccumulation;
  contraction: NtkContraction;
  blockSize: number | undefined;
  memoryBudget: number;
  threads: number;
  progress: boolean;
}

/** Points [start, end) of row-major examples `data` as a tensor [end − start, ...exampleShape]. */
export function blockTensor(
  data: Float32Array | Int32Array,
  exampleShape: number[],
  dtype: 'float32' | 'int32',
  start: number,
  end: number,
): tf.Tensor {
  const rowSize = exampleShape.reduce((a, b) => a * b, 1);
  return tf.tensor(data.subarray(start * rowSize, end * rowSize), [end - start, ...exampleShape], dtype);
}

/** Factors of points [start, end) of `points`. */
export function featuresFor(
  state: EngineState,
  points: Points,
  start: number,
  end: number,
  dest?: FeatureDestination,
  gemmThreads = state.threads,
): TermFeatures[] {
  const x = blockTensor(points.data, points.exampleShape, points.dtype, start, end);
  try {
    // Threaded factor products use at most the threads the caller allowed.
    setFactorGemmThreads(gemmThreads);
    return state.plan
      ? structuredFeatures(state.plan, x, dest)
      : jacobianFeatures(state.model, state.analysis.variables, x, state.V);
  } finally {
    x.dispose();
  }
}

/**
 * Points per block: about 1 M kernel entries per full block (100 points at V = 10: big enough
 * for efficient matMuls, small enough that the symmetric case skips nearly half the work), and
 * row + column factors (plus their backend copies) within the memory budget.
 */
export function resolveBlockSize(state: EngineState, mode: ContractionMode, points?: number): number {
  if (state.blockSize !== undefined) return state.blockSize;
  const target = mode === 'full' ? Math.floor(1000 / state.V) : 1000;
  const perPoint = featureBytes(state.terms, 1, state.V);
  const byMemory = Math.floor(state.memoryBudget / (4 * perPoint));
  // With threads, at least 2 blocks of points per thread (else one block, one thread, and the
  // factors of all points before any contraction), but not below 32 points.
  const byThreads =
    points !== undefined && state.threads > 1
      ? Math.max(32, Math.ceil(points / (2 * state.threads)))
      : Number.POSITIVE_INFINITY;
  return Math.max(1, Math.min(target, byMemory, byThreads));
}

export function partition(n: number, size: number): number[] {
  const offsets: number[] = [];
  for (let s = 0; s < n; s += size) offsets.push(s);
  offsets.push(n);
  return offsets;
}

/** LRU cache of per-block factors (single-thread path). */
class FeatureCache {
  private map = new Map<string, { features: TermFeatures[]; bytes: number }>();
  private bytes = 0;
  constructor(
    private readonly capacity: number,
    private readonly compute: (set: number, block: number) => TermFeatures[],
  ) {}

  get(set: number, block: number): TermFeatures[] {
    const key = `${set}:${block}`;
    const hit = this.map.get(key);
    if (hit) {
      this.map.delete(key);
      this.map.set(key, hit);
      return hit.features;
    }
    const features = this.compute(set, block);
    const bytes = features.reduce(
      (s, f) => s + (f.a?.byteLength ?? 0) + (f.d?.byteLength ?? 0) + (f.s?.byteLength ?? 0),
      0,
    );
    for (const [k, v] of this.map) {
      if (this.bytes + bytes <= this.capacity) break;
      this.bytes -= v.bytes;
      this.map.delete(k);
    }
    this.map.set(key, { features, bytes });
    this.bytes += bytes;
    return features;
  }
}

function allocate(
  length: number,
  accumulation: NtkAccumulation,
  shared: boolean,
): Float32Array | Float64Array {
  const bytesPer = accumulation === 'float64' ? 8 : 4;
  // Node's largest ArrayBuffer / SharedArrayBuffer is 4 GiB (buffer.constants.MAX_LENGTH).
  if (!Number.isSafeInteger(length) || length * bytesPer > 2 ** 32) {
    throw new InvalidArgumentError(
      'points',
      `${length} kernel entries`,
      'a kernel small enough to hold in memory (stream larger kernels with ntk.stream(...))',
    );
  }
  if (!shared) return accumulation === 'float64' ? new Float64Array(length) : new Float32Array(length);
  const buffer = new SharedArrayBuffer(length * bytesPer);
  return accumulation === 'float64' ? new Float64Array(buffer) : new Float32Array(buffer);
}

export interface MatrixRequest {
  x1: Points;
  x2: Points | null;
  mode: ContractionMode;
  /** null: assemble in memory. */
  sink: NtkBlockSink | null;
  order: 'blocks' | 'rows';
  /** The caller's array to write the kernel into (see NtkCallOptions.out; checked by the caller). */
  out?: Float32Array | Float64Array;
}

export interface MatrixOutcome {
  data: Float32Array | Float64Array | null;
  blockSize: number;
  threads: number;
  /** Blocks contracted by worker threads. */
  workerBlocks: number;
  /** Factor blocks computed by worker threads. */
  workerFactorBlocks: number;
  contraction: ResolvedNtkContraction;
  /** Floating-point operations of the contraction products, all threads. */
  flops: number;
  timings: Record<string, number>;
}

/** The block schedule of a matrix computation: blocks of points and the kernel blocks to contract. */
interface MatrixSchedule {
  V: number;
  /** Kernel entries per point: V (full) or 1 (trace). */
  stride: number;
  symmetric: boolean;
  blockSize: number;
  off1: number[];
  off2: number[];
  nb1: number;
  nb2: number;
  n2: number;
  /** Only blocks a ≤ b are contracted (and mirrored). */
  triangle: boolean;
  /** Kernel blocks [row set, row block, column set, column block], in computation order. */
  blocks: Array<[number, number, number, number]>;
  outCols: number;
  pointSets: Points[];
  offsets: number[][];
}

function scheduleMatrix(state: EngineState, request: MatrixRequest): MatrixSchedule {
  const { x1, x2, mode, sink, order } = request;
  const V = state.V;
  const symmetric = x2 == null;
  const blockSize = resolveBlockSize(state, mode, Math.max(x1.n, x2?.n ?? 0));
  const off1 = partition(x1.n, blockSize);
  const off2 = symmetric ? off1 : partition(x2.n, blockSize);
  const nb1 = off1.length - 1;
  const nb2 = off2.length - 1;
  const n2 = symmetric ? x1.n : x2.n;
  const triangle = symmetric && !(sink && order === 'rows');
  const colSet = symmetric ? 0 : 1;
  const blocks: Array<[number, number, number, number]> = [];
  for (let a = 0; a < nb1; a++) for (let b = triangle ? a : 0; b < nb2; b++) blocks.push([0, a, colSet, b]);
  const stride = mode === 'full' ? V : 1;
  return {
    V,
    stride,
    symmetric,
    blockSize,
    off1,
    off2,
    nb1,
    nb2,
    n2,
    triangle,
    blocks,
    outCols: n2 * stride,
    pointSets: symmetric ? [x1] : [x1, x2],
    offsets: symmetric ? [off1] : [off1, off2],
  };
}

/**
 * Delivery of finished blocks: into the in-memory matrix `out`, or to the sink — as blocks (the
 * mirrored transpose too), or assembled into row panels delivered in row order. Called in
 * computation order; sinks are awaited one at a time.
 */
function blockDelivery(
  plan: MatrixSchedule,
  request: MatrixRequest,
  out: Float32Array | Float64Array | null,
  accumulation: NtkAccumulation,
): (a: number, b: number, data: Float32Array | Float64Array) => Promise<void> {
  const { off1, off2, stride, outCols, triangle, nb2, n2 } = plan;
  const { sink, order } = request;
  const panels = new Map<number, { data: Float32Array | Float64Array; remaining: number }>();
  let nextPanel = 0;
  const makeBlock = (a: number, b: number, data: Float32Array | Float64Array, swap: boolean): NtkBlock => {
    const [ro, co] = swap ? [off2, off1] : [off1, off2];
    const [ra, cb] = swap ? [b, a] : [a, b];
    return {
      rowStart: ro[ra]!,
      rowEnd: ro[ra + 1]!,
      colStart: co[cb]!,
      colEnd: co[cb + 1]!,
      shape: [(ro[ra + 1]! - ro[ra]!) * stride, (co[cb + 1]! - co[cb]!) * stride],
      data,
    };
  };
  return async (a, b, data) => {
    if (out) {
      writeBlock(out, outCols, stride, off1, off2, a, b, data, triangle);
      return;
    }
    if (order === 'blocks') {
      await sink!(makeBlock(a, b, data, false));
      if (triangle && a !== b) {
        const rows = (off1[a + 1]! - off1[a]!) * stride;
        const cols = (off2[b + 1]! - off2[b]!) * stride;
        await sink!(makeBlock(a, b, transposeBlock(data, rows, cols), true));
      }
      return;
    }
    const rows = (off1[a + 1]! - off1[a]!) * stride;
    let panel = panels.get(a);
    if (!panel) {
      panel = { data: allocate(rows * outCols, accumulation, false), remaining: nb2 };
      panels.set(a, panel);
    }
    placeBlock(panel.data, outCols, 0, off2[b]! * stride, data, rows, (off2[b + 1]! - off2[b]!) * stride);
    panel.remaining--;
    for (let p = panels.get(nextPanel); p && p.remaining === 0; p = panels.get(nextPanel)) {
      panels.delete(nextPanel);
      await sink!({
        rowStart: off1[nextPanel]!,
        rowEnd: off1[nextPanel + 1]!,
        colStart: 0,
        colEnd: n2,
        shape: [(off1[nextPanel + 1]! - off1[nextPanel]!) * stride, outCols],
        data: p.data,
      });
      nextPanel++;
    }
  };
}

/** What the contraction phase needs, whichever thread layout runs it. */
interface ContractionContext {
  state: EngineState;
  request: MatrixRequest;
  plan: MatrixSchedule;
  contraction: ResolvedNtkContraction;
  threads: number;
  out: Float32Array | Float64Array | null;
  deliver: (a: number, b: number, data: Float32Array | Float64Array) => Promise<void>;
  computeFeatures: (
    set: number,
    block: number,
    dest?: FeatureDestination,
    gemmThreads?: number,
  ) => TermFeatures[];
  progress: Progress;
  timings: Record<string, number>;
}

/** Blocks contracted / factor blocks computed by workers and floating-point operations, all threads. */
interface ContractionCounts {
  workerBlocks: number;
  workerFactorBlocks: number;
  flops: number;
}

/** One thread: factors through an LRU cache, blocks in schedule order. */
async function contractOnMainThread(ctx: ContractionContext): Promise<ContractionCounts> {
  const { state, plan, contraction, out, deliver, computeFeatures, progress, timings } = ctx;
  const { off1, off2, stride, outCols, triangle } = plan;
  const cache = new FeatureCache(state.memoryBudget / 2, computeFeatures);
  const computer = makeBlockComputer(
    contraction,
    state.terms,
    state.V,
    ctx.request.mode,
    state.memoryBudget / 2,
  );
  try {
    for (const [rs, a, cs, b] of plan.blocks) {
      const row: BlockInput = {
        key: `${rs}:${a}`,
        points: off1[a + 1]! - off1[a]!,
        terms: cache.get(rs, a),
      };
      const col: BlockInput = {
        key: `${cs}:${b}`,
        points: off2[b + 1]! - off2[b]!,
        terms: cache.get(cs, b),
      };
      const s = performance.now();
      const block = computeOriented(
        computer,
        row,
        col,
        rs === cs && a > b,
        out != null && triangle && a !== b,
      );
      try {
        if (out) writeBlock(out, outCols, stride, off1, off2, a, b, block.data, triangle, block.transposed);
        timings.contraction! += performance.now() - s;
        progress.tick();
        if (!out) await deliver(a, b, block.owned ? block.data : block.data.slice());
      } finally {
        block.done();
      }
    }
  } finally {
    computer.release();
  }
  return { workerBlocks: 0, workerFactorBlocks: 0, flops: computer.flops };
}

/** Atomics.waitAsync (Node ≥ 16; typed only in lib ES2024). */
const waitAsync = (
  Atomics as unknown as {
    waitAsync(array: Int32Array, index: number, value: number): { value: Promise<string> | string };
  }
).waitAsync;

/**
 * The model and points for the workers to compute factor blocks too, or null when they cannot:
 * no structured plan (the Jacobian path differentiates model.apply on the main thread), a model
 * tfjs cannot serialise or with weights other than float32, or weights larger than the memory budget.
 */
function factorSourceFor(state: EngineState, pointSets: Points[]): FactorSource | null {
  const source = state.source;
  if (!state.plan || !source?.topology) return null;
  const weights = leafWeights(source.model);
  if (weights.some(({ weight }) => weight.dtype !== 'float32')) return null;
  const shapes = weights.map(({ weight }) => [...(weight.shape as number[])]);
  const weightBytes = 4 * shapes.reduce((s, shape) => s + shape.reduce((a, b) => a * b, 1), 0);
  // Each factor worker holds a copy of the model: as many as the memory budget allows.
  const maxWorkers = Math.min(MAX_FACTOR_WORKERS, Math.floor(state.memoryBudget / Math.max(1, weightBytes)));
  if (maxWorkers < 1) return null;
  const all = new Float32Array(new SharedArrayBuffer(weightBytes));
  let offset = 0;
  for (const { weight } of weights) {
    const values = weight.read().dataSync() as Float32Array;
    all.set(values, offset);
    offset += values.length;
  }
  return {
    key: source.key,
    topology: source.topology,
    weights: all.buffer as SharedArrayBuffer,
    shapes,
    layers: weights.map((w) => w.layer),
    parameters: source.parameters,
    logits: source.logits,
    output: source.output,
    hooks: {
      ...source.hooks,
      gemmMinWork: factorGemmMinWork(),
      requireWorkers: !testHooks.mainThreadFactors,
      ownGradientRows: positionGradTestHooks.enabled,
      replicatedAttention: structuredTestHooks.replicatedAttention,
    },
    maxWorkers,
    slots: new SharedArrayBuffer(4),
    points: pointSets.map((points) => {
      const data = new SharedArrayBuffer(points.data.byteLength);
      new Uint8Array(data).set(
        new Uint8Array(points.data.buffer, points.data.byteOffset, points.data.byteLength),
      );
      return { n: points.n, data, dtype: points.dtype, exampleShape: points.exampleShape };
    }),
  };
}

/** The shared factor arrays of a kernel function's last call, kept for the next one. */
const keptFactorArrays = new WeakMap<EngineState, { key: string; arrays: SetViews[]; busy: boolean }>();

/**
 * Shared factor arrays for all points of each set (every block writes its whole slice): those of
 * the kernel function's previous call when the sizes match and no other call is using them, else
 * fresh ones, kept for the next call. Fresh memory is slow on first touch (≈ 3–8 ms per MB on this
 * VM: longer than computing a transformer's 250 MB of factors); `release` once no worker can
 * write into them any more.
 */
function holdFactorArrays(state: EngineState, pointSets: Points[]): { arrays: SetViews[]; release(): void } {
  const key = pointSets.map((p) => p.n).join(',');
  const kept = keptFactorArrays.get(state);
  if (kept && !kept.busy && kept.key === key) {
    kept.busy = true;
    return {
      arrays: kept.arrays,
      release: () => {
        kept.busy = false;
      },
    };
  }
  const V = state.V;
  const shared = (floats: number) => new Float32Array(new SharedArrayBuffer(floats * 4));
  const gates = state.terms.map((t) => (t.gated ? shared(t.width * V) : undefined));
  const arrays = pointSets.map((points) =>
    state.terms.map((t, j) => ({
      a: t.dIn > 0 ? shared(points.n * t.dIn) : undefined,
      d: t.width > 0 ? shared(points.n * V * t.width) : undefined,
      s: t.gated ? shared(points.n * t.width) : undefined,
      u: gates[j],
    })),
  );
  const entry = { key, arrays, busy: true };
  if (!kept?.busy) keptFactorArrays.set(state, entry);
  return {
    arrays,
    release: () => {
      entry.busy = false;
    },
  };
}

/** Drop the factor arrays kept for a kernel function's next call. */
export function releaseFactorArrays(state: EngineState): void {
  keptFactorArrays.delete(state);
}

/**
 * Main thread + (threads − 1) workers, sharing factors and the kernel in shared memory. Every thread
 * first claims factor blocks (the workers only when the model can be rebuilt there, see
 * factorSourceFor) and publishes each one, then contracts kernel blocks whose factors are ready.
 * Sets timings.contraction to the wall time of the whole phase.
 */
async function contractInParallel(ctx: ContractionContext): Promise<ContractionCounts> {
  const { state, request, plan, contraction, threads, out, deliver, computeFeatures, progress, timings } =
    ctx;
  const { V } = state;
  const { symmetric, nb1, nb2, pointSets, offsets, outCols, triangle } = plan;
  const { mode, sink, order } = request;
  const start = performance.now();
  let workerBlocks = 0;
  let workerFactorBlocks = 0;
  // Factor computation order, and each kernel block's need (1 + last factor position it uses).
  const sequence: Array<[number, number]> = [];
  if (symmetric) for (let k = 0; k < nb1; k++) sequence.push([0, k]);
  else if (order === 'rows') {
    for (let k = 0; k < nb2; k++) sequence.push([1, k]);
    for (let k = 0; k < nb1; k++) sequence.push([0, k]);
  } else {
    for (let k = 0; k < Math.max(nb1, nb2); k++) {
      if (k < nb1) sequence.push([0, k]);
      if (k < nb2) sequence.push([1, k]);
    }
  }
  const position = new Map(sequence.map(([set, k], p) => [`${set}:${k}`, p]));
  const need = (q: [number, number, number, number]) =>
    1 + Math.max(position.get(`${q[0]}:${q[1]}`)!, position.get(`${q[2]}:${q[3]}`)!);
  // Row panels are assembled in row order: keep the row-major schedule; otherwise start with the
  // blocks whose factors come first (stable sort).
  const ordered =
    order === 'rows' && sink ? [...plan.blocks] : [...plan.blocks].sort((p, q) => need(p) - need(q));
  const blocks = new Int32Array(new SharedArrayBuffer(ordered.length * BLOCK_FIELDS * 4));
  ordered.forEach((q, i) => {
    blocks.set([...q, need(q)], BLOCK_FIELDS * i);
  });
  const s0 = performance.now();
  const { pool, started } = await sharedPool(threads - 1, tf.getBackend());
  if (started) timings.workers = performance.now() - s0;
  const held = holdFactorArrays(state, pointSets);
  const arrays = held.arrays;
  // Every path out of the try has waited for the workers (or terminated them): nothing writes into
  // the arrays any more when they are released.
  try {
    const factors = sequence.length > 1 ? factorSourceFor(state, pointSets) : null;
    const job: ContractionJob = {
      terms: state.terms,
      V,
      mode,
      accumulation: state.accumulation,
      contraction,
      capacity: Math.floor(state.memoryBudget / 2 / threads),
      sets: pointSets.map((_, set) => ({
        offsets: offsets[set]!,
        terms: arrays[set]!.map((x) => ({
          a: x.a?.buffer as SharedArrayBuffer | undefined,
          d: x.d?.buffer as SharedArrayBuffer | undefined,
          s: x.s?.buffer as SharedArrayBuffer | undefined,
          u: x.u?.buffer as SharedArrayBuffer | undefined,
        })),
      })),
      blocks: blocks.buffer as SharedArrayBuffer,
      counter: new SharedArrayBuffer(4),
      ready: new SharedArrayBuffer(4),
      out: out
        ? {
            buffer: out.buffer as SharedArrayBuffer,
            byteOffset: out.byteOffset,
            length: out.length,
            cols: outCols,
          }
        : null,
      mirror: triangle,
      schedule: makeFactorSchedule(sequence),
      factors,
    };

    // Finished blocks are delivered one at a time, in order; a sink that throws stops the job.
    let chain: Promise<void> = Promise.resolve();
    let sinkError: { error: unknown } | null = null;
    const finished = (
      index: number,
      data: Float32Array | Float64Array | null | undefined,
      worker: boolean,
    ) => {
      progress.tick();
      if (worker) workerBlocks++;
      if (data) {
        const [, a, , b] = ordered[index]!;
        chain = chain.then(async () => {
          if (sinkError) return;
          try {
            await deliver(a, b, data);
          } catch (error) {
            sinkError = { error };
            abortJob(job);
          }
        });
      }
    };
    const loop = new BlockLoop(job);
    const workers = runContraction(
      pool,
      job,
      (index, data) => finished(index, data, true),
      () => {
        workerFactorBlocks++;
        progress.tick();
      },
    );
    let workersSettled = false;
    const workersFailed = workers.then(
      () => false,
      () => true,
    );
    workersFailed.then(() => {
      workersSettled = true;
    });
    const ready = new Int32Array(job.ready);
    // With workers computing factors too, each factor GEMM runs on one thread.
    const gemmThreads = factors ? 1 : state.threads;
    try {
      if (testHooks.mainThreadFactors || !factors) {
        computeClaimedFactors(job, arrays, (set, k, dest) => computeFeatures(set, k, dest, gemmThreads));
      }
      while (testHooks.mainThreadContracts) {
        const done = loop.tryNext();
        if (done === null) break;
        if (typeof done === 'number') {
          // A worker's factor block is not published yet: wait for it without blocking the event
          // loop (a failing worker's message must get through).
          if (workersSettled) {
            await workers; // its error, if it failed
            throw new Error('eNTK: the workers stopped before publishing every factor block');
          }
          await Promise.race([waitAsync(ready, 0, done).value, workers]);
          continue;
        }
        finished(done.index, done.data, false);
        // Let worker messages (finished blocks, progress) in between blocks.
        await new Promise((resolve) => setImmediate(resolve));
      }
    } catch (error) {
      abortJob(job);
      // A pool whose worker failed may still be finishing messages of this job: start afresh.
      if (await workersFailed) await discardPool(pool);
      throw error;
    } finally {
      loop.release();
    }
    let flops: number;
    try {
      flops = (await workers).flops + loop.flops;
    } catch (error) {
      await discardPool(pool);
      throw error;
    }
    await chain;
    if (sinkError) throw (sinkError as { error: unknown }).error;
    timings.contraction = performance.now() - start;
    return { workerBlocks, workerFactorBlocks, flops };
  } finally {
    held.release();
  }
}

/** Compute the full or trace kernel of x1 × (x2 ?? x1). */
export async function computeMatrix(state: EngineState, request: MatrixRequest): Promise<MatrixOutcome> {
  const { x1, x2, mode, sink } = request;
  const t0 = performance.now();
  const contraction = resolveContraction(state.accumulation, state.contraction, tf.getBackend());
  const plan = scheduleMatrix(state, request);
  // Memory: threads share the factors of all points, so they run only when those fit the budget.
  const totalFeatureBytes = featureBytes(state.terms, x1.n + (x2 ? x2.n : 0), state.V);
  const threads =
    state.threads > 1 && plan.blocks.length > 1 && totalFeatureBytes <= state.memoryBudget
      ? state.threads
      : 1;
  const out = sink
    ? null
    : // Shared whenever the function has threads (also when this call runs on one): a result's data
      // is then always accepted back as NtkCallOptions.out.
      (request.out ?? allocate(x1.n * plan.stride * plan.outCols, state.accumulation, state.threads > 1));
  const featureBlocks = plan.offsets.reduce((s, o) => s + o.length - 1, 0);
  const progress: Progress = state.progress
    ? progressBar(`eNTK ${mode} (${state.implementation})`, featureBlocks + plan.blocks.length)
    : { tick: () => undefined, done: () => undefined };
  const timings: Record<string, number> = { features: 0, contraction: 0 };
  const computeFeatures = (
    set: number,
    block: number,
    dest?: FeatureDestination,
    gemmThreads?: number,
  ): TermFeatures[] => {
    const s = performance.now();
    const o = plan.offsets[set]!;
    const f = featuresFor(state, plan.pointSets[set]!, o[block]!, o[block + 1]!, dest, gemmThreads);
    timings.features! += performance.now() - s;
    progress.tick();
    return f;
  };
  const ctx: ContractionContext = {
    state,
    request,
    plan,
    contraction,
    threads,
    out,
    deliver: blockDelivery(plan, request, out, state.accumulation),
    computeFeatures,
    progress,
    timings,
  };
  let counts: ContractionCounts;
  try {
    counts = threads > 1 ? await contractInParallel(ctx) : await contractOnMainThread(ctx);
  } finally {
    progress.done();
  }
  timings.total = performance.now() - t0;
  return {
    data: out,
    blockSize: plan.blockSize,
    threads,
    workerBlocks: counts.workerBlocks,
    workerFactorBlocks: counts.workerFactorBlocks,
    contraction,
    flops: counts.flops,
    timings,
  };
}
