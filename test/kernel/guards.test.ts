/**
 * Models the structured path must not run as it runs everything else, checked against the function
 * tfjs computes: finite differences of model.predict itself (predictNtk below, independent of every
 * entk path).
 * - Keras masks (Embedding maskZero, Masking) reaching a layer that reads them go to the Jacobian path;
 * - DepthwiseConv2D runs undilated in tfjs 4.22 whatever its dilationRate: entk differentiates that;
 * - BatchNormalization over a non-last axis and Conv1D 'causal' are refused by name;
 * - the float64 reference implements ReLU({maxValue});
 * - no refused or failing call leaks tensors.
 *
 * Tolerance: predictNtk differentiates float32 forward passes (Richardson-extrapolated central
 * differences, step 1e-2: truncation O(h⁴) ≈ 1e-8, round-off ≈ 1e-7/h ≈ 1e-5 relative, away from the
 * kinks of max / relu caps: the points avoid near-ties); entk's
 * kernels must match it within PREDICT_TOL = 1e-3 relative max error (the wrong kernels these
 * tests guard against were 0.15–0.78 off).
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, UnsupportedError } from '../../src/errors.js';
import { empiricalNtkFn, finiteDifferenceNtk, modelLogits } from '../../src/kernel/index.js';
import { buildModel } from '../../src/model/index.js';
import { TINY_PRE } from '../model/transformer-fixtures.js';
import { normalPoints, randomizeWeights, relMaxError } from './helpers.js';

const PREDICT_TOL = 1e-3;
const L = tf.layers;

/** J(x) [n·V, P] of model.predict by Richardson-extrapolated central differences on each weight. */
function predictJacobian(model: tf.LayersModel, x: tf.Tensor, h = 1e-2): { J: Float64Array; P: number } {
  const vars = model.trainableWeights;
  const P = vars.reduce((s, v) => s + v.shape.reduce((a, b) => a! * b!, 1)!, 0);
  const rows = tf.tidy(() => (model.predict(x) as tf.Tensor).size);
  const J = new Float64Array(rows * P);
  let col = 0;
  for (const v of vars) {
    const base = Float32Array.from(v.read().dataSync());
    const at = (p: number, d: number): Float64Array => {
      const w = base.slice();
      w[p] = w[p]! + d;
      const t = tf.tensor(w, v.shape as number[]);
      v.write(t);
      t.dispose();
      const y = model.predict(x) as tf.Tensor;
      const values = Float64Array.from(y.dataSync());
      y.dispose();
      return values;
    };
    for (let p = 0; p < base.length; p++, col++) {
      const [a, b, c, d] = [at(p, h), at(p, -h), at(p, h / 2), at(p, -h / 2)];
      for (let r = 0; r < rows; r++) {
        const wide = (a[r]! - b[r]!) / (2 * h);
        const narrow = (c[r]! - d[r]!) / h;
        J[r * P + col] = (4 * narrow - wide) / 3;
      }
    }
    const t = tf.tensor(base, v.shape as number[]);
    v.write(t);
    t.dispose();
  }
  return { J, P };
}

/** K = J(x1) J(x2)ᵀ from predictJacobian, point-major as entk's 'full' output. */
function predictNtk(model: tf.LayersModel, x1: tf.Tensor, x2: tf.Tensor): Float64Array {
  const a = predictJacobian(model, x1);
  const b = predictJacobian(model, x2);
  const r1 = a.J.length / a.P;
  const r2 = b.J.length / b.P;
  const K = new Float64Array(r1 * r2);
  for (let i = 0; i < r1; i++)
    for (let j = 0; j < r2; j++) {
      let s = 0;
      for (let p = 0; p < a.P; p++) s += a.J[i * a.P + p]! * b.J[j * a.P + p]!;
      K[i * r2 + j] = s;
    }
  return K;
}

const seq = (layers: tf.layers.Layer[]) => tf.sequential({ layers });
/** Token ids [n, 5] with zero padding (masked by Embedding maskZero). */
const ids = (values: number[]) => tf.tensor(values, [values.length / 5, 5]);

