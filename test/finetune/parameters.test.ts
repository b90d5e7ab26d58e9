// Finetuning chosen layers only (`parameters`): the other weights stay frozen, and the recorded
// eNTK is the kernel of the finetuned parameters. Reference: the same full-batch SGD on the head of
// a frozen tanh network, in float64 plain loops (with the hidden layer frozen the logits are linear
// in the head, so its kernel is (h_i·h_j + 1) δ_ab — docs/theory.md §2).
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { finetune, readFinetuneRecording, readRecordingKernel } from '../../src/finetune/index.js';
import { saveModel } from '../../src/model/index.js';
import { runCli } from '../cli/run-cli.js';
import { tempDir } from '../util/temp-dir.js';
import { denseClassifier, writeCsv } from '../util/user-model.js';

const root = tempDir('finetune-parameters');
const modelDir = path.join(root, 'mlp');
const trainCsv = path.join(root, 'train.csv');
const watchCsv = path.join(root, 'watch.csv');
const D = 4;
const H = 5;
const V = 3;
const N = 6;
const M = 3;
const P = N + M;
const ETA = 0.5;
const STEPS = 6;
const feature = (n: number, j: number) => Math.sin(1.3 * n + 0.7 * j + 0.2) * (1 + 0.3 * j);
const rows = Array.from({ length: P }, (_, n) => Array.from({ length: D }, (_, j) => feature(n, j)));
const labels = [0, 1, 2, 1, 0, 2];
let weights: number[][];
let tensorsBefore: number;

beforeAll(async () => {
  tensorsBefore = tf.memory().numTensors;
  const model = denseClassifier(D, H, V, 0.9); // layers 'hidden' (tanh) and 'logits'
  weights = model.getWeights().map((w) => Array.from(w.dataSync()));
  await saveModel(model, modelDir);
  model.dispose();
  const header = ['id', 'f0', 'f1', 'f2', 'f3'];
  await writeCsv(
    trainCsv,
    [...header, 'label'],
    rows.slice(0, N).map((r, n) => [`t${n}`, ...r, labels[n]!]),
  );
  await writeCsv(
    watchCsv,
    header,
    rows.slice(N).map((r, n) => [`w${n}`, ...r]),
  );
});

afterAll(() => {
  expect(tf.memory().numTensors).toBe(tensorsBefore);
});

/** Hidden features h = tanh(x W1 + b1) in float64 (the frozen layer). */
function hidden(x: number[]): number[] {
  const [W1, b1] = weights as [number[], number[]];
  return Array.from({ length: H }, (_, k) =>
    Math.tanh(b1[k]! + x.reduce((s, xj, j) => s + xj * W1[j * H + k]!, 0)),
  );
}

/**
 * Full-batch SGD on the mean cross-entropy of the finetune points, moving only the head
 * (W2 [H, V], b2 [V]), float64: log π of every tracked point and ‖θ − θ₀‖ after each step.
 */
