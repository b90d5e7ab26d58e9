// `entk kernel --model`: kernels of user-supplied tfjs layers models through the real CLI.
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadUserModel } from '../../src/embed/user-model.js';
import { writeArray } from '../../src/io/index.js';
import { empiricalNtkFn, type NtkImplementation } from '../../src/kernel/index.js';
import { hashModelFiles, readKernelStore } from '../../src/kernel-store/index.js';
import { saveModel } from '../../src/model/index.js';
import { tempDir } from '../util/temp-dir.js';
import { denseClassifier, embeddingClassifier } from '../util/user-model.js';
import { setDeterministicWeights } from '../util/weights.js';
import { type CliResult, expectOneLineError, runCliAsync } from './run-cli.js';

const dir = tempDir('cli-kernel-model');
const denseDir = path.join(dir, 'dense');
const residDir = path.join(dir, 'resid');
const softmaxDir = path.join(dir, 'softmax');
const softmaxLayerDir = path.join(dir, 'softmax-layer');
const embeddingDir = path.join(dir, 'embedding');
const csv = path.join(dir, 'points.csv');
const jsonl = path.join(dir, 'points.jsonl');
const npy = path.join(dir, 'points.npy');
const N = 5;
const D = 4;
/** Point n, feature j (deterministic, not symmetric). */
const feature = (n: number, j: number) => Math.sin(1.3 * n + 0.7 * j + 0.2) * (1 + 0.1 * j);

const runMany = (argvs: string[][]): Promise<CliResult[]> => Promise.all(argvs.map((a) => runCliAsync(a)));

/** max |a − b| / max |b|. */
function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let diff = 0;
  let scale = 0;
  for (let k = 0; k < b.length; k++) {
    diff = Math.max(diff, Math.abs(a[k]! - b[k]!));
    scale = Math.max(scale, Math.abs(b[k]!));
  }
  expect(scale).toBeGreaterThan(0);
  return diff / scale;
}

/** The in-process kernel of the saved model at the saved points (the reference for the CLI). */
async function reference(modelDir: string, implementation: NtkImplementation): Promise<Float32Array> {
  const { model } = await loadUserModel(modelDir);
  const x = Float32Array.from({ length: N * D }, (_, k) => feature(Math.floor(k / D), k % D));
  const ntk = empiricalNtkFn(model, { implementation, progress: false });
  const r = await ntk({ data: x, shape: [N, D] });
  await ntk.dispose();
  model.dispose();
  return r.data as Float32Array;
}

let tensorsBefore: number;
beforeAll(async () => {
  tensorsBefore = tf.memory().numTensors;
  const dense = denseClassifier(D, 6, 3, 0.6);
  await saveModel(dense, denseDir);
  // The same network with a softmax output layer (same weights).
  const softmax = denseClassifier(D, 6, 3, 0.6, { name: 'probs', activation: 'softmax' });
  softmax.setWeights(dense.getWeights());
  await saveModel(softmax, softmaxDir);
  softmax.dispose();
  // The same network followed by a Softmax layer.
  const withLayer = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [D], units: 6, activation: 'tanh', name: 'hidden' }),
      tf.layers.dense({ units: 3, name: 'logits' }),
      tf.layers.softmax({ name: 'probs' }),
    ],
  });
  withLayer.setWeights(dense.getWeights());
  await saveModel(withLayer, softmaxLayerDir);
  withLayer.dispose();
  dense.dispose();

  // A residual block with a LayerNormalization (a functional graph with a merge).
  const input = tf.input({ shape: [D] });
  const h = tf.layers.dense({ units: 6, activation: 'tanh', name: 'h' }).apply(input) as tf.SymbolicTensor;
  const ln = tf.layers.layerNormalization({ name: 'ln' }).apply(h) as tf.SymbolicTensor;
  const g = tf.layers.dense({ units: 6, name: 'g' }).apply(ln) as tf.SymbolicTensor;
  const sum = tf.layers.add({ name: 'residual' }).apply([h, g]) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 3, name: 'out' }).apply(sum) as tf.SymbolicTensor;
  const resid = tf.model({ inputs: input, outputs: out, name: 'resid' });
  setDeterministicWeights(resid, 0.6);
  await saveModel(resid, residDir);
  resid.dispose();

  const cols = Array.from({ length: D }, (_, j) => `f${j}`);
  const rows = Array.from({ length: N }, (_, n) => [`p${n}`, ...cols.map((_, j) => feature(n, j))].join(','));
  writeFileSync(csv, `${['id', ...cols].join(',')}\n${rows.join('\n')}\n`);
  writeFileSync(
    jsonl,
    Array.from({ length: N }, (_, n) =>
      JSON.stringify({ x: cols.map((_, j) => feature(n, j)), label: n % 3 }),
    ).join('\n'),
  );
  const x = Float32Array.from({ length: N * D }, (_, k) => feature(Math.floor(k / D), k % D));
  await writeArray(npy, { dtype: 'float32', shape: [N, D], data: x });

  // Token ids of D positions into an Embedding of 5 rows.
  const embedding = embeddingClassifier(D, 5, 3, 0.6);
  await saveModel(embedding, embeddingDir);
  embedding.dispose();
});
afterAll(() => {
  expect(tf.memory().numTensors).toBe(tensorsBefore);
});

