/**
 * The eNTK of the project's own models (src/model buildModel presets, small widths), of functional
 * and nested tfjs models, the 'auto' fallback for layers outside the structured path, and the
 * errors bad arguments get.
 *
 * Tolerance rule (as in correctness.test.ts): relative max error max|K − Kref| / max|Kref| ≤ 1e-5
 * for float32 results against the float64 finite-difference reference.
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, UnsupportedError } from '../../src/errors.js';
import { empiricalNtkFn, finiteDifferenceNtk, modelLogits } from '../../src/kernel/index.js';
import { buildModel, type ModelSpec } from '../../src/model/index.js';
import { normalPoints, randomizeWeights, relMaxError } from './helpers.js';

const TOL = 1e-5;

describe('buildModel presets', () => {
  const cases: Array<[string, ModelSpec, number[]]> = [
    [
      'mlp standard relu',
      { kind: 'mlp', widths: [12, 10], activation: 'relu', parameterization: 'standard' },
      [6],
    ],
    ['mlp ntk erf', { kind: 'mlp', widths: [12, 10], activation: 'erf', parameterization: 'ntk' }, [6]],
    [
      'mlp ntk gelu + output scale',
      { kind: 'mlp', widths: [9], activation: 'gelu', parameterization: 'ntk', outputScale: 0.3 },
      [6],
    ],
    ['linear', { kind: 'linear' }, [6]],
    ['cnn', { kind: 'cnn', filters: [2, 3], dense: [5], activation: 'relu' }, [8, 8, 1]],
  ];
  it.each(cases)('%s: structured = jacobian = finite differences', async (_name, spec, inputShape) => {
    const model = buildModel(spec, { inputShape, numClasses: 3, seed: 9 });
    // Non-zero biases so that every term is exercised.
    randomizeWeights(model, 19, spec.kind === 'mlp' && spec.parameterization === 'ntk' ? 1 : 0.4);
    const x1 = normalPoints(3, inputShape, 91);
    const x2 = normalPoints(2, inputShape, 92);
    const ref = finiteDifferenceNtk(model, x1, x2);
    const structured = empiricalNtkFn(model, { progress: false });
    expect(structured.plan.implementation).toBe('structured');
    const ks = await structured(x1, x2);
    const kj = await empiricalNtkFn(model, { implementation: 'jacobian', progress: false })(x1, x2);
    expect(relMaxError(ks.data, ref.data)).toBeLessThanOrEqual(TOL);
    expect(relMaxError(kj.data, ref.data)).toBeLessThanOrEqual(TOL);
    expect(ks.parameterCount).toBe(model.countParams());
    tf.dispose([x1, x2]);
    model.dispose();
  });

  it('the MLP plan: factored hidden layers and a closed-form (identity) head', () => {
    const model = buildModel(
      { kind: 'mlp', widths: [8, 8], activation: 'relu', parameterization: 'standard' },
      { inputShape: [4], numClasses: 3, seed: 1 },
    );
    expect(empiricalNtkFn(model).plan.terms).toEqual([
      { layer: 'dense_1', kind: 'factored', width: 8 },
      { layer: 'dense_2', kind: 'factored', width: 8 },
      { layer: 'logits', kind: 'identity', width: 8 },
    ]);
    model.dispose();
  });
});

describe('other tfjs models', () => {
  it('a functional chain and a nested Sequential use the structured path', async () => {
    const input = tf.input({ shape: [5] });
    const h = tf.layers.dense({ units: 6, activation: 'tanh' }).apply(input) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 3 }).apply(h) as tf.SymbolicTensor;
    const functional = tf.model({ inputs: input, outputs: out });
    const inner = tf.sequential({
      layers: [tf.layers.dense({ inputShape: [5], units: 4, activation: 'relu' })],
    });
    const nested = tf.sequential({ layers: [inner, tf.layers.dense({ units: 3 })] });
    for (const model of [functional, nested]) {
      randomizeWeights(model, 5);
      const x = normalPoints(3, [5], 93);
      const fn = empiricalNtkFn(model, { progress: false });
      expect(fn.plan.implementation).toBe('structured');
      const k = await fn(x);
      expect(relMaxError(k.data, finiteDifferenceNtk(model, x).data)).toBeLessThanOrEqual(TOL);
      x.dispose();
    }
  });

  it('a parameterised layer without a rule is differentiated alone by autodiff (hybrid); a subset leaves it a function', async () => {
    // Conv2DTranspose has no structured rule: its per-example Jacobian comes from autodiff of the
    // layer alone while the dense layers stay structured.
    const model = tf.sequential({
      layers: [
        tf.layers.reshape({ inputShape: [4], targetShape: [2, 2, 1] }),
        tf.layers.conv2dTranspose({ filters: 2, kernelSize: 2, strides: 1, padding: 'valid' }),
        tf.layers.flatten(),
        tf.layers.activation({ activation: 'tanh' }),
        tf.layers.dense({ units: 3 }),
      ],
    });
    randomizeWeights(model, 6);
    const x = normalPoints(3, [4], 94);
    const auto = empiricalNtkFn(model, { progress: false });
    expect(auto.plan.implementation).toBe('structured');
    expect(auto.plan.unsupportedLayers).toEqual([]);
    expect(auto.plan.rules.map((r) => [r.className, r.rule])).toEqual([
      ['Conv2DTranspose', 'autodiff'],
      ['Dense', 'dense-identity'],
    ]);
    const kAuto = await auto(x);
    const kj = await empiricalNtkFn(model, { implementation: 'jacobian', progress: false })(x);
    expect(kj.rules.every((r) => r.rule === 'jacobian')).toBe(true);
    expect(relMaxError(kAuto.data, kj.data)).toBeLessThanOrEqual(TOL);
    // Excluding the layer's parameters makes it a plain function; both paths agree on the subset.
    const subset = [model.layers[4]!.name];
    const ks = await empiricalNtkFn(model, { parameters: subset, progress: false })(x);
    const kjs = await empiricalNtkFn(model, {
      parameters: subset,
      implementation: 'jacobian',
      progress: false,
    })(x);
    expect(ks.rules.map((r) => r.rule)).toEqual(['dense-identity']);
    expect(relMaxError(ks.data, kjs.data)).toBeLessThanOrEqual(TOL);
    // The full-parameter kernel is larger than the subset one by a PSD term: check its trace grows.
    let traceAll = 0;
    let traceSub = 0;
    for (let e = 0; e < 9; e++) {
      traceAll += kAuto.data[e * 9 + e]!;
      traceSub += ks.data[e * 9 + e]!;
    }
    expect(traceAll).toBeGreaterThan(traceSub);
    x.dispose();
  });

  it('a residual connection: structured = jacobian = closed form', async () => {
    const input = tf.input({ shape: [4] });
    const a = tf.layers.dense({ units: 4, activation: 'tanh' }).apply(input) as tf.SymbolicTensor;
    const sum = tf.layers.add().apply([input, a]) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 2 }).apply(sum) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    randomizeWeights(model, 8);
    const fn = empiricalNtkFn(model, { progress: false });
    expect(fn.plan.implementation).toBe('structured');
    const x = normalPoints(3, [4], 95);
    const k = await fn(x);
    const kj = await empiricalNtkFn(model, { implementation: 'jacobian', progress: false })(x);
    // Reference (the float64 reference forward pass has no Add layer): the closed form of
    // f(x) = W2ᵀ s + b2 with s = x + h, h = tanh(W1ᵀ x + b1) (tfjs kernels are [in, out]):
    //   K_ij(x, x′) = (⟨s, s′⟩ + 1) δ_ij + (⟨x, x′⟩ + 1) Σ_k W2[k,i] W2[k,j] (1 − h_k²)(1 − h′_k²).
    const [d1, d2] = model.layers.filter((l) => l.getClassName() === 'Dense');
    const [W1, b1] = d1!.getWeights().map((w) => Array.from(w.dataSync()));
    const W2 = Array.from(d2!.getWeights()[0]!.dataSync());
    const xs = x.arraySync() as number[][];
    const hs = xs.map((p) =>
      Array.from({ length: 4 }, (_, c) =>
        Math.tanh(p.reduce((acc, v, m) => acc + v * W1![m * 4 + c]!, b1![c]!)),
      ),
    );
    const dotp = (u: number[], v: number[]) => u.reduce((acc, e, i) => acc + e * v[i]!, 0);
    const ref = new Float64Array(36);
    for (let n = 0; n < 3; n++) {
      for (let m = 0; m < 3; m++) {
        const sn = xs[n]!.map((v, c) => v + hs[n]![c]!);
        const sm = xs[m]!.map((v, c) => v + hs[m]![c]!);
        for (let i = 0; i < 2; i++) {
          for (let j = 0; j < 2; j++) {
            let hidden = 0;
            for (let c = 0; c < 4; c++)
              hidden += W2[c * 2 + i]! * W2[c * 2 + j]! * (1 - hs[n]![c]! ** 2) * (1 - hs[m]![c]! ** 2);
            ref[(n * 2 + i) * 6 + m * 2 + j] =
              (i === j ? dotp(sn, sm) + 1 : 0) + (dotp(xs[n]!, xs[m]!) + 1) * hidden;
          }
        }
      }
    }
    expect(relMaxError(k.data, ref)).toBeLessThanOrEqual(TOL);
    expect(relMaxError(kj.data, ref)).toBeLessThanOrEqual(TOL);
    // The symmetric kernel is mirrored: exactly symmetric.
    for (let p = 0; p < 6; p++) for (let q = 0; q < 6; q++) expect(k.data[p * 6 + q]).toBe(k.data[q * 6 + p]);
    x.dispose();
  });
});

describe('output layer check: the kernel is of logits', () => {
  type Head =
    | 'dense-softmax'
    | 'activation-sigmoid'
    | 'softmax-layer'
    | 'dense-softmax-dropout-reshape'
    | 'activation-softmax-linear'
    | 'softmax-layer-flatten'
    | 'linear';
  const build = (head: Head) => {
    const L = tf.layers;
    const input = tf.input({ shape: [4] });
    const h = L.dense({ units: 5, activation: 'tanh', name: 'h' }).apply(input) as tf.SymbolicTensor;
    const fused = head === 'dense-softmax' || head === 'dense-softmax-dropout-reshape';
    let out = L.dense({ units: 3, activation: fused ? 'softmax' : 'linear', name: 'z' }).apply(
      h,
    ) as tf.SymbolicTensor;
    // Parameter-free layers after z (the softmax/sigmoid, then layers that keep values).
    const tail: Record<Head, tf.layers.Layer[]> = {
      'dense-softmax': [],
      'activation-sigmoid': [L.activation({ activation: 'sigmoid', name: 'sig' })],
      'softmax-layer': [L.softmax({ name: 'sm' })],
      'dense-softmax-dropout-reshape': [
        L.dropout({ rate: 0.3, name: 'drop' }),
        L.reshape({ targetShape: [3], name: 'reshape' }),
      ],
      'activation-softmax-linear': [
        L.activation({ activation: 'softmax', name: 'act' }),
        L.activation({ activation: 'linear', name: 'lin' }),
      ],
      'softmax-layer-flatten': [
        L.softmax({ name: 'sm' }),
        L.reshape({ targetShape: [3, 1], name: 'column' }),
        L.flatten({ name: 'flat' }),
      ],
      linear: [],
    };
    for (const layer of tail[head]) out = layer.apply(out) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    randomizeWeights(model, 12);
    return model;
  };

  it.each([
    [
      'dense-softmax',
      /output layer z \(Dense\) applies softmax, so the model outputs probabilities/,
      /^z \(Dense\)/,
    ],
    [
      'activation-sigmoid',
      /output layer sig \(Activation\) applies sigmoid, so the model outputs probabilities/,
      /^sig \(Activation\)/,
    ],
    [
      'softmax-layer',
      /output layer sm \(Softmax\) applies softmax, so the model outputs probabilities/,
      /^sm \(Softmax\)/,
    ],
    [
      'dense-softmax-dropout-reshape',
      /layer z \(Dense\) applies softmax and the layers after it \(drop \(Dropout\), reshape \(Reshape\)\) keep its values, so the model outputs probabilities/,
      /^z \(Dense\)/,
    ],
    [
      'activation-softmax-linear',
      /layer act \(Activation\) applies softmax and the layers after it \(lin \(Activation\)\) keep its values/,
      /^act \(Activation\)/,
    ],
    [
      'softmax-layer-flatten',
      /layer sm \(Softmax\) applies softmax and the layers after it \(column \(Reshape\), flat \(Flatten\)\) keep its values/,
      /^sm \(Softmax\)/,
    ],
  ] as const)(
    '%s: refused by default; pre-activation = the linear-head kernel',
    async (head, message, stripped) => {
      const model = build(head);
      for (const implementation of ['structured', 'jacobian', 'auto'] as const) {
        expect(() => empiricalNtkFn(model, { implementation })).toThrow(UnsupportedError);
        expect(() => empiricalNtkFn(model, { implementation })).toThrow(message);
      }
      expect(() => finiteDifferenceNtk(model, normalPoints(1, [4], 1))).toThrow(message);
      expect(() => empiricalNtkFn(model, { logits: 'probabilities' as never })).toThrow(InvalidArgumentError);
      // The same weights with a linear head.
      const linear = build('linear');
      linear.setWeights(model.getWeights());
      const x = normalPoints(3, [4], 97);
      const ref = finiteDifferenceNtk(linear, x);
      expect(
        relMaxError(finiteDifferenceNtk(model, x, null, { logits: 'pre-activation' }).data, ref.data),
      ).toBeLessThan(1e-9);
      for (const implementation of ['structured', 'jacobian'] as const) {
        const fn = empiricalNtkFn(model, { implementation, logits: 'pre-activation', progress: false });
        expect(fn.plan.strippedOutput).toMatch(stripped);
        expect(relMaxError((await fn(x)).data, ref.data), implementation).toBeLessThanOrEqual(TOL);
      }
      const before = tf.memory().numTensors;
      const pre = modelLogits(model, x, 'pre-activation');
      const expected = linear.predict(x) as tf.Tensor;
      expect(relMaxError(pre.dataSync(), expected.dataSync())).toBeLessThanOrEqual(1e-6);
      tf.dispose([pre, expected]);
      expect(tf.memory().numTensors).toBe(before);
      x.dispose();
      model.dispose();
      linear.dispose();
    },
  );
});

describe('output layer check: probabilities merged into the output are not logits', () => {
  const L = tf.layers;
  type S = tf.SymbolicTensor;
  /** input [4] → h (Dense tanh) → the head built by `head` from h. */
  const build = (head: (h: S) => S, name = 'merged') => {
    const input = tf.input({ shape: [4] });
    const h = L.dense({ units: 5, activation: 'tanh', name: 'h' }).apply(input) as S;
    const model = tf.model({ inputs: input, outputs: head(h), name });
    randomizeWeights(model, 13);
    return model;
  };
  const dense = (units: number, activation: 'linear' | 'sigmoid' | 'softmax', name: string) => (x: S) =>
    L.dense({ units, activation, name }).apply(x) as S;

  it.each([
    [
      'the product of two sigmoid heads',
      (h: S) =>
        L.multiply({ name: 'both' }).apply([dense(3, 'sigmoid', 'p')(h), dense(3, 'sigmoid', 'q')(h)]) as S,
      'layer p (Dense) applies sigmoid and the layers after it (both (Multiply)) compute the output from its values through the merge both (Multiply)',
    ],
    [
      'a Sigmoid Activation times itself, then Dropout and Reshape',
      (h: S) => {
        const z = dense(3, 'linear', 'z')(h);
        const p = L.activation({ activation: 'sigmoid', name: 'sig' }).apply(z) as S;
        const m = L.multiply({ name: 'square' }).apply([p, p]) as S;
        return L.reshape({ targetShape: [3], name: 'reshape' }).apply(
          L.dropout({ rate: 0.2, name: 'drop' }).apply(m),
        ) as S;
      },
      'layer sig (Activation) applies sigmoid and the layers after it (square (Multiply), drop (Dropout), reshape (Reshape)) compute the output from its values through the merge square (Multiply)',
    ],
    [
      'the Average of two softmax heads',
      (h: S) =>
        L.average({ name: 'avg' }).apply([dense(3, 'softmax', 'a')(h), dense(3, 'softmax', 'b')(h)]) as S,
      'layer a (Dense) applies softmax and the layers after it (avg (Average)) compute the output from its values through the merge avg (Average)',
    ],
    [
      'a Softmax layer concatenated with logits',
      (h: S) =>
        L.concatenate({ name: 'cat' }).apply([
          dense(2, 'linear', 'z')(h),
          L.softmax({ name: 'sm' }).apply(dense(2, 'linear', 'y')(h)) as S,
        ]) as S,
      'layer sm (Softmax) applies softmax and the layers after it (cat (Concatenate)) compute the output from its values through the merge cat (Concatenate)',
    ],
  ] as const)('%s: refused by name with either logits option, on every path', (_, head, message) => {
    const model = build(head);
    const x = normalPoints(2, [4], 98);
    const before = tf.memory().numTensors;
    for (const logits of ['output', 'pre-activation'] as const) {
      for (const implementation of ['structured', 'jacobian', 'auto'] as const) {
        expect(() => empiricalNtkFn(model, { implementation, logits })).toThrow(UnsupportedError);
        expect(() => empiricalNtkFn(model, { implementation, logits })).toThrow(`model merged: ${message}`);
      }
      expect(() => finiteDifferenceNtk(model, x, null, { logits })).toThrow(message);
      expect(() => modelLogits(model, x, 'pre-activation')).toThrow(message);
    }
    expect(() => empiricalNtkFn(model)).toThrow(
      /so the outputs are not logits.*pass a model whose output is the logits$/,
    );
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    model.dispose();
  });

  it('a model entk cannot run call by call (a nested model of two inputs) is checked on its own layers', () => {
    const a = tf.input({ shape: [5] });
    const b = tf.input({ shape: [5] });
    const pair = tf.model({ inputs: [a, b], outputs: L.add().apply([a, b]) as S, name: 'pair' });
    const model = build((h) => {
      const mixed = pair.apply([h, h]) as S;
      return L.average({ name: 'avg' }).apply([
        dense(3, 'sigmoid', 'p')(mixed),
        dense(3, 'sigmoid', 'q')(mixed),
      ]) as S;
    });
    for (const logits of ['output', 'pre-activation'] as const) {
      expect(() => empiricalNtkFn(model, { implementation: 'jacobian', logits })).toThrow(
        'layer p (Dense) applies sigmoid and the layers after it (avg (Average)) compute the output from its values through the merge avg (Average)',
      );
    }
    model.dispose();
  });

  it.each([
    [
      'a gated linear unit (sigmoid gate × linear logits)',
      (h: S) =>
        L.multiply({ name: 'glu' }).apply([dense(3, 'sigmoid', 'p')(h), dense(3, 'linear', 'z')(h)]) as S,
    ],
    [
      'a mixture of experts (softmax gate · expert logits)',
      (h: S) => {
        const gate = dense(2, 'softmax', 'gate')(h);
        const experts = L.reshape({ targetShape: [2, 3] }).apply(dense(6, 'linear', 'experts')(h)) as S;
        return L.dot({ axes: [1, 1], name: 'mix' }).apply([gate, experts]) as S;
      },
    ],
    [
      'logits plus a sigmoid head',
      (h: S) => L.add().apply([dense(3, 'linear', 'z')(h), dense(3, 'sigmoid', 'p')(h)]) as S,
    ],
  ] as const)(
    "%s: the model's own outputs, accepted: = finite differences (Dot: the Jacobian path)",
    async (_, head) => {
      const model = build(head);
      const x = normalPoints(3, [4], 97);
      // The float64 finite-difference reference has no Dot layer: the whole-model Jacobian (tfjs
      // autodiff) is the independent reference there.
      const hasDot = model.layers.some((l) => l.getClassName() === 'Dot');
      const ref = hasDot
        ? await empiricalNtkFn(model, { implementation: 'jacobian', progress: false })(x)
        : finiteDifferenceNtk(model, x);
      for (const implementation of hasDot
        ? (['structured'] as const)
        : (['structured', 'jacobian'] as const)) {
        const fn = empiricalNtkFn(model, { implementation, progress: false });
        expect(fn.plan.implementation).toBe(implementation);
        expect(fn.plan.strippedOutput).toBeNull();
        expect(relMaxError((await fn(x)).data, ref.data), implementation).toBeLessThanOrEqual(TOL);
      }
      x.dispose();
      model.dispose();
    },
  );

  it('a sigmoid gate inside the network (a Dense after the merge) is not the output: = finite differences', async () => {
    const model = build((h) => {
      const g = L.multiply({ name: 'gate' }).apply([dense(5, 'sigmoid', 'p')(h), h]) as S;
      return dense(3, 'linear', 'out')(g);
    });
    const x = normalPoints(3, [4], 99);
    const ref = finiteDifferenceNtk(model, x);
    for (const implementation of ['structured', 'jacobian'] as const) {
      const fn = empiricalNtkFn(model, { implementation, progress: false });
      expect(fn.plan.strippedOutput).toBeNull();
      expect(relMaxError((await fn(x)).data, ref.data), implementation).toBeLessThanOrEqual(TOL);
    }
    x.dispose();
    model.dispose();
  });
});

