import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidArgumentError, UnsupportedError } from '../../src/errors.js';
import {
  loadModel,
  loadPretrainedTransformer,
  pretrainedTransformerSpec,
  readBertConfig,
  saveModel,
  type TransformerSpec,
  transformerHiddenStates,
} from '../../src/model/index.js';
import { TINY_BERT_DIR } from '../embed/reference.js';
import { tempDir } from '../util/temp-dir.js';
import { FIXTURE, writeFixtureDir } from './bert-fixture.js';
import { onnxOutputs, padBatch, relativeMaxDiff, type TokenBatch } from './bert-reference.js';

const dir = tempDir('bert-import');

let before = 0;
beforeEach(() => {
  before = tf.memory().numTensors;
});
afterEach(() => {
  expect(tf.memory().numTensors).toBe(before);
});

/** Mixed lengths (one at the full maxLength), padded within the batch; token type 0 throughout. */
const SEQUENCES = [
  [2, 10, 11, 12, 13, 3],
  [2, 14, 3],
  [2, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 3],
  [2, 26, 27, 3],
  [2, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 30, 31, 3],
];
const MAX_LENGTH = 16;

/** The tfjs input [n, 2L]: ids padded to L with 0, then the mask. */
function tokens(batch: TokenBatch, L: number): tf.Tensor2D {
  const n = batch.ids.length;
  const x = new Float32Array(n * 2 * L);
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < batch.ids[i]!.length; t++) {
      x[i * 2 * L + t] = batch.ids[i]![t]!;
      x[i * 2 * L + L + t] = batch.mask[i]![t]!;
    }
  }
  return tf.tensor2d(x, [n, 2 * L]);
}

/** The tfjs hidden states at the batch's T ≤ L positions, as [n, T, H] flat. */
function hiddenAt(model: tf.LayersModel, spec: TransformerSpec, batch: TokenBatch): Float32Array {
  const T = batch.ids[0]!.length;
  const L = spec.maxLength;
  return tf.tidy(() => {
    const h = transformerHiddenStates(model, spec, tokens(batch, L));
    return h.slice([0, 0, 0], [batch.ids.length, T, spec.width]).dataSync() as Float32Array;
  });
}

describe('loadPretrainedTransformer: hidden states equal onnxruntime', () => {
  const batch = padBatch(SEQUENCES);

  it("models/tiny-bert: the tfjs encoder's token states equal transformers.js/onnxruntime's last_hidden_state (≤ 1e-4 relative max)", async () => {
    expect(batch.mask.flat()).toContain(0);
    const { model, spec, source } = await loadPretrainedTransformer(TINY_BERT_DIR, {
      numClasses: 3,
      seed: 0,
      maxLength: MAX_LENGTH,
    });
    expect(source).toEqual({ format: 'onnx', files: ['onnx/model.onnx'] });
    expect(spec).toMatchObject({
      layers: 1,
      width: 32,
      heads: 1,
      mlpRatio: 2,
      maxLength: MAX_LENGTH,
      pooler: false,
    });
    const ort = await onnxOutputs(TINY_BERT_DIR, batch);
    const ours = hiddenAt(model, spec, batch);
    const rel = relativeMaxDiff(ours, ort.hidden, batch, spec.width);
    expect(rel).toBeLessThan(1e-4); // measured 3.1e-7
    model.dispose();
  });

  it('a 2-layer, 4-head encoder with a pooler, from ONNX (anonymous MatMul weights) and from safetensors: hidden states and pooler output equal onnxruntime (≤ 1e-4)', async () => {
    const fixture = await writeFixtureDir(path.join(dir, 'fixture'), { onnx: true, safetensors: true });
    const ort = await onnxOutputs(fixture, batch);
    for (const source of ['onnx', 'safetensors'] as const) {
      const { model, spec } = await loadPretrainedTransformer(fixture, {
        numClasses: 4,
        seed: 1,
        maxLength: MAX_LENGTH,
        source,
      });
      expect(spec).toMatchObject({
        layers: FIXTURE.layers,
        heads: FIXTURE.heads,
        width: FIXTURE.hidden,
        mlpRatio: 2,
        pooler: true,
        layerNormEpsilon: FIXTURE.eps,
      });
      const rel = relativeMaxDiff(hiddenAt(model, spec, batch), ort.hidden, batch, spec.width);
      expect(rel, source).toBeLessThan(1e-4); // measured 1.5e-6 (both sources)
      const pooled = tf.tidy(() => {
        const pooler = tf.model({ inputs: model.inputs, outputs: model.getLayer('pooler/tanh').output });
        return (pooler.predict(tokens(batch, MAX_LENGTH)) as tf.Tensor).dataSync() as Float32Array;
      });
      let diff = 0;
      for (let i = 0; i < pooled.length; i++) diff = Math.max(diff, Math.abs(pooled[i]! - ort.pooler![i]!));
      expect(diff, source).toBeLessThan(1e-4);
      model.dispose();
    }
  });
});