function headOnlyReference(): { logProbs: number[][]; distance: number[] } {
  const W2 = [...weights[2]!];
  const b2 = [...weights[3]!];
  const W20 = [...W2];
  const b20 = [...b2];
  const h = rows.map(hidden);
  const logProbsAt = () =>
    h.flatMap((hi) => {
      const z = Array.from(
        { length: V },
        (_, a) => b2[a]! + hi.reduce((s, hk, k) => s + hk * W2[k * V + a]!, 0),
      );
      const m = Math.max(...z);
      const lse = m + Math.log(z.reduce((s, za) => s + Math.exp(za - m), 0));
      return z.map((za) => za - lse);
    });
  const distanceAt = () =>
    Math.sqrt(
      W2.reduce((s, w, i) => s + (w - W20[i]!) ** 2, 0) + b2.reduce((s, w, i) => s + (w - b20[i]!) ** 2, 0),
    );
  const logProbs = [logProbsAt()];
  const distance = [0];
  for (let step = 0; step < STEPS; step++) {
    const lp = logProbs[logProbs.length - 1]!;
    const gW = new Array<number>(H * V).fill(0);
    const gb = new Array<number>(V).fill(0);
    for (let i = 0; i < N; i++) {
      for (let a = 0; a < V; a++) {
        const r = (Math.exp(lp[i * V + a]!) - (labels[i] === a ? 1 : 0)) / N; // ∂(mean CE)/∂z_ia
        gb[a]! += r;
        for (let k = 0; k < H; k++) gW[k * V + a]! += h[i]![k]! * r;
      }
    }
    for (let i = 0; i < H * V; i++) W2[i]! -= ETA * gW[i]!;
    for (let a = 0; a < V; a++) b2[a]! -= ETA * gb[a]!;
    logProbs.push(logProbsAt());
    distance.push(distanceAt());
  }
  return { logProbs, distance };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

const options = (out: string, parameters?: 'all' | 'head' | string[]) => ({
  model: path.join(modelDir, 'model.json'),
  points: `file:${trainCsv}`,
  observe: `file:${watchCsv}`,
  out,
  learningRate: ETA,
  steps: STEPS,
  parameters,
});

describe('finetune of chosen layers', () => {
  it('moves only the chosen layers and records their kernel', async () => {
    const ref = headOnlyReference();
    const head = await finetune(options(path.join(root, 'head'), 'head'));
    expect(head.manifest.ntk).toMatchObject({
      parameters: 'head',
      parameterCount: H * V + V,
      layers: ['logits'],
    });
    const rec = await readFinetuneRecording(head.dir);
    expect(rec.trajectory.steps).toEqual([0, 1, 2, 3, 4, 5, 6]);
    // the recorded network = SGD on the head alone (float32 network vs float64 loops)
    for (let k = 0; k <= STEPS; k++) {
      const recorded = rec.trajectory.logProbs.subarray(k * P * V, (k + 1) * P * V);
      expect(maxAbsDiff(recorded, ref.logProbs[k]!)).toBeLessThan(2e-5);
      expect(Math.abs(rec.paramDistance[k]! - ref.distance[k]!)).toBeLessThan(1e-5 * (1 + ref.distance[k]!));
    }
    // the recorded eNTK is the head's: (h_i·h_j + 1) δ_ab over the tracked points
    const store = await readRecordingKernel(rec, 0);
    expect(store.manifest.kernel.parameters).toBe('head');
    const K = store.kernel.data as Float32Array;
    const h = rows.map(hidden);
    let kernelError = 0;
    for (let i = 0; i < P; i++)
      for (let a = 0; a < V; a++)
        for (let j = 0; j < P; j++)
          for (let b = 0; b < V; b++) {
            const expected = a === b ? h[i]!.reduce((s, hk, k) => s + hk * h[j]![k]!, 1) : 0;
            kernelError = Math.max(kernelError, Math.abs(K[(i * V + a) * P * V + j * V + b]! - expected));
          }
    expect(kernelError).toBeLessThan(1e-5);

    // the same run with every parameter moving is visibly different (the test can tell them apart)
    const all = await readFinetuneRecording((await finetune(options(path.join(root, 'all')))).dir);
    expect(all.manifest.ntk.parameters).toBe('all');
    expect(all.manifest.ntk.parameterCount).toBe(D * H + H + H * V + V);
    const last = all.trajectory.logProbs.subarray(STEPS * P * V);
    expect(maxAbsDiff(last, ref.logProbs[STEPS]!)).toBeGreaterThan(1e-2);
  });

  it('refuses unknown layers by name and writes nothing', async () => {
    const out = path.join(root, 'bad');
    await expect(finetune(options(out, ['hidden', 'nope']))).rejects.toThrow(
      /parameters: expected names of layers of the model \(hidden, logits\), or a name prefix ending in '\/', received "nope"/,
    );
    await expect(finetune(options(out, ['block1/']))).rejects.toThrow(
      /parameters: expected a prefix of the names/,
    );
    await expect(fs.stat(out)).rejects.toThrow(/ENOENT/);
  });

  it('is `entk finetune --parameters`', async () => {
    const out = path.join(root, 'cli');
    const args = ['finetune', '--model', modelDir, '--points', `file:${trainCsv}`, '--out', out];
    const r = await runCli([
      ...args,
      '--learning-rate',
      '0.5',
      '--steps',
      '2',
      '--parameters',
      'hidden',
      '--json',
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ parameters: ['hidden'], parameterCount: D * H + H });
    const bad = await runCli([...args, '--learning-rate', '0.5', '--steps', '2', '--parameters', 'hidden,']);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(
      /--parameters: expected all, head or a comma list of layer names, received "hidden,"/,
    );
  });
});
