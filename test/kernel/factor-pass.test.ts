/**
 * The factor pass's own kernels (issue 15): dense-over-positions and one-hot gradient rows with
 * zero-signal positions skipped (src/kernel/position-grads.ts) against float64 loops, the attention
 * core's replicated backward (src/kernel/attention-grad.ts) against tfjs autodiff of the layer's own
 * attentionCore, and the transformer's structured factors with these paths against the factors
 * without them (tfjs products, tfjs autodiff of attention) — batches of different lengths, one
 * without padding. The kernels these factors give are checked against float64 finite differences
 * in ./transformer-suite.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { attentionBackward } from '../../src/kernel/attention-grad.js';
import { analyzeModel, empiricalNtkFn, finiteDifferenceNtk, planStructured } from '../../src/kernel/index.js';
import {
  denseGradientRows,
  denseGradientRowsAvailable,
  embeddingGradientRows,
  im2colRows,
  positionGradTestHooks,
  sparseRowsProduct,
} from '../../src/kernel/position-grads.js';
import { structuredFeatures, structuredTestHooks, type TermFeatures } from '../../src/kernel/structured.js';
import {
  attentionCore,
  buildModel,
  resolveModelSpec,
  SequencePooling,
  type TransformerSpec,
} from '../../src/model/index.js';
import { Rng } from '../../src/util/rng.js';
import { TINY_POST, TINY_PRE, tokenBatch } from '../model/transformer-fixtures.js';
import { transformer64, weights64 } from '../model/transformer64.js';
import { seedWeights } from './graph-nets.js';
import { normalPoints, randomizeWeights, relMaxError } from './helpers.js';

/**
 * Signals δ [b·V, L, dOut] with the zero patterns the skip must handle: point 0 nonzero everywhere;
 * point 1 zero from position 3 on (padding); point 2 zero at position 2 for logit 0 only (kept:
 * another logit's row is nonzero there); point 3 zero everywhere.
 */
function patternedSignals(b: number, V: number, L: number, dOut: number, rng: Rng): Float32Array {
  const delta = Float32Array.from(rng.normalArray(b * V * L * dOut));
  for (let n = 0; n < b; n++) {
    for (let i = 0; i < V; i++) {
      for (let t = 0; t < L; t++) {
        const zero = (n === 1 && t >= 3) || (n === 2 && t === 2 && i === 0) || n === 3;
        if (zero) delta.fill(0, ((n * V + i) * L + t) * dOut, ((n * V + i) * L + t + 1) * dOut);
      }
    }
  }
  return delta;
}

