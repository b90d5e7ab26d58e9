// `entk experiment` on a user's tfjs layers model (`model:` instead of `train:`), end to end through
// the real CLI: the model saved with saveModel, CSV points next to the config; theory vs actual,
// resumption, invalidation by a changed model, the model files untouched, and the refusal of a study
// that needs training checkpoints.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { hashModelFiles, readKernelStore } from '../../src/kernel-store/index.js';
import { saveModel } from '../../src/model/index.js';
import { tempDir } from '../util/temp-dir.js';
import { denseClassifier, embeddingClassifier, modelFiles, writeCsv } from '../util/user-model.js';
import { expectOneLineError, runCli } from './run-cli.js';

const dir = tempDir('cli-experiment-model');
const modelDir = path.join(dir, 'mlp');
const modelJson = path.join(modelDir, 'model.json');
const config = path.join(dir, 'mine.yaml');
const out = path.join(dir, 'out');
const D = 4;
const V = 3;
const feature = (n: number, j: number) =>
  Number((Math.cos(1.1 * n + 0.6 * j + 0.4) * (1 + 0.15 * j)).toFixed(6));
const finetuneRows = [0, 1, 2, 3, 4, 5];
const watchRows = [6, 7, 8];

const makeModel = (scale: number): tf.Sequential => denseClassifier(D, 8, V, scale);

/** The experiment's stage events of a `--json` run, as stage → status. */
function statuses(stdout: string): Record<string, string> {
  const s = JSON.parse(stdout) as { stages: { stage: string; status: string }[] };
  return Object.fromEntries(s.stages.map((e) => [e.stage, e.status]));
}

const yaml = (studies: string) => `title: my model
model:
  path: mlp
points:
  finetune: file:train.csv
  observe: file:watch.csv
finetune:
  learningRate: 0.01
  steps: 10
studies:
${studies}
report:
  png: false
`;

beforeAll(async () => {
  const model = makeModel(0.7);
  await saveModel(model, modelDir);
  model.dispose();
  const row = (n: number) => Array.from({ length: D }, (_, j) => feature(n, j));
  await writeCsv(
    path.join(dir, 'train.csv'),
    ['id', 'a', 'b', 'c', 'd', 'label'],
    finetuneRows.map((n) => [`p${n}`, ...row(n), n % V]),
  );
  // Observation points without ids or labels (ids come from the file name).
  await writeCsv(path.join(dir, 'watch.csv'), ['a', 'b', 'c', 'd'], watchRows.map(row));
  await fs.writeFile(
    config,
    yaml(`  checkpoints: {}
  negativeGradients:
    learningRate: -0.001
    steps: 10
  discretisation:
    learningRates: [0.2, 0.1, 0.05]
    time: 0.4`),
  );
});

/** eNTK by plain autodiff: K[(p,i),(q,j)] = Σ_θ ∂z_i(x_p)/∂θ · ∂z_j(x_q)/∂θ, float64 sums. */
function referenceKernel(model: tf.LayersModel, x: number[][]): Float64Array {
  const rows: Float64Array[] = [];
  for (const xp of x) {
    const input = tf.tensor2d([xp]);
    for (let i = 0; i < V; i++) {
      const { value, grads } = tf.variableGrads(
        () => tf.tidy(() => (model.apply(input) as tf.Tensor).gather([i], 1).sum() as tf.Scalar),
        model.trainableWeights.map((w) => w.read() as tf.Variable),
      );
      const flat = Object.values(grads).flatMap((g) => Array.from(g.dataSync()));
      tf.dispose([value, ...Object.values(grads)]);
      rows.push(Float64Array.from(flat));
    }
    input.dispose();
  }
  const n = rows.length;
  const K = new Float64Array(n * n);
  for (let a = 0; a < n; a++)
    for (let b = 0; b < n; b++) {
      let s = 0;
      for (let k = 0; k < rows[a]!.length; k++) s += rows[a]![k]! * rows[b]![k]!;
      K[a * n + b] = s;
    }
  return K;
}

