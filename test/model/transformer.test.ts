/**
 * entk's transformer classifier (src/model/transformer.ts): layer names (the contract the BERT
 * importer maps weights by), forward pass and attention core against a float64 plain-loop
 * re-implementation, padding invariance, save/load round trip, determinism per seed, bad specs.
 */
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import {
  attentionCore,
  buildModel,
  fileSystemHandler,
  loadModel,
  MODEL_PRESETS,
  resolveModelSpec,
  saveModel,
  type TransformerSpec,
  transformerParameterCount,
} from '../../src/model/index.js';
import { Rng } from '../../src/util/rng.js';
import { randomizeWeights, relMaxError } from '../kernel/helpers.js';
import { tempDir } from '../util/temp-dir.js';
import { repad, TINY_POST, TINY_PRE, tokenBatch } from './transformer-fixtures.js';
import { attention64, transformer64, weights64 } from './transformer64.js';

const root = tempDir('model-transformer');

let before = 0;
beforeEach(() => {
  before = tf.memory().numTensors;
});
afterEach(() => {
  expect(tf.memory().numTensors).toBe(before);
});

/** float32 vs float64: the project's tolerance for any float32 computation against a float64 reference. */
const TOL = 1e-5;

function logits(model: tf.LayersModel, x: Float32Array): Float32Array {
  return tf.tidy(
    () =>
      (
        model.predict(
          tf.tensor(x, [x.length / model.inputs[0]!.shape[1]!, model.inputs[0]!.shape[1]!]),
        ) as tf.Tensor
      ).dataSync() as Float32Array,
  );
}

function build(spec: TransformerSpec, seed = 0, V = 3): tf.LayersModel {
  return buildModel(spec, { inputShape: [2 * spec.maxLength], numClasses: V, seed });
}

