import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { crc32Reference } from '../../src/io/binary.js';
import { type ArrayEntry, crc32, type NdArray, readArray, readNpz, writeNpz } from '../../src/io/index.js';
import { DTYPES, python, RUN_NUMPY_TESTS, SHAPES, sameArray, sampleArray, tempDir } from './helpers.js';

const dir = tempDir('npz');

function allArrays(seed: number): Record<string, NdArray> {
  const out: Record<string, NdArray> = {};
  for (const dtype of DTYPES) {
    SHAPES.forEach((shape, k) => {
      out[`${dtype}_${k}`] = sampleArray(dtype, shape, seed);
    });
  }
  return out;
}

/** The same arrays as entries whose data arrive through producers in uneven chunks. */
function streamed(arrays: Record<string, NdArray>): ArrayEntry[] {
  return Object.entries(arrays).map(([name, a]) => ({
    name,
    dtype: a.dtype,
    shape: a.shape,
    data: async (write) => {
      for (let o = 0; o < a.data.length; o += 3) await write(a.data.subarray(o, o + 3));
      if (a.data.length === 0) await write(a.data);
    },
  }));
}

describe('crc32', () => {
  it('matches the pure-JS reference and the standard check value', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    const bytes = new Uint8Array(100_000).map((_, k) => (k * 31 + (k >> 7)) & 255);
    expect(crc32(bytes)).toBe(crc32Reference(bytes));
    expect(crc32(bytes.subarray(5000), crc32(bytes.subarray(0, 5000)))).toBe(crc32Reference(bytes));
  });
});

describe('npz round trip', () => {
  it('round-trips every dtype and shape, with in-memory and streamed members, and zip64 records', async () => {
    const arrays = allArrays(5);
    for (const [label, source, options] of [
      ['plain', arrays, {}],
      ['streamed', streamed(arrays), {}],
      ['zip64', arrays, { zip64Threshold: 100 }],
      ['zip64-streamed', streamed(arrays), { zip64Threshold: 100 }],
    ] as const) {
      const file = path.join(dir, `${label}.npz`);
      const info = await writeNpz(file, source, options);
      const back = await readNpz(file, { sha256: info.sha256 });
      expect(Object.keys(back.arrays)).toEqual(Object.keys(arrays));
      for (const [name, a] of Object.entries(arrays))
        expect(sameArray(back.arrays[name], a), `${label} ${name}`).toBe(true);
      const again = await writeNpz(path.join(dir, `${label}-again.npz`), source, options);
      expect(again.sha256, 'bytes are stable').toBe(info.sha256);
    }
    const one = await readArray(path.join(dir, 'plain.npz'), { name: 'float32_3' });
    expect(sameArray(one, arrays.float32_3)).toBe(true);
    await expect(readArray(path.join(dir, 'plain.npz'))).rejects.toThrow(/name: expected one of the arrays/);
  });

  it('detects a flipped data bit (CRC-32), truncation and a damaged directory', async () => {
    const arrays = { a: sampleArray('float64', [20, 3]), b: sampleArray('int32', [5]) };
    const file = path.join(dir, 'v.npz');
    await writeNpz(file, arrays);
    const good = readFileSync(file);
    const bad = path.join(dir, 'v-bad.npz');
    const flipped = Buffer.from(good);
    flipped[200] ^= 4; // inside a's data
    writeFileSync(bad, flipped);
    await expect(readNpz(bad)).rejects.toThrow(/v-bad.npz:a.npy: CRC-32 mismatch/);
    writeFileSync(bad, good.subarray(0, good.length - 10));
    await expect(readNpz(bad)).rejects.toThrow(/no end-of-central-directory record/);
    writeFileSync(bad, good.subarray(0, 300));
    await expect(readNpz(bad)).rejects.toThrow(/truncated|no end-of-central/);
    const renamed = Buffer.from(good.toString('latin1').replace('b.npy', 'c.npy'), 'latin1'); // local header only
    writeFileSync(bad, renamed);
    await expect(readNpz(bad)).rejects.toThrow(/local header name differs/);
    await expect(writeNpz(bad, { a: arrays.a, '': arrays.b })).rejects.toThrow(
      /array name: expected a non-empty/,
    );
  });
});

describe.runIf(RUN_NUMPY_TESTS)('npz with NumPy', () => {
  it('numpy.load reads plain, streamed (data descriptor) and zip64 archives bit for bit', async () => {
    const arrays = allArrays(9);
    const files: string[] = [];
    for (const [label, source, options] of [
      ['np-plain', arrays, {}],
      ['np-streamed', streamed(arrays), {}],
      ['np-zip64', streamed(arrays), { zip64Threshold: 100 }],
    ] as const) {
      const file = path.join(dir, `${label}.npz`);
      await writeNpz(file, source, options);
      files.push(file);
    }
    const out = python(
      `
import zipfile
for f in sys.argv[1:]:
    assert zipfile.ZipFile(f).testzip() is None, f
    z = np.load(f, allow_pickle=False)
    print(json.dumps({k: [z[k].dtype.str, list(z[k].shape), z[k].tobytes().hex()] for k in z.files}))
`,
      ...files,
    );
    for (const line of out.trim().split('\n')) {
      const got = JSON.parse(line);
      expect(Object.keys(got)).toEqual(Object.keys(arrays));
      for (const [name, a] of Object.entries(arrays)) {
        expect(got[name][1]).toEqual(a.shape);
        expect(got[name][2], name).toBe(
          Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).toString('hex'),
        );
      }
    }
  });

  it('reads archives written by numpy.savez; refuses savez_compressed clearly', async () => {
    const file = path.join(dir, 'from-numpy.npz');
    const compressed = path.join(dir, 'from-numpy-compressed.npz');
    python(
      `
x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
np.savez(sys.argv[1], x=x, labels=np.array([3, 1, 4], dtype=np.int64))
np.savez_compressed(sys.argv[2], x=x)
`,
      file,
      compressed,
    );
    const { arrays } = await readNpz(file);
    expect(arrays.x.shape).toEqual([3, 4]);
    expect(Array.from(arrays.x.data as Float32Array)[11]).toBe(1);
    expect(Array.from(arrays.labels.data as BigInt64Array)).toEqual([3n, 1n, 4n]);
    await expect(readNpz(compressed)).rejects.toThrow(/compressed npz members are not supported/);
  });
});
