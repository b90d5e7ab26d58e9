/**
 * Kernel blocks for a list of point pairs (and the diagonal K(x_n, x_n), the pairs (n, n)):
 * [P, V, V] with entry [p, i, j] = K_ij(x_{a_p}, x'_{b_p}). Batched V×V contractions of the same
 * factors the matrix path uses; O(P·V²·width) work, main thread.
 */
import * as tf from '@tensorflow/tfjs';
import { InvalidArgumentError } from '../errors.js';
import { type Progress, progressBar } from '../util/index.js';
import { type EngineState, featuresFor, type Points, partition, resolveBlockSize } from './engine.js';
import type { TermFeatures } from './structured.js';
import { dot, featureBytes, isPairTerm, pairTermValue, type TermMeta } from './terms.js';

/** Pairs contracted per batch. */
const CHUNK = 1024;

/**
 * Where pair blocks are contracted: batched tfjs products in float32 (pooled and token terms summed
 * in JS), plain JS in float64.
 */
/** Pair blocks [P, V, V], where they were contracted, and timings. */
interface PairBlocks {
  data: Float32Array | Float64Array;
  contraction: 'tfjs' | 'js';
  timings: Record<string, number>;
}

const pairsContraction = (accumulation: 'float32' | 'float64'): 'tfjs' | 'js' =>
  accumulation === 'float64' ? 'js' : 'tfjs';

function gatherRows(
  src: Float32Array,
  width: number,
  idx: Int32Array,
  from: number,
  to: number,
): Float32Array {
  const out = new Float32Array((to - from) * width);
  for (let p = from; p < to; p++)
    out.set(src.subarray(idx[p]! * width, (idx[p]! + 1) * width), (p - from) * width);
  return out;
}

/**
 * Blocks K(row point idxP[p], column point idxQ[p]) for p < P, from factors `fp` (rows) and `fq`
 * (columns) of two point sets (indices refer to those sets).
 */
export function contractPairs(
  terms: TermMeta[],
  V: number,
  accumulation: 'float32' | 'float64',
  fp: TermFeatures[],
  fq: TermFeatures[],
  idxP: Int32Array,
  idxQ: Int32Array,
): Float32Array | Float64Array {
  const P = idxP.length;
  const out = accumulation === 'float64' ? new Float64Array(P * V * V) : new Float32Array(P * V * V);
  for (let from = 0; from < P; from += CHUNK) {
    const to = Math.min(P, from + CHUNK);
    if (accumulation === 'float64') pairs64(terms, V, fp, fq, idxP, idxQ, from, to, out as Float64Array);
    else out.set(pairsTf(terms, V, fp, fq, idxP, idxQ, from, to), from * V * V);
    addPairTerms(terms, V, fp, fq, idxP, idxQ, from, to, out);
  }
  return out;
}

/** The float32 blocks [from, to) of every term but the pair terms, by tfjs ops. */
function pairsTf(
  terms: TermMeta[],
  V: number,
  fp: TermFeatures[],
  fq: TermFeatures[],
  idxP: Int32Array,
  idxQ: Int32Array,
  from: number,
  to: number,
): Float32Array {
  const c = to - from;
  const result = tf.tidy(() => {
    let acc: tf.Tensor = tf.zeros([c, V, V]);
    terms.forEach((t, k) => {
      if (isPairTerm(t)) return; // added by addPairTerms
      let g: tf.Tensor | null = null;
      if (t.kind !== 'gram') {
        if (t.sw2 === 0) g = tf.fill([c, 1, 1], t.sb2);
        else {
          const ap = tf.tensor2d(gatherRows(fp[k]!.a!, t.dIn, idxP, from, to), [c, t.dIn]);
          const aq = tf.tensor2d(gatherRows(fq[k]!.a!, t.dIn, idxQ, from, to), [c, t.dIn]);
          g = tf.add(tf.mul(tf.sum(tf.mul(ap, aq), 1), t.sw2), t.sb2).reshape([c, 1, 1]);
        }
      }
      if (t.kind === 'identity') {
        acc = tf.add(acc, tf.mul(g!, tf.eye(V).reshape([1, V, V])));
        return;
      }
      const w = t.width;
      const dp = tf.tensor3d(gatherRows(fp[k]!.d!, V * w, idxP, from, to), [c, V, w]);
      const dq = tf.tensor3d(gatherRows(fq[k]!.d!, V * w, idxQ, from, to), [c, V, w]);
      let d: tf.Tensor = tf.matMul(dp, tf.transpose(dq, [0, 2, 1]));
      if (g) d = tf.mul(d, g);
      acc = tf.add(acc, d);
    });
    return acc;
  });
  const data = result.dataSync() as Float32Array;
  result.dispose();
  return data;
}

