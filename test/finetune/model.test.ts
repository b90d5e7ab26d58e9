// Finetune recordings of a user's tfjs layers model (not an entk run), and reading recordings of
// the previous format (version 2).
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareRecording, predictRecording } from '../../src/compare/index.js';
import { FitnessOperator, popMu } from '../../src/dynamics/index.js';
import { InvalidArgumentError } from '../../src/errors.js';
import {
  checkRecordingModel,
  FINETUNE_VERSION,
  finetune,
  readFinetuneRecording,
  readRecordingKernel,
  storeBlocks,
} from '../../src/finetune/index.js';
import { hashModelFiles, verifyKernelStore } from '../../src/kernel-store/index.js';
import { saveModel } from '../../src/model/index.js';
import { tempDir } from '../util/temp-dir.js';
import { embeddingClassifier, modelFiles, writeCsv } from '../util/user-model.js';
import { setDeterministicWeights } from '../util/weights.js';

const root = tempDir('finetune-model');
const modelDir = path.join(root, 'linear');
const modelJson = path.join(modelDir, 'model.json');
const trainCsv = path.join(root, 'train.csv');
const watchCsv = path.join(root, 'watch.csv');
const D = 4;
const V = 3;
const N = 6;
const M = 3;
const feature = (n: number, j: number) => Math.sin(1.7 * n + 0.9 * j + 0.3) * (1 + 0.2 * j);
const trainRows = Array.from({ length: N }, (_, n) => Array.from({ length: D }, (_, j) => feature(n, j)));
const watchRows = Array.from({ length: M }, (_, n) => Array.from({ length: D }, (_, j) => feature(n + N, j)));
const trainLabels = [0, 1, 2, 2, 1, 0];
/** The linear model's weights, float64 copies (W [D, V] row-major, b [V]) for the reference. */
let W: number[];
let b: number[];
let files: Map<string, Buffer>;
let tensorsBefore: number;

beforeAll(async () => {
  tensorsBefore = tf.memory().numTensors;
  // A linear softmax classifier: its own linearisation, so POP-MU must reproduce SGD exactly.
  const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [D], units: V, name: 'logits' })] });
  setDeterministicWeights(model, 0.8);
  const [w, bias] = model.getWeights();
  W = Array.from(w!.dataSync());
  b = Array.from(bias!.dataSync());
  await saveModel(model, modelDir);
  model.dispose();
  const header = ['f0', 'f1', 'f2', 'f3'];
  await writeCsv(
    trainCsv,
    ['id', ...header, 'label'],
    trainRows.map((r, n) => [`t${n}`, ...r, trainLabels[n]!]),
  );
  // observation points without labels (they are only watched)
  await writeCsv(
    watchCsv,
    ['id', ...header],
    watchRows.map((r, n) => [`w${n}`, ...r]),
  );
  files = await modelFiles(modelDir);
});

afterAll(() => {
  expect(tf.memory().numTensors).toBe(tensorsBefore);
});

/** log softmax of the linear model at x, in float64 (the reference for the recorded step 0). */
function referenceLogProbs(x: number[]): number[] {
  const z = Array.from({ length: V }, (_, i) => b[i]! + x.reduce((s, xj, j) => s + xj * W[j * V + i]!, 0));
  const max = Math.max(...z);
  const lse = max + Math.log(z.reduce((s, zi) => s + Math.exp(zi - max), 0));
  return z.map((zi) => zi - lse);
}

