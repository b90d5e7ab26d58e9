// `entk kernel --model` on saved tfjs models beyond Dense: a CNN (Conv2D → BatchNorm → ReLU →
// MaxPool), DepthwiseConv2D, SeparableConv2D with depthMultiplier 2 (tfjs saves it without
// depth_multiplier), a functional model with a shared layer, a Dense-over-sequence block with
// LayerNormalization, and a hybrid (Conv2DTranspose by autodiff). Each store is checked against the
// library on the same points; the CNN also against the float64 finite-difference kernel.
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeArray } from '../../src/io/index.js';
import { empiricalNtkFn, finiteDifferenceNtk, type NtkLayerRule } from '../../src/kernel/index.js';
import { readKernelStore } from '../../src/kernel-store/index.js';
import { disposeModel, loadModel, saveModel } from '../../src/model/index.js';
import { seedWeights } from '../kernel/graph-nets.js';
import { normalPoints, relMaxError } from '../kernel/helpers.js';
import { tempDir } from '../util/temp-dir.js';
import { type CliResult, expectOneLineError, runCli } from './run-cli.js';

const dir = tempDir('cli-kernel-model-layers');
const L = tf.layers;
type ST = tf.SymbolicTensor;

interface Fixture {
  /** Saved model directory. */
  model: string;
  /** Points [N, ...inputShape] as an .npy file. */
  npy: string;
  x: { data: Float32Array; shape: number[] };
  /** The float64 finite-difference kernel (only where asked for). */
  reference?: Float64Array;
}

/** Save `model` (seeded weights) and N = 3 seeded points; dispose the model. */
async function fixture(
  name: string,
  model: tf.LayersModel,
  inputShape: number[],
  seed: number,
  withReference = false,
): Promise<Fixture> {
  seedWeights(model, seed);
  const modelDir = path.join(dir, name);
  await saveModel(model, modelDir);
  const t = normalPoints(3, inputShape, seed + 1);
  const x = { data: t.dataSync() as Float32Array, shape: t.shape };
  const reference = withReference ? Float64Array.from(finiteDifferenceNtk(model, t).data) : undefined;
  t.dispose();
  disposeModel(model); // (model.dispose() keeps a shared layer's weights)
  const npy = path.join(dir, `${name}-x.npy`);
  await writeArray(npy, { dtype: 'float32', ...x });
  return { model: modelDir, npy, x, reference };
}

const fixtures: Record<string, Fixture> = {};
let tensorsBefore: number;