describe.each([
  ['tile-aligned widths', 16, 8, 7],
  ['unaligned widths (K = 13, dOut = 6: padded panels and tiles, a staging area)', 13, 6, 7],
  ['K = 15, dOut = 5 (the bias column ends a panel; one partial tile per logit)', 15, 5, 7],
  ['L = 8, K = 13, dOut = 8 (signal blocks moved in wasm where every position is kept)', 13, 8, 8],
  ['L = 8, K = 16, dOut = 4 (blocks moved in wasm, rows written in place without a bias)', 16, 4, 8],
  ['K = 8, dOut = 6 (whole panels, a partial tile: the bias column in a panel of its own)', 8, 6, 7],
  ['L = 8, K = 70, dOut = 5 (long rows copied by typed-array views)', 70, 5, 8],
] as const)('denseGradientRows, %s', (_, K, dOut, L) => {
  const [b, V] = [4, 3];
  const rng = new Rng(3);
  const a = Float32Array.from(rng.normalArray(b * L * K));

  /** float64: G[r, c·K + k] = s_w Σ_t δ[r, t, c] a[n, t, k]; bias G[r, dOut·K + c] = s_b Σ_t δ[r, t, c]. */
  function reference(delta: Float32Array, sw: number, sb: number | null): Float64Array {
    const width = dOut * K + (sb === null ? 0 : dOut);
    const g = new Float64Array(b * V * width);
    for (let r = 0; r < b * V; r++) {
      const n = Math.floor(r / V);
      for (let t = 0; t < L; t++) {
        for (let c = 0; c < dOut; c++) {
          const d = delta[(r * L + t) * dOut + c]!;
          for (let k = 0; k < K; k++) g[r * width + c * K + k]! += sw * d * a[(n * L + t) * K + k]!;
          if (sb !== null) g[r * width + dOut * K + c]! += sb * d;
        }
      }
    }
    return g;
  }

  it('runs here (WebAssembly SIMD), for any nonzero widths', () => {
    expect(denseGradientRowsAvailable(K, dOut)).toBe(true);
    expect(denseGradientRowsAvailable(0, dOut)).toBe(false);
  });

  it.each([
    ['with a bias, scaled', 0.7, 1.3],
    ['without a bias', 1, null],
  ])(
    '= float64 sums over every position, zero-signal positions skipped (%s; rel. max ≤ 1e-6)',
    (_, sw, sb) => {
      for (const delta of [
        patternedSignals(b, V, L, dOut, rng),
        Float32Array.from(rng.normalArray(b * V * L * dOut)), // no zero position at all
      ]) {
        const ref = reference(delta, sw, sb);
        const out = new Float32Array(ref.length).fill(Number.NaN); // every entry must be written
        denseGradientRows(a, delta, { b, V, L, K, dOut }, sw, sb, out);
        expect(relMaxError(out, ref)).toBeLessThanOrEqual(1e-6);
      }
      // Point 3's signals are all zero: so are its rows, exactly.
      const out = new Float32Array(b * V * (dOut * K + (sb === null ? 0 : dOut)));
      denseGradientRows(a, patternedSignals(b, V, L, dOut, rng), { b, V, L, K, dOut }, sw, sb, out);
      expect(out.subarray(3 * V * (out.length / (b * V))).every((x) => x === 0)).toBe(true);
    },
  );
  it.each([
    ['with a bias, scaled', 0.7, 1.3],
    ['without a bias', 1, null],
  ])('= float32 sums in increasing position order, bit for bit (%s)', (_, sw, sb) => {
    // Each entry is one float32 sum over the positions in increasing order (skipped positions add
    // exact zeros), whatever the product's tiling: so exactly these loops.
    const delta = patternedSignals(b, V, L, dOut, rng);
    const width = dOut * K + (sb === null ? 0 : dOut);
    const ref = new Float32Array(b * V * width);
    for (let r = 0; r < b * V; r++) {
      const n = Math.floor(r / V);
      for (let c = 0; c < dOut; c++) {
        const sum = new Float32Array(K + 1);
        for (let t = 0; t < L; t++) {
          const d = delta[(r * L + t) * dOut + c]!;
          for (let k = 0; k < K; k++)
            sum[k] = sum[k]! + Math.fround(d * Math.fround(sw * a[(n * L + t) * K + k]!));
          sum[K] = sum[K]! + d;
        }
        ref.set(sum.subarray(0, K), r * width + c * K);
        if (sb !== null) ref[r * width + dOut * K + c] = sb * sum[K]!;
      }
    }
    const out = new Float32Array(ref.length).fill(Number.NaN);
    denseGradientRows(a, delta, { b, V, L, K, dOut }, sw, sb, out);
    expect(Array.from(out)).toEqual(Array.from(ref));
  });
});

describe('im2colRows', () => {
  it.each([
    ['one channel', 1],
    ['3 channels', 3],
    ['70 channels (copied by typed-array views)', 70],
  ])("= plain loops, exactly ('same' zeros, strides 2 × 1, dilation 1 × 2; %s)", (_, C) => {
    const g = {
      b: 2,
      H: 5,
      W: 6,
      C,
      kh: 3,
      kw: 2,
      oh: 3,
      ow: 6,
      strides: [2, 1] as [number, number],
      dilations: [1, 2] as [number, number],
      padTop: 1,
      padLeft: 1,
    };
    const x = Float32Array.from(new Rng(8).normalArray(g.b * g.H * g.W * C));
    const expected: number[] = [];
    for (let n = 0; n < g.b; n++)
      for (let y = 0; y < g.oh; y++)
        for (let z = 0; z < g.ow; z++)
          for (let i = 0; i < g.kh; i++)
            for (let j = 0; j < g.kw; j++)
              for (let c = 0; c < C; c++) {
                const [r, q] = [y * 2 + i - 1, z + 2 * j - 1];
                const inside = r >= 0 && r < g.H && q >= 0 && q < g.W;
                expected.push(inside ? x[((n * g.H + r) * g.W + q) * C + c]! : 0);
              }
    // (Twice: the second call reuses the scratch array the first filled.)
    im2colRows(
      x.map((v) => v + 1),
      g,
    );
    expect(Array.from(im2colRows(x, g))).toEqual(expected);
  });
});

