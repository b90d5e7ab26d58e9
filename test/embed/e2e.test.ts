// End to end on real code paths: data/text/topics.csv → frozen tiny BERT features → a linear
// softmax head trained by src/train → its eNTK from src/kernel, checked against the closed form of
// a linear head, and one SGD step on one point checked against the kernel's one-step prediction.
//
// Closed form (docs/theory.md#closed-forms, linear model f(x) = Wᵀx + b, logits V): J(x) = [x ⊗ I_V, I_V], so
//   K_ij(x, x') = (xᵀx' + 1) δ_ij,
// independent of the weights. One SGD step with rate η on the loss of one point (x, y) changes
// logits exactly (the model is linear in its parameters) by Δf(x') = −η K(x', x) (p(x) − e_y).
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { loadDataset } from '../../src/data/index.js';
import { embedDataset } from '../../src/embed/index.js';
import { empiricalNtkFn } from '../../src/kernel/index.js';
import { openRun, train } from '../../src/train/index.js';
import { tempDir } from '../util/temp-dir.js';
import { TINY_BERT_DIR } from './reference.js';

const tmp = tempDir('embed-e2e');

describe('text → frozen backbone → linear head → eNTK', () => {
  it('trains a head on tiny-bert features; its eNTK is (xᵀx′+1) I_V; one SGD step matches the kernel prediction', async () => {
    const tensorsBefore = tf.memory().numTensors;
    // 1. Embed the text dataset.
    const text = await loadDataset('text/topics.csv', { textColumn: 'text' });
    const { dataset, embeddings } = await embedDataset(text, {
      backbone: TINY_BERT_DIR,
      cacheDir: path.join(tmp, 'cache'),
    });
    expect(embeddings.shape).toEqual([300, 32]);

    // 2. Hand the features to the training pipeline as a feature CSV (float32 values round-trip exactly).
    const csv = path.join(tmp, 'topics-features.csv');
    const header = ['id', 'label', ...dataset.featureNames].join(',');
    const rows = dataset.ids.map((id, i) =>
      [id, dataset.classNames[dataset.y[i]!], ...Array.from(dataset.x.subarray(i * 32, i * 32 + 32))].join(
        ',',
      ),
    );
    await fs.writeFile(csv, `${header}\n${rows.join('\n')}\n`);
    const runDir = path.join(tmp, 'run');
    const result = await train(
      { data: csv, model: 'linear', steps: 20, batchSize: 'full', seed: 0, checkpoints: { every: 10 } },
      { outDir: runDir },
    );
    expect(result.step).toBe(20);
    expect(result.numParameters).toBe(32 * 3 + 3);
    // The head starts at zero weights (loss ln 3) and learns: training loss goes down.
    expect(result.metrics.trainLoss).toBeLessThan(Math.log(3) - 0.05);

    // 3. The eNTK of the trained head on standardised test × train points.
    const run = await openRun(runDir);
    const model = await run.loadModel('last');
    const V = 3;
    const d = 32;
    const n1 = 5;
    const n2 = 7;
    const x1 = run.test.x.slice(0, n1 * d);
    const x2 = run.train.x.slice(0, n2 * d);
    const ntk = empiricalNtkFn(model, { output: 'full', progress: false });
    const k = await ntk({ data: x1, shape: [n1, d] }, { data: x2, shape: [n2, d] });
    expect(k.shape).toEqual([n1 * V, n2 * V]);
    const dot = (a: Float32Array, i: number, b: Float32Array, j: number) => {
      let s = 0;
      for (let t = 0; t < d; t++) s += a[i * d + t]! * b[j * d + t]!;
      return s;
    };
    let maxRel = 0;
    for (let n = 0; n < n1; n++) {
      for (let m = 0; m < n2; m++) {
        const expected = dot(x1, n, x2, m) + 1;
        for (let i = 0; i < V; i++) {
          for (let j = 0; j < V; j++) {
            const got = k.data[(n * V + i) * n2 * V + m * V + j]!;
            const want = i === j ? expected : 0;
            maxRel = Math.max(maxRel, Math.abs(got - want) / (Math.abs(expected) + 1));
          }
        }
      }
    }
    expect(maxRel).toBeLessThan(1e-5); // float32 accumulation; measured 3e-7

    // 4. One SGD step on one training point versus the kernel's prediction for the test points.
    const eta = 0.5;
    const xs = tf.tensor2d(x1, [n1, d]);
    const xOne = tf.tensor2d(x2.subarray(0, d), [1, d]);
    const yOne = run.train.y[0]!;
    const before = tf.tidy(() => (model.predict(xs) as tf.Tensor).arraySync() as number[][]);
    const p = tf.tidy(() => Array.from(tf.softmax(model.predict(xOne) as tf.Tensor).dataSync()));
    tf.tidy(() => {
      const onehot = tf.oneHot([yOne], V).toFloat();
      const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
      const { grads } = tf.variableGrads(
        () => tf.losses.softmaxCrossEntropy(onehot, model.apply(xOne) as tf.Tensor) as tf.Scalar,
        variables,
      );
      model.trainableWeights.forEach((w, i) => {
        w.write(variables[i]!.sub(grads[variables[i]!.name]!.mul(eta)));
      });
    });
    const after = tf.tidy(() => (model.predict(xs) as tf.Tensor).arraySync() as number[][]);
    const kOne = await ntk({ data: x1, shape: [n1, d] }, { data: x2.slice(0, d), shape: [1, d] });
    let maxErr = 0;
    for (let n = 0; n < n1; n++) {
      for (let i = 0; i < V; i++) {
        let predicted = 0;
        for (let j = 0; j < V; j++)
          predicted -= eta * kOne.data[(n * V + i) * V + j]! * (p[j]! - (j === yOne ? 1 : 0));
        maxErr = Math.max(maxErr, Math.abs(after[n]![i]! - before[n]![i]! - predicted));
      }
    }
    expect(maxErr).toBeLessThan(1e-5); // float32; measured 5e-7
    await ntk.dispose();
    tf.dispose([xs, xOne]);
    model.dispose();
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });
});