describe('Keras masks: models whose layers read a mask use the Jacobian path', () => {
  const embedding = () => L.embedding({ inputDim: 6, outputDim: 3, inputLength: 5, maskZero: true });
  const x1 = () => ids([1, 2, 3, 0, 0, 4, 5, 0, 0, 0, 2, 2, 1, 3, 0]);
  const x2 = () => ids([5, 1, 0, 0, 0, 1, 2, 3, 4, 5]);
  const cases: Array<[string, () => tf.LayersModel, () => tf.Tensor, () => tf.Tensor, RegExp]> = [
    [
      'Embedding(maskZero) → LSTM → Dense',
      () => seq([embedding(), L.lstm({ units: 3, name: 'rnn' }), L.dense({ units: 2 })]),
      x1,
      x2,
      /rnn \(LSTM\) uses the mask of embedding/,
    ],
    [
      'Embedding(maskZero) → GRU → Dense',
      () => seq([embedding(), L.gru({ units: 3, name: 'rnn' }), L.dense({ units: 2 })]),
      x1,
      x2,
      /rnn \(GRU\) uses the mask of embedding/,
    ],
    [
      'Embedding(maskZero) → Dense → LSTM(returnSequences) → GlobalMaxPooling1D → Dense',
      () =>
        seq([
          embedding(),
          L.dense({ units: 3, activation: 'tanh' }),
          L.lstm({ units: 2, returnSequences: true, name: 'rnn' }),
          L.globalMaxPooling1d({}),
          L.dense({ units: 2 }),
        ]),
      x1,
      // (No two positions within 1e-4 of the max: differences across a switch of the max are wrong.)
      () => ids([5, 1, 0, 0, 0, 4, 3, 1, 2, 0]),
      /rnn \(LSTM\) uses the mask of embedding/,
    ],
    [
      'Masking → SimpleRNN → Dense',
      () =>
        seq([
          L.masking({ inputShape: [4, 2], maskValue: 0, name: 'mask' }),
          L.simpleRNN({ units: 3, name: 'rnn' }),
          L.dense({ units: 2 }),
        ]),
      () =>
        tf.tensor([1, 2, 0.5, -1, 0, 0, 0, 0, 1, 1, 1, 2, 0, 0, 0.5, 0.5, 0, 0, 0, 0, 0, 0, 3, 1], [3, 4, 2]),
      () => tf.tensor([0, 0, 1, 1, 1, 1, 0, 0, 2, 2, 2, 2, 2, 2, 0, 0], [2, 4, 2]),
      /rnn \(SimpleRNN\) uses the mask of mask \(Masking\)/,
    ],
  ];

  it.each(cases)(
    '%s: auto = jacobian = finite differences of predict',
    async (_name, build, mk1, mk2, reason) => {
      const model = build();
      randomizeWeights(model, 119, 0.5);
      const [a, b] = [mk1(), mk2()];
      const ref = predictNtk(model, a, b);
      const auto = empiricalNtkFn(model, { progress: false });
      expect(auto.plan.implementation).toBe('jacobian');
      expect(auto.plan.unsupportedLayers.join('; ')).toMatch(reason);
      expect(relMaxError((await auto(a, b)).data, ref)).toBeLessThanOrEqual(PREDICT_TOL);
      const before = tf.memory().numTensors;
      expect(() => empiricalNtkFn(model, { implementation: 'structured' })).toThrow(UnsupportedError);
      expect(() => empiricalNtkFn(model, { implementation: 'structured' })).toThrow(reason);
      // The float64 reference and logits 'pre-activation' run the graph call by call, without masks.
      expect(() => finiteDifferenceNtk(model, a)).toThrow(reason);
      expect(() => empiricalNtkFn(model, { logits: 'pre-activation' })).toThrow(reason);
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([a, b]);
      model.dispose();
    },
  );

  it('a mask only layers that ignore it see (GlobalAveragePooling1D in tfjs) keeps the structured path', async () => {
    const model = seq([embedding(), L.globalAveragePooling1d({}), L.dense({ units: 2 })]);
    randomizeWeights(model, 121, 0.5);
    const [a, b] = [x1(), x2()];
    const fn = empiricalNtkFn(model, { progress: false });
    expect(fn.plan.implementation).toBe('structured');
    expect(relMaxError((await fn(a, b)).data, predictNtk(model, a, b))).toBeLessThanOrEqual(PREDICT_TOL);
    tf.dispose([a, b]);
    model.dispose();
  });
});