describe('sparseRowsProduct', () => {
  const [rows, k, cols] = [23, 12, 16];
  const rng = new Rng(4);
  const b = Float32Array.from(rng.normalArray(cols * k));

  /** float64 s·(A Bᵀ). */
  function reference(a: Float32Array, s: number): Float64Array {
    const c = new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++)
      for (let j = 0; j < cols; j++)
        for (let p = 0; p < k; p++) c[r * cols + j]! += s * a[r * k + p]! * b[j * k + p]!;
    return c;
  }

  it.each([
    ['a fresh array', false],
    ['the reused buffer', true],
  ])(
    '= float64 s·(A Bᵀ) when most rows of A are zero (%s; rel. max ≤ 1e-6, zero rows exactly 0)',
    (_, reuse) => {
      // Two passes with different nonzero rows (the reused buffer must not keep the first pass's
      // rows): rows 0, 5, 6, 22 (row 6 nonzero only in its last entry), then 1, 2, 3, 4, 5 (a
      // partial last tile).
      for (const nonzero of [
        [0, 5, 6, 22],
        [1, 2, 3, 4, 5],
      ]) {
        const a = Float32Array.from(rng.normalArray(rows * k));
        for (let r = 0; r < rows; r++) if (!nonzero.includes(r)) a.fill(0, r * k, (r + 1) * k);
        if (nonzero.includes(6)) a.fill(0, 6 * k, 7 * k - 1);
        const ref = reference(a, 0.8);
        const c = sparseRowsProduct(a, rows, k, b, cols, 0.8, reuse)!;
        expect(c).not.toBeNull();
        expect(relMaxError(c, ref)).toBeLessThanOrEqual(1e-6);
        for (let r = 0; r < rows; r++) {
          if (!nonzero.includes(r))
            expect(c.subarray(r * cols, (r + 1) * cols).every((v) => v === 0)).toBe(true);
        }
      }
    },
  );

  it('declines (null) when fewer than a quarter of the rows are zero, or on unaligned widths', () => {
    const dense = Float32Array.from(rng.normalArray(rows * k));
    expect(sparseRowsProduct(dense, rows, k, b, cols, 1, false)).toBeNull();
    const sparse = new Float32Array(rows * k);
    expect(sparseRowsProduct(sparse, rows, k, b.subarray(0, 12 * k), 12, 1, false)).toBeNull(); // cols % 8
    // All rows zero: an exact zero product.
    expect(sparseRowsProduct(sparse, rows, k, b, cols, 1, false)!.every((v) => v === 0)).toBe(true);
  });
});

describe('embeddingGradientRows', () => {
  it('= float64 one-hot products Σ_t δ_t ⊗ onehot(id_t) (repeated ids, an out-of-range id: zero row; rel. max ≤ 1e-6)', () => {
    const [b, V, L, vocab, dOut] = [3, 2, 5, 4, 3];
    const rng = new Rng(8);
    const ids = Float32Array.from([0, 1, 1, 3, 0, 2, 2, 2, 2, 2, 3, 0, 1, 2, 7]);
    const delta = Float32Array.from(rng.normalArray(b * V * L * dOut));
    const width = dOut * vocab;
    const ref = new Float64Array(b * V * width);
    for (let r = 0; r < b * V; r++) {
      const n = Math.floor(r / V);
      for (let t = 0; t < L; t++) {
        for (let c = 0; c < dOut; c++) {
          for (let v = 0; v < vocab; v++) {
            const onehot = ids[n * L + t] === v ? 1 : 0;
            ref[r * width + c * vocab + v]! += 0.5 * delta[(r * L + t) * dOut + c]! * onehot;
          }
        }
      }
    }
    const out = new Float32Array(ref.length).fill(Number.NaN);
    embeddingGradientRows(ids, delta, { b, V, L, vocab, dOut }, 0.5, out);
    expect(relMaxError(out, ref)).toBeLessThanOrEqual(1e-6);
  });
});

