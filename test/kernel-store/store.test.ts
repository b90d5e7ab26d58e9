import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { ENTK_VERSION } from '../../src/backend/index.js';
import { CorruptFileError, InvalidArgumentError } from '../../src/errors.js';
import type { ArrayFormat, NdArray } from '../../src/io/index.js';
import {
  exportKernelStore,
  KERNEL_STORE_VERSION,
  kernelBlock,
  listKernelStores,
  MANIFEST_JSON,
  pointIndices,
  readKernelManifest,
  readKernelRows,
  readKernelStore,
  verifyKernelStore,
  writeKernelStore,
} from '../../src/kernel-store/index.js';
import { sameArray } from '../io/helpers.js';
import { tempDir } from '../util/temp-dir.js';
import { syntheticStore } from './synthetic-store.js';

const dir = tempDir('store');

describe('kernel store round trip', () => {
  it('writes and reads back every array in every format, verified, with a complete manifest', async () => {
    for (const format of ['npy', 'npz', 'safetensors', 'json'] as ArrayFormat[]) {
      for (const kind of ['full', 'diagonal', 'trace'] as const) {
        const { manifest, arrays } = syntheticStore(5, 3, kind, kind === 'trace' ? 'float64' : 'float32');
        const store = path.join(dir, format, kind, 'step-000010');
        const written = await writeKernelStore(store, { manifest, arrays, format });
        expect(written.format).toBe('entk-kernel-store');
        expect(written.formatVersion).toBe(KERNEL_STORE_VERSION);
        expect(written.kernel.indexConvention).toMatch(/row n\*V \+ i, column m\*V \+ j/);
        expect(Object.keys(written.arrays).sort()).toEqual([
          'inputs',
          'kernel',
          'labels',
          'logits',
          'probabilities',
        ]);
        expect(written.arrays.kernel!.file).toBe(`kernel.${format}`);
        // What wrote it: versions, the command line, and the unit of the timings.
        expect(written.versions).toEqual({
          entk: ENTK_VERSION,
          tfjs: tf.version.tfjs,
          node: process.versions.node,
        });
        expect(written.commandLine).toEqual(process.argv.slice(1));
        expect(written.kernel.timingsUnit).toBe('ms');
        const back = await readKernelStore(store);
        expect(back.manifest).toEqual(written);
        for (const name of ['kernel', 'inputs', 'labels', 'logits', 'probabilities'] as const) {
          expect(sameArray(back[name]!, arrays[name] as NdArray), `${format} ${kind} ${name}`).toBe(true);
        }
        expect((await verifyKernelStore(store)).points.ids).toEqual(manifest.points.ids);
      }
    }
    const listed = await listKernelStores(path.join(dir, 'npy'));
    expect(listed.map((s) => [s.pointSet, s.checkpointId, s.kind, s.count])).toEqual([
      ['pts', 'step-000010', 'diagonal', 5],
      ['pts', 'step-000010', 'full', 5],
      ['pts', 'step-000010', 'trace', 5],
    ]);
  });

  it('gives kernel blocks and row ranges in the point-major convention', async () => {
    const { manifest, arrays } = syntheticStore(6, 2, 'full', 'float64');
    const store = path.join(dir, 'blocks', 'step-000010');
    await writeKernelStore(store, { manifest, arrays });
    const s = await readKernelStore(store);
    const K = arrays.kernel.data as Float64Array;
    const V = 2;
    const width = 6 * V;
    const rows = pointIndices(s.manifest, ['p4', 'p1']);
    const cols = pointIndices(s.manifest, ['p0', 'p5', 'p2']);
    const block = kernelBlock(s, rows, cols);
    expect(block.length).toBe(2 * V * 3 * V);
    for (let a = 0; a < 2; a++)
      for (let i = 0; i < V; i++)
        for (let b = 0; b < 3; b++)
          for (let j = 0; j < V; j++) {
            expect(block[(a * V + i) * 3 * V + b * V + j]).toBe(
              K[(rows[a]! * V + i) * width + cols[b]! * V + j],
            );
          }
    expect(() => pointIndices(s.manifest, ['nope'])).toThrow(
      /ids: expected ids of the store's point set "pts"/,
    );
    const r = await readKernelRows(store, 2, 3);
    expect(r.shape).toEqual([3 * V, width]);
    expect(Array.from(r.data as Float64Array)).toEqual(Array.from(K.subarray(2 * V * width, 5 * V * width)));
  });

  it('refuses arrays that do not fit the manifest, naming the field', async () => {
    const { manifest, arrays } = syntheticStore(4, 3);
    const store = path.join(dir, 'bad', 'step-000010');
    await expect(
      writeKernelStore(store, {
        manifest,
        arrays: { ...arrays, kernel: { ...arrays.kernel, shape: [12, 11] } },
      }),
    ).rejects.toThrow(
      /arrays.kernel.shape: expected \[12, 12\] for kind 'full' with N = 4, V = 3, received "\[12, 11\]"/,
    );
    await expect(
      writeKernelStore(store, {
        manifest,
        arrays: { ...arrays, labels: { dtype: 'float32', shape: [4], data: new Float32Array(4) } },
      }),
    ).rejects.toThrow(/arrays.labels.dtype: expected int32/);
    await expect(
      writeKernelStore(store, {
        manifest: { ...manifest, points: { ...manifest.points, ids: ['a'] } },
        arrays,
      }),
    ).rejects.toThrow(InvalidArgumentError);
    await expect(readKernelStore(path.join(dir, 'nothing-here'))).rejects.toThrow(
      /store: expected a kernel store directory \(no manifest.json\)/,
    );
  });
});