describe('DepthwiseConv2D with dilationRate: the undilated convolution tfjs 4.22 runs', () => {
  it.each(['same', 'valid'] as const)(
    "padding '%s': structured = jacobian = float64 reference = finite differences of predict",
    async (padding) => {
      const model = seq([
        L.depthwiseConv2d({
          inputShape: [6, 6, 2],
          kernelSize: 3,
          depthMultiplier: 2,
          dilationRate: 2,
          padding,
          activation: 'tanh',
        }),
        L.flatten(),
        L.dense({ units: 3 }),
      ]);
      randomizeWeights(model, 700, 0.5);
      const [a, b] = [normalPoints(3, [6, 6, 2], 701), normalPoints(2, [6, 6, 2], 702)];
      const ref = predictNtk(model, a, b);
      const structured = empiricalNtkFn(model, { progress: false });
      expect(structured.plan.implementation).toBe('structured');
      expect(relMaxError((await structured(a, b)).data, ref)).toBeLessThanOrEqual(PREDICT_TOL);
      const jacobian = await empiricalNtkFn(model, { implementation: 'jacobian', progress: false })(a, b);
      expect(relMaxError(jacobian.data, ref)).toBeLessThanOrEqual(PREDICT_TOL);
      expect(relMaxError(finiteDifferenceNtk(model, a, b).data, ref)).toBeLessThanOrEqual(PREDICT_TOL);
      tf.dispose([a, b]);
      model.dispose();
    },
  );
});

describe('refused configurations name the layer (and leak nothing)', () => {
  it.each([
    [
      'BatchNormalization axis 1 of a rank-3 input',
      () =>
        seq([
          L.dense({ inputShape: [4, 3], units: 3 }),
          L.batchNormalization({ axis: 1, name: 'bn' }),
          L.flatten(),
          L.dense({ units: 3 }),
        ]),
      [4, 3],
      /layer bn \(BatchNormalization\) normalises axis 1 of a rank-3 input; entk supports BatchNormalization over the last axis only/,
    ],
    [
      'BatchNormalization axis 1 of a rank-4 input',
      () =>
        seq([
          L.conv2d({ inputShape: [4, 4, 2], filters: 3, kernelSize: 2 }),
          L.batchNormalization({ axis: 1, name: 'bn' }),
          L.flatten(),
          L.dense({ units: 3 }),
        ]),
      [4, 4, 2],
      /layer bn \(BatchNormalization\) normalises axis 1 of a rank-4 input/,
    ],
    [
      "Conv1D padding 'causal'",
      () =>
        seq([
          L.conv1d({ inputShape: [6, 2], filters: 3, kernelSize: 2, padding: 'causal', name: 'conv' }),
          L.flatten(),
          L.dense({ units: 3 }),
        ]),
      [6, 2],
      /layer conv \(Conv1D\) has padding 'causal'/,
    ],
  ] as const)('%s', async (_name, build, shape, message) => {
    const model = build();
    const x = normalPoints(2, [...shape], 3);
    const before = tf.memory().numTensors;
    for (const implementation of ['structured', 'jacobian', 'auto'] as const) {
      expect(() => empiricalNtkFn(model, { implementation })).toThrow(UnsupportedError);
      expect(() => empiricalNtkFn(model, { implementation })).toThrow(message);
    }
    expect(() => finiteDifferenceNtk(model, x)).toThrow(message);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    model.dispose();
  });
});