describe('attentionBackward', () => {
  const [n, V, L, width, heads] = [3, 2, 6, 8, 2];
  let before = 0;
  beforeEach(() => {
    before = tf.memory().numTensors;
  });
  afterEach(() => {
    expect(tf.memory().numTensors).toBe(before);
  });

  /** Point n's rows repeated V times (row n·V + i ← row n). */
  const repeat = (x: Float32Array, rowSize: number) =>
    Float32Array.from({ length: n * V * rowSize }, (_, e) => {
      const r = Math.floor(e / rowSize);
      return x[Math.floor(r / V) * rowSize + (e % rowSize)]!;
    });

  /** Both gradients for the lengths and cotangents given: [ours, tfjs autodiff on the replicated batch]. */
  function both(lengths: number[], dy: Float32Array): Array<[Float32Array, Float32Array]> {
    const rng = new Rng(11);
    const [q, k, v] = [0, 1, 2].map(() => Float32Array.from(rng.normalArray(n * L * width)));
    const mask = Float32Array.from({ length: n * L }, (_, e) =>
      e % L < lengths[Math.floor(e / L)]! ? 1 : 0,
    );
    const p = tf.tidy(() => {
      // The weights as the layer computes them: softmax of the masked scores, per head.
      const split = (x: Float32Array) =>
        tf.tensor(x, [n, L, heads, width / heads]).transpose([0, 2, 1, 3]) as tf.Tensor4D;
      const scores = tf.mul(tf.matMul(split(q!), split(k!), false, true), 1 / Math.sqrt(width / heads));
      const bias = tf.mul(tf.sub(tf.tensor(mask, [n, 1, 1, L]), 1), 1e9);
      return tf.softmax(tf.add(scores, bias)).dataSync() as Float32Array;
    });
    const ours = [0, 1, 2].map(() => new Float32Array(n * V * L * width));
    attentionBackward({ n, V, L, width, heads }, q!, k!, v!, p, dy, ours[0]!, ours[1]!, ours[2]!);
    const ref = tf.tidy(() => {
      const rep = (x: Float32Array) => tf.tensor(repeat(x, L * width), [n * V, L, width]);
      const m = tf.tensor(repeat(mask, L), [n * V, L]);
      const cot = tf.tensor(dy, [n * V, L, width]);
      const g = tf.grads((qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) =>
        tf.sum(tf.mul(attentionCore(qq, kk, vv, m, heads), cot)),
      )([rep(q!), rep(k!), rep(v!)]);
      return g.map((t) => t.dataSync() as Float32Array);
    });
    return ours.map((o, j) => [o, ref[j]!]);
  }

  it.each([
    ['different lengths, cotangents everywhere', [6, 3, 1], 'all'],
    ['different lengths, cotangents at real tokens only', [6, 3, 1], 'tokens'],
    ['cotangents at position 0 only (the last block of a CLS-pooled model)', [6, 3, 1], 'first'],
    ['no padding', [6, 6, 6], 'all'],
  ])('dq, dk, dv = tfjs autodiff of attentionCore (%s; rel. max ≤ 1e-5)', (_, lengths, where) => {
    const rng = new Rng(5);
    const dy = Float32Array.from(rng.normalArray(n * V * L * width));
    for (let r = 0; r < n * V; r++) {
      for (let t = 0; t < L; t++) {
        const keep = where === 'all' || (where === 'first' ? t === 0 : t < lengths[Math.floor(r / V)]!);
        if (!keep) dy.fill(0, (r * L + t) * width, (r * L + t + 1) * width);
      }
    }
    for (const [ours, ref] of both(lengths, dy)) expect(relMaxError(ours, ref)).toBeLessThanOrEqual(1e-5);
  });
});