describe('entk experiment with model:', () => {
  it('runs the studies on the model: kernel and logits match autodiff, theory close to the network', async () => {
    const before = await modelFiles(modelDir);
    const r = await runCli(['experiment', config, '--out', out, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    // Finetune of the model's weights (η = 0.01, 10 full-batch steps): lazy, so POP-MU and the
    // one-step rule track the network (r of Δ log π near 1, RMS error of log π far below a nat).
    expect(s.summary['checkpoints-one-step-r'].measured).toBeGreaterThan(0.99);
    expect(s.summary['checkpoints-pop-mu-r'].measured).toBeGreaterThan(0.99);
    expect(s.summary['checkpoints-pop-mu-rmse'].measured).toBeLessThan(0.01);
    const share = s.summary['negative-gradients-share'];
    // 10 ascent steps of η = −0.001: lazy, so POP-MU's share of the lost mass is the network's.
    expect(Number.isFinite(share.measured)).toBe(true);
    expect(Number.isFinite(share.theory)).toBe(true);
    expect(share.measured).toBeGreaterThan(0);
    expect(Math.abs(share.measured - share.theory)).toBeLessThan(0.01);
    // POP-MU vs POP-ODE from the model's kernel: the O(η) theorem, slope 1.
    expect(s.summary['discretisation-slope'].measured).toBeGreaterThan(0.85);
    expect(s.summary['discretisation-slope'].measured).toBeLessThan(1.15);
    expect(statuses(r.stdout)).toMatchObject({
      'source/model': 'done',
      'points/model': 'done',
      'kernel/model/model': 'done',
      'finetune/model/negative-gradients': 'done',
      'finetune/model/checkpoints-model': 'done',
      'heatmap/model/model': 'done',
    });

    // The tracked kernel store: the model's logits and eNTK at the points as the CSVs give them.
    const store = await readKernelStore(path.join(out, 'runs', 'model', 'kernels', 'tracked'));
    const { sha256 } = await hashModelFiles(modelJson);
    expect(store.manifest.source).toMatchObject({ kind: 'model', sha256 });
    expect(store.manifest.points.ids).toEqual([
      ...finetuneRows.map((n) => `p${n}`),
      ...store.manifest.points.ids.slice(finetuneRows.length),
    ]);
    const x = [...finetuneRows, ...watchRows].map((n) => Array.from({ length: D }, (_, j) => feature(n, j)));
    const model = makeModel(0.7);
    const before0 = tf.memory().numTensors;
    const logits = tf.tidy(() => (model.predict(tf.tensor2d(x)) as tf.Tensor).dataSync());
    const stored = store.logits!.data as Float32Array;
    for (let k = 0; k < logits.length; k++) expect(Math.abs(stored[k]! - logits[k]!)).toBeLessThan(1e-5);
    const K = referenceKernel(model, x);
    expect(tf.memory().numTensors).toBe(before0);
    model.dispose();
    const kernel = store.kernel!.data as Float32Array;
    expect(kernel.length).toBe(K.length);
    const scale = Math.max(...K.map(Math.abs));
    for (let k = 0; k < K.length; k++) expect(Math.abs(kernel[k]! - K[k]!)).toBeLessThan(1e-5 * scale);

    // The recording says which model it finetuned.
    const manifest = JSON.parse(
      await fs.readFile(
        path.join(out, 'runs', 'model', 'finetune', 'negative-gradients', 'manifest.json'),
        'utf8',
      ),
    );
    expect(manifest.source).toMatchObject({ kind: 'model', sha256 });
    expect(manifest.finetune.ids).toEqual(['p0']);
    expect(await modelFiles(modelDir)).toEqual(before);
  }, 120_000);

  it('a re-run reuses every stage; a changed model or points file redoes them; the model is only read', async () => {
    const again = await runCli(['experiment', config, '--out', out, '--json']);
    expect(again.status, again.stderr).toBe(0);
    expect(new Set(Object.values(statuses(again.stdout)))).toEqual(new Set(['cached']));

    const other = makeModel(0.5);
    const tmp = path.join(dir, 'other');
    await saveModel(other, tmp);
    other.dispose();
    await fs.copyFile(path.join(tmp, 'weights.bin'), path.join(modelDir, 'weights.bin'));
    const edited = await modelFiles(modelDir);
    const changed = await runCli(['experiment', config, '--out', out, '--json']);
    expect(changed.status, changed.stderr).toBe(0);
    expect(statuses(changed.stdout)).toMatchObject({
      'source/model': 'done',
      'points/model': 'done',
      'kernel/model/model': 'done',
      'discretisation/analyse': 'done',
      'finetune/model/negative-gradients': 'done',
      'negative-gradients/analyse': 'done',
      'finetune/model/checkpoints-model': 'done',
      'heatmap/model/model': 'done',
      report: 'done',
    });
    const manifest = JSON.parse(
      await fs.readFile(
        path.join(out, 'runs', 'model', 'finetune', 'negative-gradients', 'manifest.json'),
        'utf8',
      ),
    );
    expect(manifest.source.sha256).toBe((await hashModelFiles(modelJson)).sha256);
    expect(await modelFiles(modelDir)).toEqual(edited);

    // An edited points file redoes everything (its content is in the source stage's key, as a
    // run's data is in its train stage's key); the model's files are still only read.
    const watch = path.join(dir, 'watch.csv');
    await fs.writeFile(watch, (await fs.readFile(watch, 'utf8')).replace(/\n(-?[\d.]+)/, '\n0.5'));
    const points = await runCli(['experiment', config, '--out', out, '--json']);
    expect(points.status, points.stderr).toBe(0);
    expect(statuses(points.stdout)).toMatchObject({
      'source/model': 'done',
      'points/model': 'done',
      'kernel/model/model': 'done',
      'finetune/model/checkpoints-model': 'done',
      'finetune/model/negative-gradients': 'done',
    });
    expect(await modelFiles(modelDir)).toEqual(edited);
  }, 120_000);

  it('--model runs a config on a model given on the command line (instead of its train:)', async () => {
    const file = path.join(dir, 'cli-model.yaml');
    await fs.writeFile(
      file,
      yaml(`  negativeGradients:
    steps: 3`).replace('model:\n  path: mlp\n', 'train:\n  data: digits\n'),
    );
    const r = await runCli([
      'experiment',
      file,
      '--model',
      modelDir,
      '--out',
      path.join(dir, 'cli-out'),
      '--json',
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(Number.isFinite(JSON.parse(r.stdout).summary['negative-gradients-share'].theory)).toBe(true);
  }, 120_000);

  it('refuses a study that needs training checkpoints, train: with model:, and non-file points', async () => {
    const bad = async (name: string, text: string) => {
      const file = path.join(dir, `${name}.yaml`);
      await fs.writeFile(file, text);
      const target = path.join(dir, `${name}-out`);
      const r = await runCli(['experiment', file, '--out', target]);
      await expect(fs.access(target)).rejects.toThrow();
      return r;
    };
    expectOneLineError(
      await bad('laziness', yaml('  laziness:\n    widths: [8, 16]')),
      /studies\.laziness: expected a study that runs on a user's model \(checkpoints, discretisation, negativeGradients\); the laziness study needs an entk training run \(training checkpoints or runs of its own\)/,
    );
    expectOneLineError(
      await bad('both', `train:\n  data: digits\n${yaml('  negativeGradients: {}')}`),
      /model: expected either train or model, not both/,
    );
    expectOneLineError(
      await bad('ckpt', yaml('  negativeGradients:\n    checkpoint: first')),
      /studies\.negativeGradients\.checkpoint: expected nothing with model: .*received "first"/,
    );
    expectOneLineError(
      await bad('heatmap', yaml('  checkpoints:\n    heatmapPoints: train:5')),
      /studies\.checkpoints\.heatmapPoints: expected nothing with model: \(the heatmap is over the labelled tracked points\)/,
    );
    expectOneLineError(
      await bad('spec', yaml('  negativeGradients: {}').replace('file:watch.csv', 'test:5')),
      /points\.observe: expected a points file of the model \(file:points\.csv or \.jsonl.*received "test:5"/,
    );
  }, 60_000);

  it("token ids outside the model's Embedding: refused at the points stage, naming the config key, file row and entry", async () => {
    const emb = path.join(dir, 'emb');
    const model = embeddingClassifier(D, 5, V, 0.5);
    await saveModel(model, emb);
    model.dispose();
    const header = ['id', 'a', 'b', 'c', 'd', 'label'];
    const rows = (prefix: string, xs: number[][]) => xs.map((x, n) => [`${prefix}${n}`, ...x, n % V]);
    await writeCsv(
      path.join(dir, 'ids.csv'),
      header,
      rows('t', [
        [0, 1, 2, 4],
        [4, 3, 7, 1],
        [1, 1, 0, 0],
      ]),
    );
    await writeCsv(path.join(dir, 'ids-watch.csv'), header, rows('w', [[2, 2, 2, 2]]));
    const file = path.join(dir, 'ids.yaml');
    await fs.writeFile(
      file,
      yaml('  negativeGradients: {}')
        .replace('path: mlp', 'path: emb')
        .replace('file:train.csv', 'file:ids.csv')
        .replace('file:watch.csv', 'file:ids-watch.csv'),
    );
    const r = await runCli(['experiment', file, '--out', path.join(dir, 'ids-out')]);
    expect(r.status, r.stderr).toBe(2);
    const errors = r.stderr.split('\n').filter((line) => line.startsWith('entk: error:'));
    expect(errors).toEqual([
      'entk: error: points.finetune: expected integer token ids in [0, 5) for layer emb (Embedding), received "7 at point 1, entry [2]"',
    ]);
    // Refused before any finetuning.
    await expect(fs.access(path.join(dir, 'ids-out', 'runs', 'model', 'finetune'))).rejects.toThrow();
  }, 60_000);
});