describe('token ids an Embedding cannot look up: one typed error before any work, on every path', () => {
  const embeddingModel = () =>
    seq([
      L.embedding({ inputDim: 5, outputDim: 3, inputLength: 4, name: 'emb' }),
      L.flatten(),
      L.dense({ units: 3 }),
    ]);
  const range = /integer token ids in \[0, 5\) for layer emb \(Embedding\)/;

  it.each([
    ['an id = inputDim', [1, 2, 3, 0, 1, 4, 5, 0], /received "5 at point 1, entry \[2\]"/],
    ['an id above inputDim', [1, 2, 7, 0, 1, 4, 0, 0], /received "7 at point 0, entry \[2\]"/],
    ['a negative id', [1, 2, 3, 0, 1, 4, 0, -1], /received "-1 at point 1, entry \[3\]"/],
    [
      'a fractional id (tfjs would truncate it)',
      [1, 2.5, 3, 0, 1, 4, 0, 0],
      /received "2.5 at point 0, entry \[1\]"/,
    ],
  ] as const)(
    '%s: InvalidArgumentError naming x1, the point, the entry and the layer; no tensor left',
    async (_, values, received) => {
      const model = embeddingModel();
      const x = tf.tensor([...values], [2, 4]);
      const good = tf.tensor([[1, 2, 3, 4]]);
      const before = tf.memory().numTensors;
      for (const implementation of ['structured', 'jacobian'] as const) {
        for (const output of ['full', 'trace', 'diagonal'] as const) {
          const ntk = empiricalNtkFn(model, { implementation, output, progress: false });
          const call = ntk(x);
          await expect(call).rejects.toThrow(InvalidArgumentError);
          await expect(ntk(x)).rejects.toThrow(/^x1: /);
          await expect(ntk(x)).rejects.toThrow(range);
          await expect(ntk(x)).rejects.toThrow(received);
          await ntk.dispose();
          expect(tf.memory().numTensors, `${implementation} ${output}`).toBe(before);
        }
        const ntk = empiricalNtkFn(model, { implementation, progress: false });
        // The second point set and the streamed kernel are checked alike.
        await expect(ntk(good, x)).rejects.toThrow(/^x2: .*for layer emb \(Embedding\)/);
        await expect(ntk.stream(x, null, () => {})).rejects.toThrow(received);
        await expect(
          empiricalNtkFn(model, { implementation, output: 'pairs', progress: false })(x, good, {
            pairs: [[0, 0]],
          }),
        ).rejects.toThrow(received);
        // Raw { data, shape } points, int32 too (an int32 array cannot hold a fraction).
        if (values.every((v) => Number.isInteger(v))) {
          await expect(ntk({ data: Int32Array.from(values), shape: [2, 4] })).rejects.toThrow(received);
        }
        await ntk.dispose();
        expect(tf.memory().numTensors, implementation).toBe(before);
      }
      expect(() => finiteDifferenceNtk(model, x)).toThrow(received);
      // The model's logits alone (both kinds), also inside a tidy.
      for (const kind of ['output', 'pre-activation'] as const) {
        expect(() => modelLogits(model, x, kind)).toThrow(received);
        expect(() => tf.tidy(() => modelLogits(model, x, kind))).toThrow(/^x: expected integer token ids/);
      }
      expect(tf.memory().numTensors).toBe(before);
      // Valid ids: the edges 0 and inputDim − 1 are accepted.
      const edges = tf.tensor([[0, 4, 4, 0]]);
      const k = await empiricalNtkFn(model, { progress: false })(edges);
      expect(k.data.length).toBe(9);
      tf.dispose([x, good, edges]);
      model.dispose();
    },
  );

  it('ids reaching the Embedding through reshapes and a nested model: the entry named in input coordinates', async () => {
    const inner = seq([L.embedding({ inputDim: 5, outputDim: 2, inputLength: 4, name: 'emb' }), L.flatten()]);
    const input = tf.input({ shape: [2, 2] });
    const flat = L.reshape({ targetShape: [4] }).apply(
      L.dropout({ rate: 0.5 }).apply(input),
    ) as tf.SymbolicTensor;
    const model = tf.model({
      inputs: input,
      outputs: L.dense({ units: 2 }).apply(inner.apply(flat)) as tf.SymbolicTensor,
    });
    const x = tf.tensor([1, 2, 3, 4, 0, 1, 9, 2], [2, 2, 2]);
    const before = tf.memory().numTensors;
    for (const implementation of ['structured', 'jacobian'] as const) {
      await expect(empiricalNtkFn(model, { implementation, progress: false })(x)).rejects.toThrow(
        'x1: expected integer token ids in [0, 5) for layer emb (Embedding), received "9 at point 1, entry [1, 0]"',
      );
    }
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    model.dispose();
  });

  it('a graph entk cannot run call by call (a nested model of two inputs): the Embedding on the input is still checked', async () => {
    const a = tf.input({ shape: [6] });
    const b = tf.input({ shape: [6] });
    const pair = tf.model({ inputs: [a, b], outputs: L.multiply().apply([a, b]) as tf.SymbolicTensor });
    const input = tf.input({ shape: [3] });
    const e = L.flatten().apply(
      L.embedding({ inputDim: 4, outputDim: 2, name: 'emb' }).apply(input),
    ) as tf.SymbolicTensor;
    const model = tf.model({
      inputs: input,
      outputs: L.dense({ units: 2 }).apply(pair.apply([e, e]) as tf.SymbolicTensor) as tf.SymbolicTensor,
    });
    const ntk = empiricalNtkFn(model, { progress: false });
    expect(ntk.plan.implementation).toBe('jacobian');
    const x = tf.tensor([[0, 3, 4]]);
    const before = tf.memory().numTensors;
    await expect(ntk(x)).rejects.toThrow(
      'x1: expected integer token ids in [0, 4) for layer emb (Embedding), received "4 at point 0, entry [2]"',
    );
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    model.dispose();
  });

  it('the same with the Embedding inside a nested Sequential (no graph): checked, not truncated', async () => {
    const a = tf.input({ shape: [6] });
    const b = tf.input({ shape: [6] });
    const pair = tf.model({ inputs: [a, b], outputs: L.multiply().apply([a, b]) as tf.SymbolicTensor });
    const embed = tf.sequential({
      layers: [L.embedding({ inputDim: 4, outputDim: 2, inputLength: 3, name: 'emb' }), L.flatten()],
    });
    const input = tf.input({ shape: [3] });
    const e = embed.apply(input) as tf.SymbolicTensor;
    const model = tf.model({
      inputs: input,
      outputs: L.dense({ units: 2 }).apply(pair.apply([e, e]) as tf.SymbolicTensor) as tf.SymbolicTensor,
    });
    const ntk = empiricalNtkFn(model, { progress: false });
    expect(ntk.plan.implementation).toBe('jacobian');
    const before = tf.memory().numTensors;
    for (const [values, received] of [
      [[0, 3, 4], '4 at point 0, entry [2]'],
      [[0, 3, 1.5], '1.5 at point 0, entry [2]'],
    ] as const) {
      const x = tf.tensor([values as unknown as number[]]);
      await expect(ntk(x)).rejects.toThrow(
        `x1: expected integer token ids in [0, 4) for layer emb (Embedding), received "${received}"`,
      );
      x.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it("entk's transformer: the ids half of the input is checked against the vocabulary, the mask half is not", async () => {
    const spec = { ...TINY_PRE, maxLength: 3, vocabSize: 7 };
    const model = buildModel(spec, { inputShape: [6], numClasses: 2, seed: 1 });
    const ok = tf.tensor([[2, 6, 0, 1, 1, 0]]);
    const bad = tf.tensor([2, 3, 0, 1, 1, 0, 2, 7, 1, 1, 1, 1], [2, 6]);
    const before = tf.memory().numTensors;
    for (const implementation of ['structured', 'jacobian'] as const) {
      const ntk = empiricalNtkFn(model, { implementation, progress: false });
      expect((await ntk(ok)).data.length).toBe(4);
      await expect(ntk(bad)).rejects.toThrow(
        'x1: expected integer token ids in [0, 7) for layer embeddings/word (Embedding), received "7 at point 1, entry [1]"',
      );
      await ntk.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([ok, bad]);
    model.dispose();
  });
});

describe('finite-difference reference: ReLU({maxValue})', () => {
  it('= finite differences of predict and the Jacobian path', async () => {
    const model = seq([
      L.dense({ inputShape: [4], units: 6 }),
      L.reLU({ maxValue: 0.5 }),
      L.dense({ units: 3 }),
    ]);
    randomizeWeights(model, 95, 0.8);
    const [a, b] = [normalPoints(3, [4], 96), normalPoints(2, [4], 97)];
    // Some units above the cap, some in (0, 0.5), some below 0 (each clip branch is exercised).
    const hidden = tf.tidy(() => Array.from((model.layers[0]!.apply(a) as tf.Tensor).dataSync()));
    expect(hidden.some((v) => v > 0.55)).toBe(true);
    expect(hidden.some((v) => v > 0.05 && v < 0.45)).toBe(true);
    const ref = predictNtk(model, a, b);
    expect(relMaxError(finiteDifferenceNtk(model, a, b).data, ref)).toBeLessThanOrEqual(PREDICT_TOL);
    const kj = await empiricalNtkFn(model, { implementation: 'jacobian', progress: false })(a, b);
    expect(relMaxError(kj.data, finiteDifferenceNtk(model, a, b).data)).toBeLessThanOrEqual(1e-5);
    tf.dispose([a, b]);
    model.dispose();
  });
});

describe('a dilated convolution that is not selected', () => {
  // tfjs has no gradient for dilated convolutions: the structured path differentiates a selected one
  // itself, but gradients flowing through an unselected one would need tfjs's.
  const net = () => {
    const x = tf.input({ shape: [6, 6, 2] });
    const a = L.conv2d({ filters: 2, kernelSize: 2, padding: 'same', name: 'a' }).apply(
      x,
    ) as tf.SymbolicTensor;
    const b = L.conv2d({ filters: 2, kernelSize: 2, dilationRate: 2, padding: 'same', name: 'b' }).apply(
      a,
    ) as tf.SymbolicTensor;
    const d = L.dense({ units: 3, name: 'd' }).apply(
      L.flatten().apply(b) as tf.SymbolicTensor,
    ) as tf.SymbolicTensor;
    const model = tf.model({ inputs: x, outputs: d });
    randomizeWeights(model, 31, 0.5);
    return model;
  };

  it('after a selected layer (gradients flow through it): refused by name, no tensor left', () => {
    const model = net();
    const x = normalPoints(2, [6, 6, 2], 32);
    const before = tf.memory().numTensors;
    try {
      const make = () => empiricalNtkFn(model, { progress: false, parameters: ['a', 'd'] });
      expect(make).toThrow(UnsupportedError);
      expect(make).toThrow(/layer 'b' \(Conv2D\) has dilationRate/);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      model.dispose();
      x.dispose();
    }
  });

  it('before every selected layer (no gradient through it): runs, = float64 finite differences (≤ 1e-5)', async () => {
    const model = net();
    const x = normalPoints(2, [6, 6, 2], 33);
    try {
      const k = await empiricalNtkFn(model, { progress: false, parameters: ['d'] })(x);
      expect(
        relMaxError(k.data, finiteDifferenceNtk(model, x, null, { parameters: ['d'] }).data),
      ).toBeLessThanOrEqual(1e-5);
      const j = await empiricalNtkFn(model, {
        progress: false,
        parameters: ['d'],
        implementation: 'jacobian',
      })(x);
      expect(relMaxError(j.data, k.data)).toBeLessThanOrEqual(1e-5);
    } finally {
      model.dispose();
      x.dispose();
    }
  });
});