describe.each([
  ['post-LN, CLS (2 blocks, width 8)', TINY_POST],
  ['pre-LN, masked mean (1 block)', TINY_PRE],
  ['pre-LN, CLS (2 blocks, no pooler)', { ...TINY_PRE, layers: 2, pooling: 'cls' } as TransformerSpec],
])('structured factors of the transformer, %s: own kernels', (_, spec: TransformerSpec) => {
  const L = spec.maxLength;
  const V = 3;
  let model: tf.LayersModel;
  beforeAll(() => {
    model = buildModel(spec, { inputShape: [2 * L], numClasses: V, seed: 1 });
    randomizeWeights(model, 5, 0.5);
  });
  afterAll(() => model.dispose());

  /** Own kernels or tfjs's; `sparse`: the zero-row input-gradient products at any size. */
  function features(x: tf.Tensor, own: boolean, sparse = false): TermFeatures[] {
    positionGradTestHooks.enabled = own;
    structuredTestHooks.replicatedAttention = own;
    if (sparse) structuredTestHooks.sparseRowsMinWork = 0;
    try {
      return structuredFeatures(planStructured(analyzeModel(model, 'all')), x);
    } finally {
      positionGradTestHooks.enabled = true;
      structuredTestHooks.replicatedAttention = true;
      structuredTestHooks.sparseRowsMinWork = 2 ** 20;
    }
  }

  const padded = tokenBatch(4, L, spec.vocabSize!, 21);
  // Every position a token (mask 1, no padding id).
  const full = tokenBatch(3, L, spec.vocabSize!, 22).map((v, e) => (e % (2 * L) >= L || v === 0 ? 1 : v));

  // Tolerance: float32 rounding, amplified by the softmax backward's cancellation in dP − Σ P dP:
  // the tfjs path is itself 1.4e-5 off float64 on block 1's query signals of the padded batch (the
  // own path 4.7e-6; checked against float64 below).
  // A point with no token at all (every position padding): all its signals vanish.
  const empty = padded.map((v, e) => (e < 2 * L ? 0 : v));

  it.each([
    ['different lengths (with padding)', padded, false],
    ['no padding', full, false],
    ['a point with no token', empty, false],
    ['input gradients over the nonzero rows only (sparseRowsProduct at any size)', padded, true],
  ])('= the tfjs products and autodiff, every factor (%s; rel. max ≤ 5e-5 per term)', (_, data, sparse) => {
    const before = tf.memory().numTensors;
    const x = tf.tensor(data, [data.length / (2 * L), 2 * L]);
    const calls = positionGradTestHooks.sparseCalls;
    const ours = features(x, true, sparse);
    // The zero-row products ran: after a CLS pooling all but position 0 are zero rows (with a
    // masked mean, only the padding: too few here, the product declines).
    if (sparse && spec.pooling === 'cls') expect(positionGradTestHooks.sparseCalls).toBeGreaterThan(calls);
    const reference = features(x, false);
    x.dispose();
    expect(tf.memory().numTensors).toBe(before);
    for (const f of ours) for (const v of Object.values(f)) expect(v.every(Number.isFinite)).toBe(true);
    expect(ours.length).toBe(reference.length);
    let compared = 0;
    ours.forEach((f, j) => {
      for (const key of ['a', 'd', 's', 'u'] as const) {
        const r = reference[j]![key];
        expect(f[key] === undefined).toBe(r === undefined);
        if (!r || r.every((v) => v === 0)) continue;
        expect(relMaxError(f[key]!, r), `term ${j} ${key}`).toBeLessThanOrEqual(5e-5);
        compared++;
      }
    });
    expect(compared).toBeGreaterThan(10);
  });

  // (CLS pooling only: then block 1's query is a 'dense-position' layer.)
  if (spec.pooling === 'cls')
    it("block 1's query signals (through the replicated attention) = float64 finite differences (rel. max ≤ 1e-5)", () => {
      // The query's cotangent is zero off position 0 ('dense-position'), so δ_0 = ∂f_i/∂bias.
      const n = padded.length / (2 * L);
      const x = tf.tensor(padded, [n, 2 * L]);
      const plan = planStructured(analyzeModel(model, 'all'));
      const j = plan.rules.findIndex((r) => r.name === 'block1/attention/query');
      expect(plan.rules[j]!.rule).toBe('dense-position');
      const ours = structuredFeatures(plan, x)[plan.layers[j]!.term]!.d!;
      x.dispose();
      const w = weights64(model);
      const bias = w.get('block1/attention/query')![1]!;
      const width = bias.length;
      const ref = new Float64Array(n * V * width);
      const h = 1e-6;
      for (let c = 0; c < width; c++) {
        const saved = bias[c]!;
        bias[c] = saved + h;
        const up = transformer64(spec, w, padded, n);
        bias[c] = saved - h;
        const down = transformer64(spec, w, padded, n);
        bias[c] = saved;
        for (let r = 0; r < n * V; r++) ref[r * width + c] = (up[r]! - down[r]!) / (2 * h);
      }
      expect(relMaxError(ours, ref)).toBeLessThanOrEqual(1e-5);
    });
});