beforeAll(async () => {
  tensorsBefore = tf.memory().numTensors;
  fixtures.cnn = await fixture(
    'cnn',
    tf.sequential({
      layers: [
        L.conv2d({ inputShape: [6, 6, 2], filters: 3, kernelSize: 3, padding: 'same', name: 'conv' }),
        L.batchNormalization({ name: 'bn' }),
        L.activation({ activation: 'relu' }),
        L.maxPooling2d({ poolSize: 2 }),
        L.flatten(),
        L.dense({ units: 3, name: 'head' }),
      ],
    }),
    [6, 6, 2],
    200,
    true,
  );
  fixtures.depthwise = await fixture(
    'depthwise',
    tf.sequential({
      layers: [
        L.depthwiseConv2d({
          inputShape: [5, 5, 2],
          kernelSize: 3,
          depthMultiplier: 2,
          activation: 'tanh',
          name: 'dw',
        }),
        L.flatten(),
        L.dense({ units: 3, name: 'head' }),
      ],
    }),
    [5, 5, 2],
    210,
  );
  fixtures.separable = await fixture(
    'separable',
    tf.sequential({
      layers: [
        L.separableConv2d({
          inputShape: [5, 5, 2],
          filters: 3,
          kernelSize: 3,
          depthMultiplier: 2,
          padding: 'same',
          activation: 'tanh',
          name: 'sep',
        }),
        L.flatten(),
        L.dense({ units: 3, name: 'head' }),
      ],
    }),
    [5, 5, 2],
    220,
    true,
  );
  {
    // A dense layer shared by two branches, concatenated.
    const x = tf.input({ shape: [4] });
    const shared = L.dense({ units: 4, activation: 'tanh', name: 'shared' });
    const b1 = shared.apply(x) as ST;
    const b2 = shared.apply(L.dense({ units: 4, name: 'pre' }).apply(x) as ST) as ST;
    const c = L.concatenate().apply([b1, b2]) as ST;
    const out = L.dense({ units: 3, name: 'head' }).apply(c) as ST;
    fixtures.shared = await fixture('shared', tf.model({ inputs: x, outputs: out }), [4], 230);
  }
  {
    // Dense over a sequence [T, d], layer norm, a gelu MLP with a residual, average pooling, head.
    const x = tf.input({ shape: [4, 3] });
    const e = L.dense({ units: 4, name: 'embed' }).apply(x) as ST;
    const n = L.layerNormalization({ name: 'ln' }).apply(e) as ST;
    const m = L.dense({ units: 4, activation: 'gelu', name: 'mlp' }).apply(n) as ST;
    const s = L.add().apply([e, m]) as ST;
    const g = L.globalAveragePooling1d().apply(s) as ST;
    const out = L.dense({ units: 3, name: 'head' }).apply(g) as ST;
    fixtures.sequence = await fixture('sequence', tf.model({ inputs: x, outputs: out }), [4, 3], 240);
  }
  fixtures.hybrid = await fixture(
    'hybrid',
    tf.sequential({
      layers: [
        L.reshape({ inputShape: [4], targetShape: [2, 2, 1] }),
        L.conv2dTranspose({ filters: 2, kernelSize: 2, padding: 'valid', name: 'up' }),
        L.flatten(),
        L.activation({ activation: 'tanh' }),
        L.dense({ units: 3, name: 'head' }),
      ],
    }),
    [4],
    250,
  );
  // A sequence output [batch, 4, 2]: no eNTK.
  const seq = tf.sequential({ layers: [L.dense({ inputShape: [4, 3], units: 2 })] });
  await saveModel(seq, path.join(dir, 'seqout'));
  seq.dispose();
});
afterAll(() => {
  expect(tf.memory().numTensors).toBe(tensorsBefore);
});

/** `entk kernel --model <f.model> --points npy:<f.npy> --out <dir/stores/name> ...extra`. */
function kernel(f: Fixture, name: string, ...extra: string[]): Promise<CliResult> {
  const out = path.join(dir, 'stores', name);
  return runCli(['kernel', '--model', f.model, '--points', `npy:${f.npy}`, '--out', out, ...extra]);
}

/** The rule lines the CLI prints on stderr after its header. */
function printedRules(r: CliResult): Array<[string, string, string, number]> {
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines[0]).toBe('entk: eNTK per layer (layer, class, rule, parameters):');
  return lines.slice(1).map((line) => {
    const [name, className, rule, parameters] = line.trim().split(/ {2}/);
    return [name!, className!, rule!, Number.parseInt(parameters!, 10)];
  });
}

/** The library's kernel and rules on the saved model and the same points. */
async function library(f: Fixture, options: Parameters<typeof empiricalNtkFn>[1] = {}) {
  const model = await loadModel(f.model);
  const ntk = empiricalNtkFn(model, { progress: false, ...options });
  const r = await ntk(f.x);
  await ntk.dispose();
  disposeModel(model);
  return r;
}

const asRows = (rules: NtkLayerRule[]) =>
  rules.map((r) => [r.name, r.className, r.rule, r.parameters] as [string, string, string, number]);