describe('finetune of a user model', () => {
  it('memory guard: counts every kernel block, K(o, o′) and the assembled store — refuses above the budget, runs at it', async () => {
    // Many observed points, few finetune points: K(o, o′) and the assembled (P·V)² kernel dominate.
    const Mo = 60;
    const obsCsv = path.join(root, 'many-watch.csv');
    await writeCsv(
      obsCsv,
      ['id', 'f0', 'f1', 'f2', 'f3'],
      Array.from({ length: Mo }, (_, n) => [
        `o${n}`,
        ...Array.from({ length: D }, (_, j) => feature(n + 50, j)),
      ]),
    );
    const steps = 4;
    const refreshEvery = 2;
    // What the recorder holds, counted from first principles (float32 kernels, float64 log-probs):
    const P = N + Mo;
    const kernels = 1 + steps / refreshEvery; // steps 0, 2, 4
    const perKernel = 4 * ((N * V) ** 2 + Mo * V * N * V + (Mo * V) ** 2) + 4 * 2 * P * V; // + logits, probabilities
    const recorded = steps + 1;
    const trajectory = recorded * (8 * P * V + 3 * 8);
    const assembled = 4 * (P * V) ** 2; // the store's [P·V, P·V] kernel, built when writing
    const need = kernels * perKernel + trajectory + assembled;
    // what the guard counted before: kernels × (N·V + M·V)·N·V float32 + the trajectory
    const oldEstimate = kernels * (N * V + Mo * V) * N * V * 4 + trajectory;
    expect(oldEstimate).toBeLessThan(need / 10);
    const options = {
      model: modelJson,
      points: `file:${trainCsv}`,
      observe: `file:${obsCsv}`,
      learningRate: 0.1,
      steps,
      refreshEvery,
    };
    const saved = process.env.ENTK_MEMORY_BYTES;
    try {
      process.env.ENTK_MEMORY_BYTES = String(need - 1);
      const refused = finetune({ ...options, out: path.join(root, 'mem-refused') });
      await expect(refused).rejects.toThrow(InvalidArgumentError);
      await expect(finetune({ ...options, out: path.join(root, 'mem-refused') })).rejects.toThrow(
        /^steps: expected a value for which the finetune recording .*K\(o, o′\).* fits: it needs .* of memory \(the budget ENTK_MEMORY_BYTES\), .* available, received 4$/,
      );
      // one kernel and its store alone above the budget: fewer steps cannot help, the observed points are named
      process.env.ENTK_MEMORY_BYTES = String(perKernel);
      await expect(finetune({ ...options, out: path.join(root, 'mem-refused') })).rejects.toThrow(
        /^observe: expected .* received "60 observed points \(and 6 finetune points\)"$/,
      );
      process.env.ENTK_MEMORY_BYTES = String(need);
      const r = await finetune({ ...options, out: path.join(root, 'mem-ok') });
      expect(r.manifest.kernels.map((k) => k.step)).toEqual([0, 2, 4]);
    } finally {
      if (saved === undefined) delete process.env.ENTK_MEMORY_BYTES;
      else process.env.ENTK_MEMORY_BYTES = saved;
    }
  });

  it('records SGD on a model.json + points files, identified by sha256, and POP-MU reproduces it', async () => {
    const out = path.join(root, 'rec');
    const r = await finetune({
      model: modelJson,
      points: `file:${trainCsv}`,
      observe: `file:${watchCsv}`,
      out,
      learningRate: 0.2,
      steps: 30,
      recordEvery: 5,
    });
    expect(r.dir).toBe(out);
    const m = r.manifest;
    expect(m.version).toBe(FINETUNE_VERSION);
    expect(m.name).toBe('rec');
    expect(m.run).toBeNull();
    expect(m.checkpoint).toBeNull();
    expect(m.source).toMatchObject({ kind: 'model', path: modelJson, modelClass: 'Sequential' });
    expect(m.source.kind === 'model' && m.source.sha256).toBe((await hashModelFiles(modelJson)).sha256);
    expect(m.classNames).toEqual(['0', '1', '2']);
    expect(m.finetune).toEqual({
      spec: `file:${trainCsv}`,
      ids: ['t0', 't1', 't2', 't3', 't4', 't5'],
      labels: trainLabels,
    });
    expect(m.observe.ids).toEqual(['w0', 'w1', 'w2']);
    expect(m.observe.labels).toEqual([-1, -1, -1]);
    // the model's files are read, never written
    expect(await modelFiles(modelDir)).toEqual(files);

    const rec = await readFinetuneRecording(out);
    expect(rec.trajectory.steps).toEqual([0, 5, 10, 15, 20, 25, 30]);
    // step 0: the model's own log-probabilities at the file's inputs (float32 network vs float64)
    const P = N + M;
    const ref = [...trainRows, ...watchRows].flatMap(referenceLogProbs);
    for (let k = 0; k < P * V; k++) expect(rec.trajectory.logProbs[k]!).toBeCloseTo(ref[k]!, 5);

    const storeDir = path.join(out, 'kernels', 'step-000000');
    const store = await verifyKernelStore(storeDir);
    expect(store.source).toEqual(m.source);
    expect(store.checkpoint).toBeNull();
    expect(store.finetune).toEqual({ recording: 'rec', step: 0 });

    // linear network: POP-MU from the recorded kernel = the actual run, to float32 error
    const op = new FitnessOperator(
      storeBlocks(await readRecordingKernel(rec, 0), m.finetune.ids, m.observe.ids),
    );
    const mu = popMu(
      op,
      { numClasses: V, labels: rec.labels, initialLogits: rec.trajectory.logProbs.slice(0, P * V) },
      { learningRate: 0.2, steps: 30, record: m.recordedSteps },
    );
    op.dispose();
    let gap = 0;
    let moved = 0;
    const last = (m.recordedSteps.length - 1) * P * V;
    for (let i = 0; i < mu.logProbs.length; i++)
      gap = Math.max(gap, Math.abs(mu.logProbs[i]! - rec.trajectory.logProbs[i]!));
    for (let i = 0; i < P * V; i++)
      moved = Math.max(moved, Math.abs(rec.trajectory.logProbs[last + i]! - rec.trajectory.logProbs[i]!));
    expect(moved).toBeGreaterThan(0.3);
    expect(gap).toBeLessThan(1e-4);

    // predict and compare run on it as on a run's recording
    await predictRecording(out, { threads: 1 });
    const c = await compareRecording(out);
    expect(c.subsets.all.trajectories['pop-mu']!.logProb.rmse).toBeLessThan(1e-4);
    expect(c.subsets.observe?.points).toEqual([N, P]);

    // the same model passes the check; a changed one is refused
    await checkRecordingModel(m, modelJson);
    const changed = path.join(root, 'changed');
    await fs.cp(modelDir, changed, { recursive: true });
    const weights = path.join(changed, 'weights.bin');
    const bytes = await fs.readFile(weights);
    bytes[0] = bytes[0]! ^ 1;
    await fs.writeFile(weights, bytes);
    await expect(checkRecordingModel(m, changed)).rejects.toThrow(
      /model: expected the model recording rec was made with \(sha256 [0-9a-f]{12}… of model\.json, weights\.bin\); these files hash to [0-9a-f]{12}… \(changed since\)/,
    );
  });

  it('refuses unlabelled finetune points, a run with a model, and a missing out', async () => {
    const base = { model: modelJson, learningRate: 0.1, steps: 2, out: path.join(root, 'bad') };
    await expect(finetune({ ...base, points: `file:${watchCsv}` })).rejects.toThrow(
      /points: expected a labelled points file \(a 'label' column of class indices in \[0, 3\)\)/,
    );
    await expect(finetune({ ...base, run: root, points: `file:${trainCsv}` })).rejects.toThrow(
      /model: expected either run or model, not both/,
    );
    await expect(finetune({ ...base, out: undefined, points: `file:${trainCsv}` })).rejects.toThrow(
      /out: expected a directory for the recording of model/,
    );
    await expect(finetune({ ...base, checkpoint: 'last', points: `file:${trainCsv}` })).rejects.toThrow(
      /checkpoint: expected nothing with model/,
    );
    await expect(finetune({ ...base, points: 'train:20' })).rejects.toThrow(InvalidArgumentError);
    await expect(fs.stat(base.out)).rejects.toThrow(/ENOENT/);
  });

  it("refuses token ids outside an Embedding's rows in the finetune and observation points, before any step", async () => {
    const embDir = path.join(root, 'embedding');
    const emb = embeddingClassifier(D, 5, V, 0.5);
    await saveModel(emb, embDir);
    emb.dispose();
    const good = path.join(root, 'ids-good.csv');
    const bad = path.join(root, 'ids-bad.csv');
    const header = ['id', 'f0', 'f1', 'f2', 'f3', 'label'];
    await writeCsv(good, header, [
      ['a', 0, 1, 2, 4, 0],
      ['b', 4, 3, 2, 1, 1],
    ]);
    await writeCsv(bad, header, [
      ['a', 0, 1, 2, 4, 0],
      ['b', 4, 3, 5, 1, 1],
    ]);
    const base = { model: embDir, learningRate: 0.1, steps: 2, out: path.join(root, 'bad-ids') };
    const message = (argument: string) =>
      `${argument}: expected integer token ids in [0, 5) for layer emb (Embedding), received "5 at point 1, entry [2]"`;
    await expect(finetune({ ...base, points: `file:${bad}` })).rejects.toThrow(InvalidArgumentError);
    await expect(finetune({ ...base, points: `file:${bad}` })).rejects.toThrow(message('points'));
    await expect(finetune({ ...base, points: `file:${good}`, observe: `file:${bad}` })).rejects.toThrow(
      message('observe'),
    );
    await expect(fs.stat(base.out)).rejects.toThrow(/ENOENT/);
  });
});

