// Model stores (a user-supplied tfjs layers model): points, model hashes, manifest rules, shards.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataFormatError, InvalidArgumentError } from '../../src/errors.js';
import { writeArray } from '../../src/io/index.js';
import {
  computeModelKernelStore,
  hashModelFiles,
  loadModelPoints,
  MANIFEST_JSON,
  mergeKernelShards,
  parseManifest,
  parseModelPointSpec,
  readKernelStore,
} from '../../src/kernel-store/index.js';
import { saveModel } from '../../src/model/index.js';
import { tempDir } from '../util/temp-dir.js';

const dir = tempDir('kernel-store-model');
const modelDir = path.join(dir, 'model');
let tensorsBefore: number;

beforeAll(async () => {
  tensorsBefore = tf.memory().numTensors;
  const model = tf.sequential({
    layers: [
      tf.layers.flatten({ inputShape: [2, 2] }),
      tf.layers.dense({ units: 5, activation: 'relu', name: 'h' }),
      tf.layers.dense({ units: 3, name: 'logits' }),
    ],
  });
  await saveModel(model, modelDir);
  model.dispose();
});
afterAll(() => {
  expect(tf.memory().numTensors).toBe(tensorsBefore);
});

describe('model point specs', () => {
  it('parses file:/npy: terms and names run-only terms in the error', () => {
    expect(parseModelPointSpec('file:a.csv')).toEqual({ kind: 'file', path: 'a.csv' });
    expect(parseModelPointSpec(' npy:x/y.npy ')).toEqual({ kind: 'npy', path: 'x/y.npy' });
    expect(() => parseModelPointSpec('test:all')).toThrow(/terms need --run/);
    expect(() => parseModelPointSpec('a.csv')).toThrow(InvalidArgumentError);
  });

  it('reads JSONL array cells reshaped to the input, optional labels, and array files of either shape', async () => {
    const jsonl = path.join(dir, 'p.jsonl');
    writeFileSync(jsonl, '{"id":"a","x":[1,2,3,4],"label":2}\n{"id":"b","x":[5,6,7,8],"label":0}\n');
    const p = await loadModelPoints(`file:${jsonl}`, [2, 2], 3);
    expect([p.ids, Array.from(p.x), Array.from(p.y), p.inputShape, p.labelled]).toEqual([
      ['a', 'b'],
      [1, 2, 3, 4, 5, 6, 7, 8],
      [2, 0],
      [2, 2],
      true,
    ]);
    writeFileSync(jsonl, '{"x":[1,2,3,4],"label":3}\n');
    await expect(loadModelPoints(`file:${jsonl}`, [2, 2], 3)).rejects.toThrow(DataFormatError);
    const csv = path.join(dir, 'p.csv');
    writeFileSync(csv, 'a,b,c,d\n1,2,3,4\n');
    expect(Array.from((await loadModelPoints(`file:${csv}`, [4], 3)).y)).toEqual([-1]);

    for (const shape of [
      [3, 2, 2],
      [3, 4],
    ]) {
      const file = path.join(dir, `p${shape.length}.npy`);
      await writeArray(file, { dtype: 'int32', shape, data: Int32Array.from({ length: 12 }, (_, k) => k) });
      const q = await loadModelPoints(`npy:${file}`, [2, 2], 3);
      expect([q.ids.length, q.x[11], Array.from(q.y)]).toEqual([3, 11, [-1, -1, -1]]);
    }
    await expect(loadModelPoints(`npy:${path.join(dir, 'p3.npy')}`, [4, 1], 3)).rejects.toThrow(
      /input shape \[4, 1\]\); the file has shape \[3, 2, 2\]/,
    );
  });
});