/** The pair terms (tokens, pooled: ./terms.ts) of pairs [from, to), added to out. */
function addPairTerms(
  terms: TermMeta[],
  V: number,
  fp: TermFeatures[],
  fq: TermFeatures[],
  idxP: Int32Array,
  idxQ: Int32Array,
  from: number,
  to: number,
  out: Float32Array | Float64Array,
): void {
  const acc = new Float64Array(V * V);
  terms.forEach((t, k) => {
    if (!isPairTerm(t)) return;
    for (let p = from; p < to; p++) {
      acc.fill(0);
      pairTermValue(t, V, fp[k]!, idxP[p]!, fq[k]!, idxQ[p]!, true, acc);
      if (fp[k] === fq[k] && idxP[p] === idxQ[p]) {
        // A point with itself: K_ji from K_ij (pair terms need not sum both alike; see addPairTerm).
        for (let i = 0; i < V; i++) for (let j = i + 1; j < V; j++) acc[j * V + i] = acc[i * V + j]!;
      }
      for (let e = 0; e < V * V; e++) out[p * V * V + e] = out[p * V * V + e]! + acc[e]!;
    }
  });
}

function pairs64(
  terms: TermMeta[],
  V: number,
  fp: TermFeatures[],
  fq: TermFeatures[],
  idxP: Int32Array,
  idxQ: Int32Array,
  from: number,
  to: number,
  out: Float64Array,
): void {
  for (let p = from; p < to; p++) {
    const a = idxP[p]!;
    const b = idxQ[p]!;
    terms.forEach((t, k) => {
      if (isPairTerm(t)) return;
      const g =
        t.kind === 'gram'
          ? 1
          : t.sw2 * (t.sw2 === 0 ? 0 : dot(fp[k]!.a!, a * t.dIn, fq[k]!.a!, b * t.dIn, t.dIn)) + t.sb2;
      for (let i = 0; i < V; i++) {
        for (let j = 0; j < V; j++) {
          let v: number;
          if (t.kind === 'identity') v = i === j ? g : 0;
          else v = g * dot(fp[k]!.d!, (a * V + i) * t.width, fq[k]!.d!, (b * V + j) * t.width, t.width);
          out[(p * V + i) * V + j] = out[(p * V + i) * V + j]! + v;
        }
      }
    });
  }
}

/** Factors of the given (sorted, unique) points of a set, concatenated in that order. */
function factorsOf(
  state: EngineState,
  points: Points,
  indices: number[],
  progress: Progress,
): TermFeatures[] {
  const bs = resolveBlockSize(state, 'full');
  const V = state.V;
  const arrays = state.terms.map((t) => ({
    a: t.dIn > 0 ? new Float32Array(indices.length * t.dIn) : undefined,
    d: t.width > 0 ? new Float32Array(indices.length * V * t.width) : undefined,
  }));
  const subset = new (points.data.constructor as { new (n: number): Float32Array | Int32Array })(
    indices.length * points.rowSize,
  );
  indices.forEach((n, k) => {
    subset.set(points.data.subarray(n * points.rowSize, (n + 1) * points.rowSize), k * points.rowSize);
  });
  const sub: Points = { ...points, n: indices.length, data: subset };
  const offsets = partition(indices.length, bs);
  for (let k = 0; k < offsets.length - 1; k++) {
    const f = featuresFor(state, sub, offsets[k]!, offsets[k + 1]!);
    state.terms.forEach((t, j) => {
      if (arrays[j]!.a) arrays[j]!.a!.set(f[j]!.a!, offsets[k]! * t.dIn);
      if (arrays[j]!.d) arrays[j]!.d!.set(f[j]!.d!, offsets[k]! * V * t.width);
    });
    progress.tick();
  }
  return arrays;
}

/** Normalise a pair list to two index arrays, validating the ranges. */
export function normalizePairs(
  pairs: Array<[number, number]> | Int32Array | undefined,
  n1: number,
  n2: number,
): { idxP: Int32Array; idxQ: Int32Array } {
  if (pairs === undefined) {
    throw new InvalidArgumentError('pairs', pairs, "a list of [row, column] point pairs for output 'pairs'");
  }
  let flat: Int32Array;
  if (pairs instanceof Int32Array) {
    if (pairs.length % 2 !== 0)
      throw new InvalidArgumentError('pairs', pairs, 'a flat Int32Array of even length');
    flat = pairs;
  } else if (Array.isArray(pairs)) {
    flat = new Int32Array(pairs.length * 2);
    pairs.forEach((pair, p) => {
      if (!Array.isArray(pair) || pair.length !== 2) {
        throw new InvalidArgumentError(`pairs[${p}]`, pair, 'a pair [row, column]');
      }
      flat[2 * p] = pair[0];
      flat[2 * p + 1] = pair[1];
      if (!Number.isInteger(pair[0]) || !Number.isInteger(pair[1])) {
        throw new InvalidArgumentError(`pairs[${p}]`, pair, 'integer indices');
      }
    });
  } else {
    throw new InvalidArgumentError('pairs', pairs, 'an array of [row, column] pairs or a flat Int32Array');
  }
  const P = flat.length / 2;
  if (P === 0) throw new InvalidArgumentError('pairs', pairs, 'at least one pair');
  const idxP = new Int32Array(P);
  const idxQ = new Int32Array(P);
  for (let p = 0; p < P; p++) {
    const a = flat[2 * p]!;
    const b = flat[2 * p + 1]!;
    if (a < 0 || a >= n1)
      throw new InvalidArgumentError(`pairs[${p}][0]`, a, `a row point index in [0, ${n1})`);
    if (b < 0 || b >= n2)
      throw new InvalidArgumentError(`pairs[${p}][1]`, b, `a column point index in [0, ${n2})`);
    idxP[p] = a;
    idxQ[p] = b;
  }
  return { idxP, idxQ };
}