describe('errors', () => {
  const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 2 })] });
  const x = normalPoints(2, [3], 96);

  it.each([
    [{ output: 'everything' }, /output: expected one of full, diagonal, trace, pairs/],
    [{ implementation: 'fast' }, /implementation: expected one of structured, jacobian, auto/],
    [{ accumulation: 'float16' }, /accumulation/],
    [{ blockSize: 0 }, /blockSize: expected an integer >= 1/],
    [{ threads: 0 }, /threads/],
    [{ memoryBudget: 10 }, /memoryBudget/],
    [{ parameters: ['nope'] }, /parameters: expected names of layers of the model/],
    [{ parameters: [] }, /parameters/],
  ])('bad option %j', (options, message) => {
    expect(() => empiricalNtkFn(model, options as never)).toThrow(InvalidArgumentError);
    expect(() => empiricalNtkFn(model, options as never)).toThrow(message);
  });

  it('bad inputs name the argument, the value and what was expected', async () => {
    const ntk = empiricalNtkFn(model, { progress: false });
    await expect(ntk(tf.zeros([2, 4]))).rejects.toThrow(
      /x1: expected shape \[n, 3\] with n >= 1, received "shape \[2, 4\]"/,
    );
    await expect(ntk(x, { data: new Float32Array([1, 2, Number.NaN]), shape: [1, 3] })).rejects.toThrow(
      /x2: expected finite values/,
    );
    await expect(ntk({ data: new Float32Array(5), shape: [2, 3] })).rejects.toThrow(
      /x1.data: expected 6 values/,
    );
    const pairs = empiricalNtkFn(model, { output: 'pairs', progress: false });
    await expect(pairs(x)).rejects.toThrow(/pairs: expected a list of \[row, column\] point pairs/);
    await expect(pairs(x, null, { pairs: [[0, 2]] })).rejects.toThrow(
      /pairs\[0\]\[1\]: expected a column point index in \[0, 2\)/,
    );
    const diag = empiricalNtkFn(model, { output: 'diagonal', progress: false });
    await expect(diag(x, x)).rejects.toThrow(/x2/);
    await expect(diag.stream(x, null, () => undefined)).rejects.toThrow(/output/);
  });

  it('models that are not classifiers with [batch, V] logits are rejected', () => {
    const seqOut = tf.sequential({
      layers: [tf.layers.dense({ inputShape: [4, 3], units: 2 })],
    });
    expect(() => empiricalNtkFn(seqOut)).toThrow(/output shape \[null, 4, 2\]/);
  });
});