describe('recordings of format version 2', () => {
  const fixture = path.join(import.meta.dirname, 'fixtures', 'v2-recording');
  it('are read (as a run source) and predicted and compared like new ones', async () => {
    const dir = path.join(tempDir('finetune-v2'), 'v2');
    await fs.cp(fixture, dir, { recursive: true });
    const manifest = JSON.parse(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8'));
    expect(manifest.version).toBe(2);
    expect(manifest.source).toBeUndefined();
    const rec = await readFinetuneRecording(dir);
    expect(rec.manifest.source).toEqual({ kind: 'run' });
    expect(rec.manifest.checkpoint).toEqual({ id: 'step-000005', step: 5 });
    expect(rec.trajectory.steps).toEqual([0, 2, 4]);
    expect(rec.numTrain).toBe(3);
    expect(rec.numObserve).toBe(1);
    const predictions = await predictRecording(dir, { threads: 1 });
    expect(Object.keys(predictions.predictors).sort()).toEqual(
      ['one-step', 'one-step-refreshed', 'pop-mu', 'pop-mu-refreshed', 'pop-ode', 'pop-ode-simplex'].sort(),
    );
    const c = await compareRecording(dir);
    expect(c.learningRate).toBe(0.1);
    // a linear model: POP-MU reproduces the recorded run (float32 network)
    expect(c.subsets.all.trajectories['pop-mu']!.logProb.max).toBeLessThan(1e-4);
    await expect(checkRecordingModel(rec.manifest, path.join(dir, 'model.json'))).rejects.toThrow(
      /model: expected nothing for recording v2: it finetuned a checkpoint of/,
    );
  });

  it('a version this entk does not know is refused naming the file', async () => {
    const dir = path.join(tempDir('finetune-v9'), 'v9');
    await fs.cp(fixture, dir, { recursive: true });
    const file = path.join(dir, 'manifest.json');
    const manifest = JSON.parse(await fs.readFile(file, 'utf8'));
    await fs.writeFile(file, JSON.stringify({ ...manifest, version: 9 }));
    await expect(readFinetuneRecording(dir)).rejects.toThrow(
      /manifest\.json.*version 9 is not supported \(this entk reads versions 2, 3; upgrade entk\)/,
    );
  });
});