describe('convolutions on the same gradient rows (im2col patches as the positions)', () => {
  // A strided, padded Conv2D, a dilated one, a Conv1D, non-square kernels and unaligned widths, with
  // biases; ReLU makes some signals exactly zero.
  const L = tf.layers;
  function net(): tf.LayersModel {
    const x = tf.input({ shape: [6, 6, 8] });
    const c1 = L.conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(x);
    const c2 = L.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same' }).apply(c1);
    const c3 = L.conv2d({ filters: 4, kernelSize: 2, dilationRate: 2, activation: 'tanh' }).apply(c1);
    const f = L.concatenate().apply([L.flatten().apply(c2), L.flatten().apply(c3)] as tf.SymbolicTensor[]);
    const model = tf.model({ inputs: x, outputs: L.dense({ units: 3 }).apply(f) as tf.SymbolicTensor });
    randomizeWeights(model, 31, 0.4);
    return model;
  }
  function seq(): tf.LayersModel {
    const x = tf.input({ shape: [7, 8] });
    const c = L.conv1d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(x);
    const model = tf.model({
      inputs: x,
      outputs: L.dense({ units: 3 }).apply(L.flatten().apply(c) as tf.SymbolicTensor) as tf.SymbolicTensor,
    });
    randomizeWeights(model, 32, 0.4);
    return model;
  }

  function rect(): tf.LayersModel {
    const x = tf.input({ shape: [7, 5, 4] });
    const c = L.conv2d({
      filters: 4,
      kernelSize: [3, 2],
      strides: [2, 1],
      padding: 'same',
      activation: 'relu',
    }).apply(x);
    const d = L.conv2d({ filters: 8, kernelSize: [2, 4], dilationRate: [2, 1] }).apply(c);
    const model = tf.model({
      inputs: x,
      outputs: L.dense({ units: 3 }).apply(L.flatten().apply(d) as tf.SymbolicTensor) as tf.SymbolicTensor,
    });
    randomizeWeights(model, 35, 0.4);
    return model;
  }

  function seqStrided(): tf.LayersModel {
    const x = tf.input({ shape: [9, 5] });
    const c = L.conv1d({ filters: 6, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }).apply(
      x,
    );
    const d = L.conv1d({ filters: 4, kernelSize: 2, dilationRate: 2 }).apply(c);
    const model = tf.model({
      inputs: x,
      outputs: L.dense({ units: 3 }).apply(L.flatten().apply(d) as tf.SymbolicTensor) as tf.SymbolicTensor,
    });
    randomizeWeights(model, 37, 0.4);
    return model;
  }

  function rgb(): tf.LayersModel {
    const x = tf.input({ shape: [6, 6, 3] });
    const c = L.conv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(x);
    const d = L.conv2d({ filters: 5, kernelSize: 3, strides: 2 }).apply(c);
    const model = tf.model({
      inputs: x,
      outputs: L.dense({ units: 3 }).apply(L.flatten().apply(d) as tf.SymbolicTensor) as tf.SymbolicTensor,
    });
    randomizeWeights(model, 36, 0.4);
    return model;
  }

  it.each([
    ['Conv2D (strided, padded, dilated)', net, [6, 6, 8]],
    ['Conv2D (non-square kernels, strides and dilations)', rect, [7, 5, 4]],
    ['Conv1D', seq, [7, 8]],
    ['Conv1D strided and dilated, unaligned widths', seqStrided, [9, 5]],
    ['Conv2D on 3 input channels, 6 and 5 filters (unaligned widths K = 27, 54)', rgb, [6, 6, 3]],
  ] as const)(
    '%s: = the tfjs products (rel. max ≤ 1e-6) and the kernel = float64 finite differences (≤ 1e-5)',
    async (_, make, shape) => {
      const model = make();
      const x = normalPoints(3, [...shape], 33);
      try {
        const plan = planStructured(analyzeModel(model, 'all'));
        const conv = plan.layers.filter((_, q) => plan.rules[q]!.className.startsWith('Conv'));
        expect(conv.length).toBeGreaterThan(0);
        let reference: TermFeatures[];
        positionGradTestHooks.enabled = false;
        try {
          reference = structuredFeatures(plan, x);
        } finally {
          positionGradTestHooks.enabled = true;
        }
        const calls = positionGradTestHooks.denseCalls;
        const ours = structuredFeatures(plan, x);
        // Every conv call took the own rows (not tfjs's products).
        expect(positionGradTestHooks.denseCalls - calls).toBe(conv.length);
        for (const l of conv) {
          const r = reference[l.term]!.d!;
          expect(r.some((v) => v !== 0)).toBe(true);
          expect(relMaxError(ours[l.term]!.d!, r)).toBeLessThanOrEqual(1e-6);
        }
        const k = await empiricalNtkFn(model, { progress: false, accumulation: 'float64' })(x);
        expect(relMaxError(k.data, finiteDifferenceNtk(model, x).data)).toBeLessThanOrEqual(1e-5);
      } finally {
        model.dispose();
        x.dispose();
      }
    },
  );
});