describe('entk kernel --model on convolutional, shared and sequence models', () => {
  it('CNN Conv2D → BatchNorm → ReLU → MaxPool: rules printed and stored; kernel = library = float64 finite differences', async () => {
    const f = fixtures.cnn!;
    const r = await kernel(f, 'cnn');
    expect(r.status, r.stderr).toBe(0);
    const rules = printedRules(r);
    expect(rules.map(([name, , rule]) => [name, rule])).toEqual([
      ['conv', expect.stringMatching(/^conv2d-(pooled|explicit)$/)],
      ['bn', 'batchnorm'],
      ['head', 'dense-identity'],
    ]);
    // conv 3·3·2·3 + 3, bn gamma and beta 2·3, head 27·3 + 3
    expect(rules.map(([, , , p]) => p)).toEqual([57, 6, 84]);
    const store = await readKernelStore(path.join(dir, 'stores', 'cnn'));
    const lib = await library(f);
    expect(asRows(lib.rules)).toEqual(rules);
    expect(store.manifest.kernel.rules?.map((x) => [x.name, x.className, x.rule, x.parameters])).toEqual(
      rules,
    );
    expect(store.kernel.shape).toEqual([9, 9]);
    const k = store.kernel.data as Float32Array;
    expect(relMaxError(k, lib.data)).toBeLessThanOrEqual(1e-6);
    expect(relMaxError(k, f.reference!)).toBeLessThanOrEqual(1e-5);
  });

  it('DepthwiseConv2D (depthMultiplier 2): depthwise-explicit; kernel = library', async () => {
    const f = fixtures.depthwise!;
    const r = await kernel(f, 'depthwise');
    expect(r.status, r.stderr).toBe(0);
    const rules = printedRules(r);
    // dw 3·3·2·2 + 4, head (3·3·4)·3 + 3
    expect(rules).toEqual([
      ['dw', 'DepthwiseConv2D', 'depthwise-explicit', 40],
      ['head', 'Dense', 'dense-identity', 111],
    ]);
    const store = await readKernelStore(path.join(dir, 'stores', 'depthwise'));
    const lib = await library(f);
    expect(asRows(lib.rules)).toEqual(rules);
    expect(relMaxError(store.kernel.data as Float32Array, lib.data)).toBeLessThanOrEqual(1e-6);
  });

  it('SeparableConv2D with depthMultiplier 2 as tfjs saves it (no depth_multiplier in model.json) loads and matches finite differences', async () => {
    const f = fixtures.separable!;
    const file = path.join(f.model, 'model.json');
    const json = JSON.parse(readFileSync(file, 'utf8'));
    const config = json.modelTopology.config.layers[0].config;
    // entk's saveModel writes the field; tfjs 4.22's own save leaves it out (test/model/io.test.ts),
    // which is what the loader's inference is for: remove it as tfjs would.
    expect(config.depth_multiplier).toBe(2);
    delete config.depth_multiplier;
    writeFileSync(file, JSON.stringify(json));
    const r = await kernel(f, 'separable');
    expect(r.status, r.stderr).toBe(0);
    // sep: depthwise 3·3·2·2 + pointwise 4·3 + bias 3; head 75·3 + 3
    expect(printedRules(r)).toEqual([
      ['sep', 'SeparableConv2D', 'separable-explicit', 51],
      ['head', 'Dense', 'dense-identity', 228],
    ]);
    const store = await readKernelStore(path.join(dir, 'stores', 'separable'));
    const k = store.kernel.data as Float32Array;
    expect(relMaxError(k, (await library(f)).data)).toBeLessThanOrEqual(1e-6);
    expect(relMaxError(k, f.reference!)).toBeLessThanOrEqual(1e-5);
  });

  it('a functional model with a shared layer: dense-explicit over its 2 calls; kernel = library', async () => {
    const f = fixtures.shared!;
    const r = await kernel(f, 'shared');
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toContain('  shared  Dense  dense-explicit  20, 2 calls');
    expect(printedRules(r).map(([name, , rule]) => [name, rule])).toEqual(
      expect.arrayContaining([
        ['shared', 'dense-explicit'],
        ['pre', 'dense-factored'],
        ['head', 'dense-identity'],
      ]),
    );
    const store = await readKernelStore(path.join(dir, 'stores', 'shared'));
    expect(store.manifest.kernel.rules?.find((x) => x.name === 'shared')).toEqual({
      name: 'shared',
      className: 'Dense',
      rule: 'dense-explicit',
      parameters: 20,
      uses: 2,
    });
    expect(relMaxError(store.kernel.data as Float32Array, (await library(f)).data)).toBeLessThanOrEqual(1e-6);
  });

  it('Dense over a sequence with LayerNormalization: dense-explicit and layernorm; kernel = library', async () => {
    const f = fixtures.sequence!;
    const r = await kernel(f, 'sequence');
    expect(r.status, r.stderr).toBe(0);
    expect(printedRules(r)).toEqual([
      ['embed', 'Dense', 'dense-explicit', 16],
      ['ln', 'LayerNormalization', 'layernorm', 8],
      ['mlp', 'Dense', 'dense-explicit', 20],
      ['head', 'Dense', 'dense-identity', 15],
    ]);
    const store = await readKernelStore(path.join(dir, 'stores', 'sequence'));
    expect(relMaxError(store.kernel.data as Float32Array, (await library(f)).data)).toBeLessThanOrEqual(1e-6);
  });
});