describe('kernel store verification', () => {
  it('detects a tampered array file, a tampered manifest and a newer format version', async () => {
    const { manifest, arrays } = syntheticStore(4, 3);
    const store = path.join(dir, 'tamper', 'step-000010');
    await writeKernelStore(store, { manifest, arrays });
    const kernelFile = path.join(store, 'kernel.npy');
    const good = readFileSync(kernelFile);
    const bad = Buffer.from(good);
    bad[bad.length - 2] ^= 1;
    writeFileSync(kernelFile, bad);
    await expect(readKernelStore(store)).rejects.toThrow(/kernel.npy: sha256 mismatch/);
    await expect(verifyKernelStore(store)).rejects.toThrow(CorruptFileError);
    writeFileSync(kernelFile, good);
    await readKernelStore(store);

    const manifestFile = path.join(store, MANIFEST_JSON);
    const text = readFileSync(manifestFile, 'utf8');
    const json = JSON.parse(text);
    writeFileSync(manifestFile, JSON.stringify({ ...json, points: { ...json.points, count: 5 } }));
    await expect(readKernelStore(store)).rejects.toThrow(/points.ids\/sources must list all 5 points/);
    json.arrays.kernel.shape = [12, 13];
    writeFileSync(manifestFile, JSON.stringify(json));
    await expect(readKernelStore(store)).rejects.toThrow(
      /arrays.kernel.shape \[12, 13\] does not fit kind 'full'/,
    );
    writeFileSync(
      manifestFile,
      JSON.stringify({ ...JSON.parse(text), formatVersion: KERNEL_STORE_VERSION + 1 }),
    );
    await expect(readKernelManifest(store)).rejects.toThrow(
      new RegExp(`format version ${KERNEL_STORE_VERSION + 1} is newer than this entk supports`),
    );
    writeFileSync(
      manifestFile,
      JSON.stringify({ ...JSON.parse(text), kernel: { ...JSON.parse(text).kernel, kind: 'odd' } }),
    );
    await expect(readKernelManifest(store)).rejects.toThrow(/invalid manifest at kernel.kind/);
    writeFileSync(manifestFile, text.slice(0, 100));
    await expect(readKernelManifest(store)).rejects.toThrow(/manifest.json: not valid JSON/);
  });

  it('an export interrupted mid-write leaves the previous store intact', async () => {
    const { manifest, arrays } = syntheticStore(4, 3);
    const store = path.join(dir, 'atomic', 'step-000010');
    const first = await writeKernelStore(store, { manifest, arrays });
    const failing = writeKernelStore(store, {
      manifest,
      overwrite: true,
      arrays: {
        ...arrays,
        kernel: {
          dtype: 'float32',
          shape: [12, 12],
          data: async (write) => {
            await write(new Float32Array(60));
            throw new Error('simulated crash while writing the kernel');
          },
        },
      },
    });
    await expect(failing).rejects.toThrow(/simulated crash/);
    const after = await readKernelStore(store);
    expect(after.manifest).toEqual(first);
    expect(sameArray(after.kernel, arrays.kernel as NdArray)).toBe(true);
    expect(readdirSync(path.join(dir, 'atomic'))).toEqual(['step-000010']);
  });

  it('exports to every format and back with identical arrays', async () => {
    const { manifest, arrays } = syntheticStore(5, 2, 'full', 'float64');
    const store = path.join(dir, 'exp', 'npy');
    await writeKernelStore(store, { manifest, arrays });
    let from = store;
    for (const format of ['safetensors', 'npz', 'json', 'npy'] as ArrayFormat[]) {
      const out = path.join(dir, 'exp', `to-${format}`);
      const m = await exportKernelStore(from, { format, out });
      expect(m.arrays.kernel!.format).toBe(format);
      const back = await readKernelStore(out);
      for (const name of ['kernel', 'inputs', 'labels', 'logits', 'probabilities'] as const) {
        expect(sameArray(back[name]!, arrays[name] as NdArray), `${format} ${name}`).toBe(true);
      }
      from = out;
    }
    expect(
      readFileSync(path.join(from, 'kernel.npy')).equals(readFileSync(path.join(store, 'kernel.npy'))),
    ).toBe(true);
    await expect(exportKernelStore(store, { format: 'npy', out: store })).rejects.toThrow(
      /out: expected a directory other/,
    );
  });
});