describe('entk kernel --model', () => {
  it('a Sequential Dense model: structured ≡ jacobian ≡ empiricalNtkFn; CSV and npy points; verified store', async () => {
    const sOut = path.join(dir, 'stores', 'dense-structured');
    const jOut = path.join(dir, 'stores', 'dense-jacobian');
    const [s, j] = await runMany([
      [
        'kernel',
        '--model',
        denseDir,
        '--points',
        `file:${csv}`,
        '--out',
        sOut,
        '--implementation',
        'structured',
        '--json',
      ],
      [
        'kernel',
        '--model',
        path.join(denseDir, 'model.json'),
        '--points',
        `npy:${npy}`,
        '--out',
        jOut,
        '--implementation',
        'jacobian',
      ],
    ]);
    expect(s!.status, s!.stderr).toBe(0);
    expect(j!.status, j!.stderr).toBe(0);
    expect(s!.stderr).toBe('');
    const summary = JSON.parse(s!.stdout)[0];
    expect(summary).toMatchObject({
      dir: sOut,
      source: 'model',
      checkpoint: null,
      implementation: 'structured',
      shape: [N * 3, N * 3],
      unsupported: [],
    });
    expect(j!.stdout).toMatch(/dense-jacobian {2}full \[15, 15\] float32 {2}N=5 V=3 {2}model {2}jacobian/);

    const a = await readKernelStore(sOut);
    const b = await readKernelStore(jOut);
    expect(a.manifest.source).toMatchObject({ kind: 'model', unsupported: [], modelClass: 'Sequential' });
    const hashes = await hashModelFiles(path.join(denseDir, 'model.json'));
    expect(a.manifest.source).toMatchObject({ sha256: hashes.sha256, files: hashes.files });
    expect(hashes.files.map((f) => f.file)).toEqual(['model.json', 'weights.bin']);
    expect([a.manifest.run, a.manifest.checkpoint]).toEqual([null, null]);
    expect(a.manifest.points.ids).toEqual(['p0', 'p1', 'p2', 'p3', 'p4']);
    expect(b.manifest.points.ids).toEqual([
      'points-0000',
      'points-0001',
      'points-0002',
      'points-0003',
      'points-0004',
    ]);
    expect(Array.from(a.labels!.data as Int32Array)).toEqual([-1, -1, -1, -1, -1]);
    expect(Array.from(a.inputs!.data as Float32Array)).toEqual(Array.from(b.inputs!.data as Float32Array));
    // Stored kernel = the library on the same points (same implementation, same float32 path).
    const ka = a.kernel.data as Float32Array;
    const kb = b.kernel.data as Float32Array;
    expect(relDiff(ka, await reference(denseDir, 'structured'))).toBeLessThanOrEqual(1e-6);
    expect(relDiff(kb, await reference(denseDir, 'jacobian'))).toBeLessThanOrEqual(1e-6);
    // The two implementations agree (float32 accumulation: 1e-5 relative to max |K|).
    expect(relDiff(ka, kb)).toBeLessThanOrEqual(1e-5);
    // Logits in the store are the model's.
    const { model } = await loadUserModel(denseDir);
    const logits = tf.tidy(() =>
      (model.predict(tf.tensor(a.inputs!.data as Float32Array, [N, D])) as tf.Tensor).dataSync(),
    );
    expect(relDiff(a.logits!.data as Float32Array, logits)).toBeLessThanOrEqual(1e-6);
    model.dispose();

    const [verify, list] = await runMany([
      ['kernel', 'verify', sOut],
      ['kernel', 'list', path.join(dir, 'stores'), '--json'],
    ]);
    expect(verify!.stdout).toContain(`ok  ${sOut}`);
    expect(JSON.parse(list!.stdout).map((e: { dir: string }) => e.dir)).toEqual([jOut, sOut]);
  });

  it('a residual model with LayerNormalization is structured and the CLI prints the rule of every layer', async () => {
    const out = path.join(dir, 'stores', 'resid');
    const [auto, json] = await runMany([
      ['kernel', '--model', residDir, '--points', `file:${jsonl}`, '--out', out],
      ['kernel', '--model', residDir, '--points', `file:${csv}`, '--out', `${out}-json`, '--trace', '--json'],
    ]);
    expect(auto!.status, auto!.stderr).toBe(0);
    expect(auto!.stderr.trimEnd().split('\n')).toEqual([
      'entk: eNTK per layer (layer, class, rule, parameters):',
      `  h  Dense  dense-factored  ${D * 6 + 6}`,
      '  ln  LayerNormalization  layernorm  12',
      '  g  Dense  dense-factored  42',
      '  out  Dense  dense-identity  21',
    ]);
    expect(auto!.stdout).toMatch(/resid {2}full \[15, 15\] float32 {2}N=5 V=3 {2}model {2}structured/);
    const store = await readKernelStore(out);
    expect(store.manifest.kernel.implementation).toBe('structured');
    expect(Array.from(store.labels!.data as Int32Array)).toEqual([0, 1, 2, 0, 1]);
    // The structured kernel equals the whole-model Jacobian one.
    expect(
      relDiff(store.kernel.data as Float32Array, await reference(residDir, 'jacobian')),
    ).toBeLessThanOrEqual(1e-5);

    expect(json!.status, json!.stderr).toBe(0);
    const summary = JSON.parse(json!.stdout)[0];
    expect([summary.kind, summary.shape, summary.implementation]).toEqual(['trace', [N, N], 'structured']);
    expect(summary.unsupported).toEqual([]);
    expect(summary.rules.map((r: { rule: string }) => r.rule)).toEqual([
      'dense-factored',
      'layernorm',
      'dense-factored',
      'dense-identity',
    ]);
  });

  it.each([
    ['a Dense softmax', softmaxDir, 'probs (Dense)'],
    ['a Softmax layer', softmaxLayerDir, 'probs (Softmax)'],
  ])(
    '%s output is refused; --logits pre-activation stores the kernel and logits before the softmax',
    async (_name, modelDir, layer) => {
      const out = path.join(dir, 'stores', path.basename(modelDir));
      const [refused, pre] = await runMany([
        ['kernel', '--model', modelDir, '--points', `file:${csv}`, '--out', out],
        [
          'kernel',
          '--model',
          modelDir,
          '--points',
          `file:${csv}`,
          '--out',
          out,
          '--logits',
          'pre-activation',
        ],
      ]);
      expectOneLineError(
        refused!,
        new RegExp(
          `output layer ${layer.replace(/[()]/g, '\\$&')} applies softmax, so the model outputs probabilities .*logits: 'pre-activation' \\(CLI --logits pre-activation\\)`,
        ),
      );
      expect(pre!.status, pre!.stderr).toBe(0);
      const store = await readKernelStore(out);
      // The same weights without the softmax: the dense model saved in beforeAll.
      expect(
        relDiff(store.kernel.data as Float32Array, await reference(denseDir, 'jacobian')),
      ).toBeLessThanOrEqual(1e-5);
      const { model } = await loadUserModel(denseDir);
      const logits = tf.tidy(() =>
        (model.predict(tf.tensor(store.inputs!.data as Float32Array, [N, D])) as tf.Tensor).dataSync(),
      );
      expect(relDiff(store.logits!.data as Float32Array, logits)).toBeLessThanOrEqual(1e-6);
      model.dispose();
    },
  );

  it('rejects bad inputs with one line and exit code 2', async () => {
    const noWeights = path.join(dir, 'no-weights');
    mkdirSync(noWeights, { recursive: true });
    copyFileSync(path.join(denseDir, 'model.json'), path.join(noWeights, 'model.json'));
    const narrow = path.join(dir, 'narrow.csv');
    writeFileSync(narrow, 'a,b,c\n1,2,3\n4,5,6\n');
    const badNpy = path.join(dir, 'bad.npy');
    await writeArray(badNpy, { dtype: 'float32', shape: [2, 5], data: new Float32Array(10) });
    const out = path.join(dir, 'bad-out');
    const cases: Array<[string[], RegExp]> = [
      [
        ['kernel', '--model', path.join(dir, 'nowhere'), '--points', `file:${csv}`, '--out', out],
        /model: expected an existing model\.json file or a directory containing one/,
      ],
      [['kernel', '--model', noWeights, '--points', `file:${csv}`, '--out', out], /weights?\.bin/],
      [
        ['kernel', '--model', denseDir, '--points', `file:${narrow}`, '--out', out],
        /points: expected points with the model's 4 input features \(input shape \[4\]\); the file has 3 \(a, b, c\)/,
      ],
      [
        ['kernel', '--model', denseDir, '--points', `npy:${badNpy}`, '--out', out],
        /points: expected points with the model's 4 input features .* shape \[2, 5\]/,
      ],
      [
        ['kernel', '--model', denseDir, '--points', 'train:5', '--out', out],
        /train:\/test:\/ids: terms need --run/,
      ],
      [
        ['kernel', '--model', denseDir, '--points', `file:${csv}`],
        /--out: expected a directory for the kernel store/,
      ],
      [
        ['kernel', '--model', denseDir, '--run', dir, '--points', `file:${csv}`, '--out', out],
        /either --run or --model/,
      ],
      [
        ['kernel', '--model', denseDir, '--points', `file:${csv}`, '--out', out, '--checkpoint', 'all'],
        /--checkpoint: expected nothing with --model/,
      ],
    ];
    const results = await runMany(cases.map(([args]) => args));
    for (const [k, r] of results.entries()) expectOneLineError(r, cases[k]![1]);
  });

  it("token ids outside an Embedding's rows: one line naming --points, the point, the entry and the layer; no store", async () => {
    const ok = path.join(dir, 'ids.npy');
    await writeArray(ok, { dtype: 'int32', shape: [2, D], data: Int32Array.from([0, 1, 2, 3, 4, 4, 0, 1]) });
    const cases: Array<[string, number[], string]> = [
      ['above.npy', [0, 1, 2, 3, 4, 1, 5, 0], '5 at point 1, entry [2]'],
      ['negative.npy', [0, -1, 2, 3, 4, 1, 0, 0], '-1 at point 0, entry [1]'],
      ['fraction.npy', [0, 1, 2, 3, 4, 1, 0, 0.5], '0.5 at point 1, entry [3]'],
    ];
    const argvs: string[][] = [];
    for (const [file, ids] of cases) {
      await writeArray(path.join(dir, file), {
        dtype: 'float32',
        shape: [2, D],
        data: Float32Array.from(ids),
      });
      for (const implementation of ['structured', 'jacobian'])
        argvs.push([
          'kernel',
          '--model',
          embeddingDir,
          '--points',
          `npy:${path.join(dir, file)}`,
          '--out',
          path.join(dir, `ids-${file}-${implementation}`),
          '--implementation',
          implementation,
        ]);
    }
    // The same model over valid ids (0 and inputDim − 1 included) computes its store.
    argvs.push([
      'kernel',
      '--model',
      embeddingDir,
      '--points',
      `npy:${ok}`,
      '--out',
      path.join(dir, 'ids-ok'),
    ]);
    const results = await runMany(argvs);
    for (const [k, r] of results.slice(0, -1).entries()) {
      const received = cases[Math.floor(k / 2)]![2].replace(/[.[\]]/g, '\\$&');
      expectOneLineError(
        r,
        new RegExp(
          `^entk: error: --points: expected integer token ids in \\[0, 5\\) for layer emb \\(Embedding\\), received "${received}"$`,
        ),
      );
      expect(existsSync(argvs[k]![6]!), argvs[k]![6]).toBe(false);
    }
    expect(results.at(-1)!.status, results.at(-1)!.stderr).toBe(0);
    expect((await readKernelStore(path.join(dir, 'ids-ok'))).manifest.kernel.shape).toEqual([6, 6]);
  });
});