describe('embedding rows read the ids as the forward pass does', () => {
  // Non-integer ids in the input are refused (test/kernel/guards.test.ts); ids the model computes
  // (here through a ReLU) reach the Embedding as they are.
  it('non-integer float ids computed by the model: structured = the Jacobian path (tfjs truncates to int32; rel. max ≤ 1e-5)', async () => {
    const L = tf.layers;
    const x = tf.input({ shape: [4] });
    const e = L.embedding({ inputDim: 6, outputDim: 8 }).apply(L.reLU().apply(x)) as tf.SymbolicTensor;
    const model = tf.model({
      inputs: x,
      outputs: L.dense({ units: 3 }).apply(L.flatten().apply(e) as tf.SymbolicTensor) as tf.SymbolicTensor,
    });
    randomizeWeights(model, 34, 0.5);
    const ids = tf.tensor2d([0.5, 2.7, 5.9, 2.2, 1, 3.99, 4.01, 0], [2, 4]);
    try {
      const structured = await empiricalNtkFn(model, { progress: false, implementation: 'structured' })(ids);
      const jacobian = await empiricalNtkFn(model, { progress: false, implementation: 'jacobian' })(ids);
      expect(relMaxError(structured.data, jacobian.data)).toBeLessThanOrEqual(1e-5);
    } finally {
      model.dispose();
      ids.dispose();
    }
  });
});

describe('LayerNorm without centre or scale through the closed-form input gradient', () => {
  it.each([
    ['center off', { center: false }],
    ['scale off', { scale: false }],
  ])('%s: structured = float64 finite differences (rel. max ≤ 1e-5)', async (_, options) => {
    const L = tf.layers;
    const x = tf.input({ shape: [5, 8] });
    const e = L.dense({ units: 8 }).apply(x) as tf.SymbolicTensor;
    const n = L.layerNormalization(options).apply(e) as tf.SymbolicTensor;
    const h = L.dense({ units: 8, activation: 'gelu' }).apply(n) as tf.SymbolicTensor;
    const n2 = L.layerNormalization().apply(L.add().apply([n, h]) as tf.SymbolicTensor) as tf.SymbolicTensor;
    const model = tf.model({
      inputs: x,
      outputs: L.dense({ units: 3 }).apply(
        L.globalAveragePooling1d().apply(n2) as tf.SymbolicTensor,
      ) as tf.SymbolicTensor,
    });
    randomizeWeights(model, 36, 0.5);
    const points = normalPoints(3, [5, 8], 37);
    try {
      const k = await empiricalNtkFn(model, { progress: false, accumulation: 'float64' })(points);
      expect(k.implementation).toBe('structured');
      expect(relMaxError(k.data, finiteDifferenceNtk(model, points).data)).toBeLessThanOrEqual(1e-5);
    } finally {
      model.dispose();
      points.dispose();
    }
  });
});