/** Unique sorted values and the positions of each input value among them. */
function compact(idx: Int32Array): { unique: number[]; position: Int32Array } {
  const unique = [...new Set(idx)].sort((a, b) => a - b);
  const where = new Map(unique.map((v, k) => [v, k]));
  return { unique, position: Int32Array.from(idx, (v) => where.get(v)!) };
}

/** K blocks for the given pairs of x1 × (x2 ?? x1). Only the points that occur are evaluated. */
export function computePairs(
  state: EngineState,
  x1: Points,
  x2: Points | null,
  idxP: Int32Array,
  idxQ: Int32Array,
): PairBlocks {
  const t0 = performance.now();
  const V = state.V;
  const rows = compact(idxP);
  const cols = x2 ? compact(idxQ) : null;
  const needed = rows.unique.length + (cols ? cols.unique.length : 0);
  if (featureBytes(state.terms, needed, V) > state.memoryBudget) {
    throw new InvalidArgumentError(
      'pairs',
      `${idxP.length} pairs over ${needed} distinct points`,
      `fewer distinct points (their factors must fit memoryBudget = ${state.memoryBudget} bytes)`,
    );
  }
  const bs = resolveBlockSize(state, 'full');
  const blocks = Math.ceil(rows.unique.length / bs) + (cols ? Math.ceil(cols.unique.length / bs) : 0);
  const progress = state.progress ? progressBar(`eNTK pairs (${state.implementation})`, blocks) : null;
  const silent: Progress = { tick: () => undefined, done: () => undefined };
  try {
    let fq: TermFeatures[];
    let qPos: Int32Array;
    const fp = factorsOf(state, x1, rows.unique, progress ?? silent);
    if (cols) {
      fq = factorsOf(state, x2!, cols.unique, progress ?? silent);
      qPos = cols.position;
    } else {
      // Same set: map column indices into the row subset, adding any missing points.
      const where = new Map(rows.unique.map((v, k) => [v, k]));
      const missing = [...new Set(idxQ)].filter((v) => !where.has(v)).sort((a, b) => a - b);
      if (missing.length > 0) {
        const extra = factorsOf(state, x1, missing, progress ?? silent);
        fq = state.terms.map((_, j) => ({
          a: fp[j]!.a ? concat(fp[j]!.a!, extra[j]!.a!) : undefined,
          d: fp[j]!.d ? concat(fp[j]!.d!, extra[j]!.d!) : undefined,
        }));
        missing.forEach((v, k) => {
          where.set(v, rows.unique.length + k);
        });
      } else {
        fq = fp;
      }
      qPos = Int32Array.from(idxQ, (v) => where.get(v)!);
    }
    const features = performance.now() - t0;
    const s = performance.now();
    const data = contractPairs(state.terms, V, state.accumulation, fp, fq, rows.position, qPos);
    return {
      data,
      contraction: pairsContraction(state.accumulation),
      timings: { features, contraction: performance.now() - s, total: performance.now() - t0 },
    };
  } finally {
    progress?.done();
  }
}

function concat(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Diagonal blocks K(x_n, x_n), [n, V, V], block by block (memory bounded). */
export function computeDiagonal(state: EngineState, x: Points): PairBlocks & { blockSize: number } {
  const t0 = performance.now();
  const V = state.V;
  const bs = resolveBlockSize(state, 'full');
  const offsets = partition(x.n, bs);
  const out =
    state.accumulation === 'float64' ? new Float64Array(x.n * V * V) : new Float32Array(x.n * V * V);
  const progress = state.progress
    ? progressBar(`eNTK diagonal (${state.implementation})`, offsets.length - 1)
    : { tick: () => undefined, done: () => undefined };
  let features = 0;
  let contraction = 0;
  try {
    for (let k = 0; k < offsets.length - 1; k++) {
      const s = performance.now();
      const f = featuresFor(state, x, offsets[k]!, offsets[k + 1]!);
      const m = performance.now();
      const idx = Int32Array.from({ length: offsets[k + 1]! - offsets[k]! }, (_, i) => i);
      out.set(contractPairs(state.terms, V, state.accumulation, f, f, idx, idx), offsets[k]! * V * V);
      features += m - s;
      contraction += performance.now() - m;
      progress.tick();
    }
  } finally {
    progress.done();
  }
  return {
    data: out,
    blockSize: bs,
    contraction: pairsContraction(state.accumulation),
    timings: { features, contraction, total: performance.now() - t0 },
  };
}