describe('transformer model', () => {
  it('transformer-tiny: the documented layer names, classes and parameter count', () => {
    const spec = resolveModelSpec('transformer-tiny') as TransformerSpec;
    expect(spec).toMatchObject({ layers: 2, width: 64, heads: 4, mlpRatio: 4, maxLength: 32, norm: 'post' });
    const model = buildModel(spec, { inputShape: [64], numClasses: 3, seed: 0, vocabSize: 950 });
    const names = model.layers.map((l) => `${l.name}:${l.getClassName()}`).sort();
    const block = (i: number) => [
      `block${i}/attention/query:Dense`,
      `block${i}/attention/key:Dense`,
      `block${i}/attention/value:Dense`,
      `block${i}/attention/core:AttentionCore`,
      `block${i}/attention/output:Dense`,
      `block${i}/attention/residual:Add`,
      `block${i}/attention/norm:LayerNormalization`,
      `block${i}/mlp/dense1:Dense`,
      `block${i}/mlp/gelu:Activation`,
      `block${i}/mlp/dense2:Dense`,
      `block${i}/mlp/residual:Add`,
      `block${i}/mlp/norm:LayerNormalization`,
    ];
    expect(names).toEqual(
      [
        'tokens:InputLayer',
        'inputs/ids:TokenInputs',
        'inputs/mask:TokenInputs',
        'inputs/positions:TokenInputs',
        'inputs/types:TokenInputs',
        'embeddings/word:Embedding',
        'embeddings/position:Embedding',
        'embeddings/token_type:Embedding',
        'embeddings/sum:Add',
        'embeddings/norm:LayerNormalization',
        ...block(0),
        ...block(1),
        'pool:SequencePooling',
        'head:Dense',
      ].sort(),
    );
    expect(model.getLayer('embeddings/word').getWeights()[0]!.shape).toEqual([950, 64]);
    expect(model.getLayer('block1/mlp/dense1').getWeights()[0]!.shape).toEqual([64, 256]);
    expect(model.getLayer('head').getWeights()[0]!.shape).toEqual([64, 3]);
    expect(model.getLayer('block0/mlp/gelu').getConfig().activation).toBe('gelu');
    expect(model.countParams()).toBe(transformerParameterCount(spec, 950, 3));
    expect(model.countParams()).toBe(163267);
    model.dispose();
  });

  it('every transformer preset builds and maps [n, 2L] to logits [n, V]', () => {
    for (const [name, preset] of Object.entries(MODEL_PRESETS)) {
      if (preset.kind !== 'transformer') continue;
      const model = buildModel(preset, {
        inputShape: [2 * preset.maxLength],
        numClasses: 4,
        seed: 1,
        vocabSize: 50,
      });
      const y = logits(model, tokenBatch(3, preset.maxLength, 50, 7));
      expect(y.length, name).toBe(12);
      expect(y.every(Number.isFinite), name).toBe(true);
      expect(model.countParams(), name).toBe(transformerParameterCount(preset, 50, 4));
      model.dispose();
    }
  });

  it.each([
    ['post-LN, CLS, token types, pooler', TINY_POST],
    ['pre-LN, masked mean', TINY_PRE],
  ])('forward pass (%s) = the float64 plain-loop transformer (rel. max ≤ 1e-5)', (_, spec) => {
    const model = build(spec, 4);
    randomizeWeights(model, 11, 0.5);
    const x = tokenBatch(5, spec.maxLength, spec.vocabSize!, 3);
    const ref = transformer64(spec, weights64(model), x, 5);
    expect(relMaxError(logits(model, x), ref)).toBeLessThanOrEqual(TOL);
    model.dispose();
  });

  it('attention core = the float64 plain loop (rel. max ≤ 1e-5), padding keys get weight 0', () => {
    const [n, L, W, heads] = [3, 7, 12, 3];
    const rng = new Rng(5);
    const q = rng.normalArray(n * L * W);
    const k = rng.normalArray(n * L * W);
    const v = rng.normalArray(n * L * W);
    const mask = Float32Array.from({ length: n * L }, (_, i) =>
      i % L < 3 + (Math.floor(i / L) % 3) * 2 ? 1 : 0,
    );
    const out = tf.tidy(
      () =>
        attentionCore(
          tf.tensor(q, [n, L, W]),
          tf.tensor(k, [n, L, W]),
          tf.tensor(v, [n, L, W]),
          tf.tensor(mask, [n, L]),
          heads,
        ).dataSync() as Float32Array,
    );
    const ref = attention64(
      Float64Array.from(q),
      Float64Array.from(k),
      Float64Array.from(v),
      mask,
      n,
      L,
      W,
      heads,
    );
    expect(relMaxError(out, ref)).toBeLessThanOrEqual(TOL);
    // Values at padding keys do not matter at all (bitwise).
    const v2 = v.slice();
    for (let i = 0; i < n * L; i++)
      if (mask[i] === 0) for (let c = 0; c < W; c++) v2[i * W + c] = 1e3 * (c + 1);
    const out2 = tf.tidy(
      () =>
        attentionCore(
          tf.tensor(q, [n, L, W]),
          tf.tensor(k, [n, L, W]),
          tf.tensor(v2, [n, L, W]),
          tf.tensor(mask, [n, L]),
          heads,
        ).dataSync() as Float32Array,
    );
    expect(Buffer.from(out2.buffer).equals(Buffer.from(out.buffer))).toBe(true);
  });

  it.each([
    ['post-LN, CLS', TINY_POST],
    ['pre-LN, mean', TINY_PRE],
  ])('padding (%s): other ids at padded positions leave the logits bitwise unchanged', (_, spec) => {
    const model = build(spec, 2);
    randomizeWeights(model, 3, 0.5);
    const x = tokenBatch(6, spec.maxLength, spec.vocabSize!, 9);
    const y = logits(model, x);
    const y2 = logits(model, repad(x, spec.maxLength, spec.vocabSize!, 10));
    expect(Buffer.from(y2.buffer).equals(Buffer.from(y.buffer))).toBe(true);
    // (and the ids at token positions do matter)
    const x3 = x.slice();
    x3[1] = x3[1] === 5 ? 6 : 5;
    expect(logits(model, x3)[0]).not.toBe(y[0]);
    model.dispose();
  });

  it('save/load round trip: model.json + weights.bin, bitwise the same logits (loadModel and tf.loadLayersModel)', async () => {
    for (const [i, spec] of [TINY_POST, TINY_PRE].entries()) {
      const model = build(spec, 8);
      randomizeWeights(model, 12, 0.5);
      const dir = `${root}/round-trip-${i}`;
      await saveModel(model, dir);
      const x = tokenBatch(4, spec.maxLength, spec.vocabSize!, 1);
      const expected = logits(model, x);
      const loaded = await loadModel(dir);
      const viaTf = await tf.loadLayersModel(fileSystemHandler(dir));
      for (const m of [loaded, viaTf]) {
        expect(Buffer.from(logits(m, x).buffer).equals(Buffer.from(expected.buffer))).toBe(true);
        expect(m.layers.map((l) => l.name)).toEqual(model.layers.map((l) => l.name));
        m.dispose();
      }
      model.dispose();
    }
  });

  it('determinism: the same seed gives bitwise the same weights, another seed different ones', () => {
    const a = build(TINY_POST, 21);
    const b = build(TINY_POST, 21);
    const c = build(TINY_POST, 22);
    const flat = (m: tf.LayersModel) => m.getWeights().map((w) => Array.from(w.dataSync()));
    expect(flat(b)).toEqual(flat(a));
    expect(flat(c)).not.toEqual(flat(a));
    // Embeddings N(0, 1); LayerNorm γ = 1, β = 0; biases 0.
    const word = a.getLayer('embeddings/word').getWeights()[0]!.dataSync() as Float32Array;
    const std = Math.sqrt(word.reduce((s, v) => s + v * v, 0) / word.length);
    expect(std).toBeGreaterThan(0.8);
    expect(std).toBeLessThan(1.2);
    const [gamma, beta] = a.getLayer('embeddings/norm').getWeights();
    expect(Array.from(gamma!.dataSync()).every((v) => v === 1)).toBe(true);
    expect(Array.from(beta!.dataSync()).every((v) => v === 0)).toBe(true);
    for (const m of [a, b, c]) m.dispose();
  });

  it('bad specs and options are refused by name', () => {
    expect(() => resolveModelSpec({ ...TINY_POST, heads: 3 })).toThrow(
      /model\.heads: expected a divisor of width \(8\)/,
    );
    expect(() => resolveModelSpec({ ...TINY_POST, norm: 'middle' } as unknown as TransformerSpec)).toThrow(
      InvalidArgumentError,
    );
    const { vocabSize: _, ...noVocab } = TINY_POST;
    expect(() => buildModel(noVocab, { inputShape: [12], numClasses: 3, seed: 0 })).toThrow(/vocabSize/);
    expect(() => buildModel(TINY_POST, { inputShape: [6], numClasses: 3, seed: 0 })).toThrow(
      /inputShape: expected \[12\] for a transformer of maxLength 6/,
    );
  });
});