describe('entk kernel --model manifests: implementation, rules and contraction', () => {
  it('a hybrid run (a layer by autodiff) is recorded with its rules; every kind records its contraction', async () => {
    const f = fixtures.hybrid!;
    const [full, diag, diag64] = await Promise.all([
      kernel(f, 'hybrid-full'),
      kernel(f, 'hybrid-diag', '--diagonal', '--json'),
      kernel(f, 'hybrid-diag64', '--diagonal', '--float64'),
    ]);
    for (const r of [full, diag, diag64]) expect(r!.status, r!.stderr).toBe(0);
    expect(full!.stdout).toMatch(/model {2}structured \(hybrid: autodiff for up\)/);
    const lib = await library(f);
    expect(lib.implementation).toBe('structured');
    const expectedRules = [
      { name: 'up', className: 'Conv2DTranspose', rule: 'autodiff', parameters: 10, uses: 1 },
      { name: 'head', className: 'Dense', rule: 'dense-identity', parameters: 57, uses: 1 },
    ];
    const stores = await Promise.all(
      ['hybrid-full', 'hybrid-diag', 'hybrid-diag64'].map((s) =>
        readKernelStore(path.join(dir, 'stores', s)),
      ),
    );
    for (const s of stores) {
      expect(s.manifest.kernel.implementation).toBe(lib.implementation);
      expect(s.manifest.kernel.rules).toEqual(expectedRules);
    }
    // The contraction that ran: as the result reports it (full); diagonal blocks are batched tfjs
    // products in float32 and plain JS in float64.
    expect(stores.map((s) => s.manifest.kernel.contraction)).toEqual([lib.contraction, 'tfjs', 'js']);
    expect(lib.contraction).toBe('wasm');
    expect(relMaxError(stores[0]!.kernel.data as Float32Array, lib.data)).toBeLessThanOrEqual(1e-6);
    // --json reports the same.
    const summary = JSON.parse(diag!.stdout)[0];
    expect([summary.implementation, summary.contraction, summary.rules]).toEqual([
      'structured',
      'tfjs',
      expectedRules,
    ]);
  });
});

describe('entk kernel --model: messages name the flag, the value and what was expected', () => {
  it('--parameters, --shard and a sequence output', async () => {
    const f = fixtures.shared!;
    const out = path.join(dir, 'bad');
    const base = ['kernel', '--model', f.model, '--points', `npy:${f.npy}`, '--out', out];
    const [parameters, shardOrder, shardCount, seq] = await Promise.all([
      runCli([...base, '--parameters', 'nope']),
      runCli([...base, '--shard', '3/2']),
      runCli([...base, '--shard', '0/4']),
      runCli([
        'kernel',
        '--model',
        path.join(dir, 'seqout'),
        '--points',
        `npy:${fixtures.sequence!.npy}`,
        '--out',
        out,
      ]),
    ]);
    expectOneLineError(
      parameters!,
      /error: --parameters: expected names of layers of the model \(.*shared.*\), or a name prefix ending in '\/', received "nope"$/,
    );
    expectOneLineError(
      shardOrder!,
      /error: --shard: expected i\/n with 0 <= i < n \(e\.g\. 0\/8 for the first of 8 shards\), received "3\/2"$/,
    );
    expectOneLineError(
      shardCount!,
      /error: --shard: expected at most 3 shards \(one per point\), received "0\/4"$/,
    );
    expectOneLineError(
      seq!,
      /seqout\/model\.json: no eNTK can be computed: output shape \[batch, 4, 2\]; the eNTK needs logits of shape \[batch, V\]$/,
    );
  });
});