describe('replicated runs without forward values on a graph that is not a transformer', () => {
  it.each([
    [
      'Conv2D(relu) → MaxPool → Conv2D(relu) → MaxPool → Flatten → Dense(relu) → Dense (the cnn preset)',
      'cnn',
    ],
    ['Conv1D(tanh) → MaxPooling1D (overlapping) → Flatten → Dense', 'conv1d'],
    ['Conv2D → BatchNorm → ReLU, + Conv2D → BatchNorm, Add, AveragePooling2D → Flatten → Dense', 'resnet'],
  ] as const)(
    '%s: no forward value of the V copies (convolutions, fused activations, max-pools, batch norms from the points) = float64 finite differences / the Jacobian path (≤ 1e-5)',
    async (_, kind) => {
      const L = tf.layers;
      const residual = () => {
        const x = tf.input({ shape: [6, 6, 1] });
        const conv = (t: tf.SymbolicTensor) =>
          L.batchNormalization().apply(
            L.conv2d({ filters: 3, kernelSize: 3, padding: 'same' }).apply(t),
          ) as tf.SymbolicTensor;
        const stem = L.activation({ activation: 'relu' }).apply(conv(x)) as tf.SymbolicTensor;
        const sum = L.add().apply([stem, conv(stem)]) as tf.SymbolicTensor;
        const pooled = L.flatten().apply(L.averagePooling2d({ poolSize: 2 }).apply(sum)) as tf.SymbolicTensor;
        return tf.model({ inputs: x, outputs: L.dense({ units: 3 }).apply(pooled) as tf.SymbolicTensor });
      };
      const model =
        kind === 'cnn'
          ? buildModel(resolveModelSpec('cnn'), { inputShape: [8, 8, 1], numClasses: 4, seed: 3 })
          : kind === 'resnet'
            ? residual()
            : tf.sequential({
                layers: [
                  L.conv1d({ inputShape: [9, 2], filters: 3, kernelSize: 2, activation: 'tanh' }),
                  L.maxPooling1d({ poolSize: 3, strides: 2 }),
                  L.flatten(),
                  L.dense({ units: 3 }),
                ],
              });
      seedWeights(model, 43); // (moving variances positive)
      const points = normalPoints(4, kind === 'cnn' ? [8, 8, 1] : kind === 'resnet' ? [6, 6, 1] : [9, 2], 44);
      try {
        const runs = structuredTestHooks.valueFreeRuns;
        const before = tf.memory().numTensors;
        const k = await empiricalNtkFn(model, { progress: false, accumulation: 'float64' })(points);
        expect(tf.memory().numTensors).toBe(before);
        expect(k.implementation).toBe('structured');
        expect(structuredTestHooks.valueFreeRuns).toBeGreaterThan(runs);
        // (The float64 finite-difference reference has no MaxPooling1D nor Add: tfjs autodiff per point.)
        const reference =
          kind === 'cnn'
            ? finiteDifferenceNtk(model, points).data
            : (await empiricalNtkFn(model, { progress: false, implementation: 'jacobian' })(points)).data;
        expect(relMaxError(k.data, reference)).toBeLessThanOrEqual(1e-5);
      } finally {
        model.dispose();
        points.dispose();
      }
    },
  );

  it("a layer whose gradient reads its values (GlobalMaxPooling2D) keeps the copies' forward values: = the Jacobian path", async () => {
    const L = tf.layers;
    const model = tf.sequential({
      layers: [
        L.conv2d({ inputShape: [5, 5, 1], filters: 3, kernelSize: 2, activation: 'relu' }),
        L.globalMaxPooling2d({}),
        L.dense({ units: 3 }),
      ],
    });
    seedWeights(model, 45);
    const points = normalPoints(4, [5, 5, 1], 46);
    try {
      const runs = structuredTestHooks.valueFreeRuns;
      const k = await empiricalNtkFn(model, { progress: false })(points);
      expect(structuredTestHooks.valueFreeRuns).toBe(runs);
      const jacobian = await empiricalNtkFn(model, { progress: false, implementation: 'jacobian' })(points);
      expect(relMaxError(k.data, jacobian.data)).toBeLessThanOrEqual(1e-5);
    } finally {
      model.dispose();
      points.dispose();
    }
  });

  it('dense over positions → LayerNorm → GELU → dense + residual → first-position pooling: = the Jacobian path (rel. max ≤ 1e-5)', async () => {
    const L = tf.layers;
    const x = tf.input({ shape: [5, 4] });
    const e = L.dense({ units: 8 }).apply(x) as tf.SymbolicTensor;
    const n = L.layerNormalization().apply(e) as tf.SymbolicTensor;
    const g = L.activation({ activation: 'gelu' }).apply(n) as tf.SymbolicTensor;
    const m = L.dense({ units: 8 }).apply(g) as tf.SymbolicTensor;
    const r = L.add().apply([e, m]) as tf.SymbolicTensor;
    const pooled = new SequencePooling({ mode: 'cls' }).apply(r) as tf.SymbolicTensor;
    const model = tf.model({ inputs: x, outputs: L.dense({ units: 3 }).apply(pooled) as tf.SymbolicTensor });
    randomizeWeights(model, 41, 0.5);
    const points = normalPoints(4, [5, 4], 42);
    try {
      const runs = structuredTestHooks.valueFreeRuns;
      const k = await empiricalNtkFn(model, { progress: false, accumulation: 'float64' })(points);
      expect(k.implementation).toBe('structured');
      expect(structuredTestHooks.valueFreeRuns).toBeGreaterThan(runs);
      // (The float64 finite-difference reference has no SequencePooling: tfjs autodiff per point.)
      const jacobian = await empiricalNtkFn(model, { progress: false, implementation: 'jacobian' })(points);
      expect(relMaxError(k.data, jacobian.data)).toBeLessThanOrEqual(1e-5);
    } finally {
      model.dispose();
      points.dispose();
    }
  });
});