describe('model stores', () => {
  it('hashes model.json and the weights as sha256sum lines', async () => {
    const h = await hashModelFiles(path.join(modelDir, 'model.json'));
    const sum = (f: string) =>
      createHash('sha256')
        .update(readFileSync(path.join(modelDir, f)))
        .digest('hex');
    const listing = `${sum('model.json')}  model.json\n${sum('weights.bin')}  weights.bin\n`;
    expect(h.sha256).toBe(createHash('sha256').update(listing).digest('hex'));
    expect(h.files.map((f) => f.sha256)).toEqual([sum('model.json'), sum('weights.bin')]);
  });

  it('shards of a model store merge into the one-piece store; the manifest rules hold', async () => {
    const npy = path.join(dir, 'pts.npy');
    await writeArray(npy, {
      dtype: 'float32',
      shape: [6, 2, 2],
      data: Float32Array.from({ length: 24 }, (_, k) => Math.cos(k)),
    });
    const out = path.join(dir, 'stores', 'one');
    const common = { model: modelDir, points: `npy:${npy}`, progress: false } as const;
    const one = await computeModelKernelStore({ ...common, out });
    expect(one.unsupported).toEqual([]);
    expect(one.manifest.kernel.implementation).toBe('structured');
    // which contraction ran and its work: 6 points, V = 3 (at least the 6·3 × 6·3 products)
    expect(one.manifest.kernel.contraction).toBe('wasm');
    expect(one.manifest.kernel.flops).toBeGreaterThan(0);
    const jac = await computeModelKernelStore({
      ...common,
      out: path.join(dir, 'stores', 'jac'),
      implementation: 'jacobian',
      accumulation: 'float64',
    });
    expect([jac.manifest.kernel.implementation, jac.manifest.kernel.contraction]).toEqual(['jacobian', 'js']);
    const sharded = path.join(dir, 'stores', 'sharded');
    for (const index of [0, 1]) {
      await computeModelKernelStore({ ...common, out: sharded, shard: { index, count: 2 } });
    }
    const [merged] = await mergeKernelShards(sharded);
    expect(merged!.dir).toBe(sharded);
    const a = await readKernelStore(sharded);
    const b = await readKernelStore(out);
    expect(Array.from(a.kernel.data as Float32Array)).toEqual(Array.from(b.kernel.data as Float32Array));
    expect(a.manifest.source).toEqual(b.manifest.source);
    expect(a.manifest.kernel.contraction).toBe('wasm');
    expect(a.manifest.kernel.flops).toBeGreaterThan(0);
    // The rule of every layer, as the kernel result reports them; merged from the shards unchanged.
    const rules = [
      { name: 'h', className: 'Dense', rule: 'dense-gated', parameters: 25, uses: 1 },
      { name: 'logits', className: 'Dense', rule: 'dense-identity', parameters: 18, uses: 1 },
    ];
    expect(b.manifest.kernel.rules).toEqual(rules);
    expect(a.manifest.kernel.rules).toEqual(rules);
    expect(jac.manifest.kernel.rules?.map((r) => r.rule)).toEqual(['jacobian', 'jacobian']);

    // A model store needs run and checkpoint null; a run store (source absent: version 1) needs both.
    const json = JSON.parse(readFileSync(path.join(out, MANIFEST_JSON), 'utf8'));
    expect(() => parseManifest(json, 'm.json')).not.toThrow();
    expect(() =>
      parseManifest({ ...json, checkpoint: { id: 'x', step: 0, epoch: 0, metrics: null } }, 'm.json'),
    ).toThrow(/a model store has run and checkpoint null/);
    // A manifest written before kernel.rules and kernel.contraction were recorded still loads.
    const { rules: _r, contraction: _c, flops: _f, ...olderKernel } = json.kernel;
    expect(parseManifest({ ...json, kernel: olderKernel }, 'm.json').kernel.rules).toBeUndefined();
    const { source: _s, ...v1 } = json;
    expect(() => parseManifest({ ...v1, formatVersion: 1 }, 'm.json')).toThrow(
      /invalid manifest at run: required for a run store/,
    );
  });
});