describe('loadPretrainedTransformer: the classifier', () => {
  it('has a fresh head seeded like every entk model, the same encoder for every seed, and survives save/load', async () => {
    const load = (seed: number) =>
      loadPretrainedTransformer(TINY_BERT_DIR, { numClasses: 3, seed, maxLength: 8 });
    const a = await load(5);
    const b = await load(5);
    const c = await load(6);
    const weights = (m: tf.LayersModel) => m.getWeights().map((w) => Array.from(w.dataSync()));
    expect(weights(a.model)).toEqual(weights(b.model));
    const head = (m: tf.LayersModel) => Array.from(m.getLayer('head').getWeights()[0]!.dataSync());
    expect(head(c.model)).not.toEqual(head(a.model));
    const encoder = (m: tf.LayersModel) =>
      Array.from(m.getLayer('block0/mlp/dense1').getWeights()[0]!.dataSync());
    expect(encoder(c.model)).toEqual(encoder(a.model));
    // Glorot N(0, 2/(32 + 3)) head, zero bias.
    const h = head(a.model);
    const std = Math.sqrt(h.reduce((s, v) => s + v * v, 0) / h.length);
    expect(std).toBeGreaterThan(0.5 * Math.sqrt(2 / 35));
    expect(std).toBeLessThan(1.5 * Math.sqrt(2 / 35));
    expect(Array.from(a.model.getLayer('head').getWeights()[1]!.dataSync())).toEqual([0, 0, 0]);

    const saved = path.join(dir, 'saved');
    await saveModel(a.model, saved);
    const loaded = await loadModel(saved);
    const x = tokens(padBatch(SEQUENCES.map((s) => s.slice(0, 8))), 8);
    const y0 = a.model.predict(x) as tf.Tensor;
    const y1 = loaded.predict(x) as tf.Tensor;
    expect(Array.from(y1.dataSync())).toEqual(Array.from(y0.dataSync()));
    tf.dispose([x, y0, y1]);
    for (const m of [a.model, b.model, c.model, loaded]) m.dispose();
  });

  it('refuses a maxLength beyond the position table, a pooler the checkpoint lacks, an MLP size that is no multiple of the width', async () => {
    await expect(
      loadPretrainedTransformer(TINY_BERT_DIR, { numClasses: 2, seed: 0, maxLength: 65 }),
    ).rejects.toThrow(
      new InvalidArgumentError(
        'maxLength',
        65,
        "an integer in [1, 64] (the model's max_position_embeddings)",
      ),
    );
    await expect(
      loadPretrainedTransformer(TINY_BERT_DIR, { numClasses: 2, seed: 0, pooler: true }),
    ).rejects.toThrow(
      /pooler: expected false: onnx\/model\.onnx in .*tiny-bert holds no pooler\.dense weights, received true/,
    );
    const config = await readBertConfig(TINY_BERT_DIR);
    expect(() => pretrainedTransformerSpec({ ...config, intermediateSize: 48 }, { pooler: false })).toThrow(
      UnsupportedError,
    );
    expect(pretrainedTransformerSpec(config, { pooler: false }).maxLength).toBe(64);
    expect(pretrainedTransformerSpec({ ...config, maxPositions: 512 }, { pooler: false }).maxLength).toBe(
      128,
    );
  });
});
