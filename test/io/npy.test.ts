import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CorruptFileError, InvalidArgumentError, UnsupportedError } from '../../src/errors.js';
import {
  type DType,
  encodeNpyHeader,
  type NdArray,
  readArray,
  readNpy,
  readNpyHeader,
  readNpyRows,
  sha256File,
  streamNpy,
  writeArray,
  writeNpy,
} from '../../src/io/index.js';
import { DTYPES, python, RUN_NUMPY_TESTS, SHAPES, sameArray, sampleArray, tempDir } from './helpers.js';

const dir = tempDir('npy');

describe('npy round trip', () => {
  it('writes and reads back every dtype and shape bit for bit, with stable bytes and a correct sha256', async () => {
    for (const dtype of DTYPES) {
      for (const shape of SHAPES) {
        const a = sampleArray(dtype, shape);
        const file = path.join(dir, `rt-${dtype}-${shape.join('x')}.npy`);
        const info = await writeNpy(file, a);
        const bytes = readFileSync(file);
        expect(info.bytes).toBe(bytes.byteLength);
        expect(info.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
        expect(await sha256File(file)).toBe(info.sha256);
        // Data start at a multiple of 64 bytes (NumPy's ARRAY_ALIGN).
        expect(encodeNpyHeader(a).byteLength % 64).toBe(0);
        const back = await readNpy(file, { sha256: info.sha256 });
        expect(sameArray(back, a), `${dtype} [${shape}]`).toBe(true);
        expect(back.sha256).toBe(info.sha256);
        // Writing again gives the same bytes.
        const again = await writeNpy(path.join(dir, 'again.npy'), a);
        expect(again.sha256).toBe(info.sha256);
      }
    }
  });

  it('streams a large array in chunks to the same bytes as the one-piece writer', async () => {
    const a = sampleArray('float32', [300, 200], 7);
    const one = await writeNpy(path.join(dir, 'one.npy'), a);
    const data = a.data as Float32Array;
    const streamed = await streamNpy(
      path.join(dir, 'streamed.npy'),
      { dtype: 'float32', shape: [300, 200] },
      async (write) => {
        for (let r = 0; r < 300; r += 7) await write(data.subarray(r * 200, Math.min(300, r + 7) * 200));
      },
    );
    expect(streamed.sha256).toBe(one.sha256);
  });

  it('refuses a producer that writes too few, too many or wrongly typed elements, leaving no file', async () => {
    const spec = { dtype: 'float32' as DType, shape: [4] };
    const file = path.join(dir, 'bad-producer.npy');
    await expect(streamNpy(file, spec, async (w) => w(new Float32Array(3)))).rejects.toThrow(
      /expected 4 elements for shape \[4\], received "3 elements"/,
    );
    await expect(streamNpy(file, spec, async (w) => w(new Float32Array(5)))).rejects.toThrow(
      InvalidArgumentError,
    );
    await expect(streamNpy(file, spec, async (w) => w(new Float64Array(4)))).rejects.toThrow(/Float32Array/);
    expect(() => readFileSync(file)).toThrow(/ENOENT/);
  });

  it('reads row ranges without loading the whole array', async () => {
    const a = sampleArray('float64', [10, 3, 2], 3);
    const file = path.join(dir, 'rows.npy');
    await writeNpy(file, a);
    const rows = await readNpyRows(file, 4, 3);
    expect(rows.shape).toEqual([3, 3, 2]);
    expect(Array.from(rows.data as Float64Array)).toEqual(
      Array.from((a.data as Float64Array).subarray(24, 42)),
    );
    await expect(readNpyRows(file, 8, 3)).rejects.toThrow(
      /count: expected an integer in \[0, 2\], received 3/,
    );
    expect((await readNpyHeader(file)).dataOffset).toBe(128);
  });

  it('rejects bad arrays at the boundary, naming the argument', async () => {
    const file = path.join(dir, 'bad.npy');
    await expect(
      writeNpy(file, { dtype: 'float32', shape: [2, 2], data: new Float32Array(3) }),
    ).rejects.toThrow(/array.data: expected 4 elements for shape \[2, 2\]/);
    await expect(
      writeNpy(file, { dtype: 'int32', shape: [2], data: new Float32Array(2) } as never),
    ).rejects.toThrow(/Int32Array for dtype int32/);
    await expect(
      writeNpy(file, { dtype: 'float16', shape: [1], data: new Float32Array(1) } as never),
    ).rejects.toThrow(/array.dtype: expected one of float32/);
    await expect(readNpy(path.join(dir, 'missing.npy'))).rejects.toThrow(/file: expected an existing file/);
  });
});

describe('npy verification', () => {
  it('detects truncation, trailing bytes, tampered headers and hash mismatches', async () => {
    const a = sampleArray('float32', [6, 5]);
    const file = path.join(dir, 'v.npy');
    const info = await writeNpy(file, a);
    const good = readFileSync(file);
    const bad = path.join(dir, 'v-bad.npy');

    writeFileSync(bad, good.subarray(0, good.length - 1));
    await expect(readNpy(bad)).rejects.toThrow(
      /truncated: shape \[6, 5\] float32 needs 120 data bytes, the file has 119/,
    );
    writeFileSync(bad, good.subarray(0, 20));
    await expect(readNpy(bad)).rejects.toThrow(CorruptFileError);
    writeFileSync(bad, good.subarray(0, 5));
    await expect(readNpy(bad)).rejects.toThrow(/too short for an npy header/);
    writeFileSync(bad, Buffer.concat([good, Buffer.from([0])]));
    await expect(readNpy(bad)).rejects.toThrow(/1 unexpected bytes after the data/);

    const magic = Buffer.from(good);
    magic[1] = 0x58;
    writeFileSync(bad, magic);
    await expect(readNpy(bad)).rejects.toThrow(/bad magic/);

    // Change the shape in the header: (6, 5) -> (6, 6): the size check catches it.
    const shape = Buffer.from(good.toString('latin1').replace('(6, 5)', '(6, 6)'), 'latin1');
    writeFileSync(bad, shape);
    await expect(readNpy(bad)).rejects.toThrow(/needs 144 data bytes, the file has 120/);

    const garbled = Buffer.from(good.toString('latin1').replace("'shape'", "'shapf'"), 'latin1');
    writeFileSync(bad, garbled);
    await expect(readNpy(bad)).rejects.toThrow(/lacks descr, fortran_order or shape/);

    const unsupported = Buffer.from(good.toString('latin1').replace("'<f4'", "'<c8'"), 'latin1');
    writeFileSync(bad, unsupported);
    await expect(readNpy(bad)).rejects.toThrow(UnsupportedError);

    // Flip one data bit: structure is fine, the hash catches it.
    const flipped = Buffer.from(good);
    flipped[flipped.length - 3] ^= 1;
    writeFileSync(bad, flipped);
    await expect(readNpy(bad, { sha256: info.sha256 })).rejects.toThrow(/sha256 mismatch/);
    await expect(readArray(bad, { sha256: info.sha256 })).rejects.toThrow(CorruptFileError);
    expect((await readNpy(file, { sha256: info.sha256.toUpperCase() })).shape).toEqual([6, 5]);
  });

  it('checks an expected dtype and shape, after the hash', async () => {
    const file = path.join(dir, 'layout.npy');
    const info = await writeNpy(file, sampleArray('float32', [6, 5]));
    const read = await readNpy(file, { sha256: info.sha256, dtype: 'float32', shape: [6, 5] });
    expect([read.dtype, read.shape]).toEqual(['float32', [6, 5]]);
    expect((await readNpy(file, { shape: [6, 5] })).dtype).toBe('float32');
    await expect(readNpy(file, { dtype: 'float64', shape: [6, 5] })).rejects.toThrow(
      new CorruptFileError(file, 'expected float64 [6, 5], found float32 [6, 5]'),
    );
    await expect(readNpy(file, { dtype: 'float32', shape: [5, 6] })).rejects.toThrow(
      /expected float32 \[5, 6\], found float32 \[6, 5\]/,
    );
    await expect(readNpy(file, { shape: [30] })).rejects.toThrow(
      /expected float32 \[30\], found float32 \[6, 5\]/,
    );
    await expect(readNpy(file, { sha256: '0'.repeat(64), dtype: 'float64' })).rejects.toThrow(
      /sha256 mismatch/,
    );
  });
});

describe.runIf(RUN_NUMPY_TESTS)('npy with NumPy', () => {
  it('NumPy is installed where the interoperability tests must run', () => {
    expect(() => python('print(np.__version__)')).not.toThrow();
  });

  it('NumPy reads every file bit for bit, and numpy.save writes byte-identical files', async () => {
    const files: string[] = [];
    const arrays: NdArray[] = [];
    // Besides the usual shapes, ranks 1..16 and a long first axis move the header across 64-byte
    // boundaries, so that NumPy's spare growth space and alignment padding are both exercised.
    const headerShapes = [
      ...Array.from({ length: 16 }, (_, r) => Array(r + 1).fill(1)),
      [123456789, 0],
      [0, 1, 2, 3, 0],
      // Puts the header exactly on a 64-byte boundary (NumPy then pads a whole 64 bytes).
      [...Array(13).fill(1), 100],
    ];
    for (const dtype of DTYPES) {
      for (const shape of [...SHAPES, ...(dtype === 'float32' ? headerShapes : [])]) {
        const a = sampleArray(dtype, shape, 11);
        const file = path.join(dir, `np-${dtype}-${shape.join('x') || 'scalar'}-${shape.length}.npy`);
        await writeArray(file, a);
        files.push(file);
        arrays.push(a);
      }
    }
    const out = python(
      `
for f in sys.argv[1:]:
    a = np.load(f, allow_pickle=False)
    import io
    b = io.BytesIO(); np.save(b, a)
    same = b.getvalue() == open(f, 'rb').read()
    print(json.dumps({'descr': a.dtype.str, 'shape': list(a.shape), 'hex': a.tobytes().hex(), 'same': same}))
`,
      ...files,
    );
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    lines.forEach((r, k) => {
      const a = arrays[k];
      const expectedDescr = { bool: '|b1', int8: '|i1', uint8: '|u1' }[a.dtype as string] ?? null;
      if (expectedDescr) expect(r.descr).toBe(expectedDescr);
      expect(r.shape, files[k]).toEqual(a.shape);
      expect(r.hex, files[k]).toBe(
        Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).toString('hex'),
      );
      expect(r.same, `numpy.save bytes differ for ${files[k]}`).toBe(true);
    });
  });

  it('reads files NumPy wrote: version 2.0 headers, big-endian data; refuses 2-d Fortran order', async () => {
    const v2 = path.join(dir, 'np-v2.npy');
    const be = path.join(dir, 'np-be.npy');
    const u2 = path.join(dir, 'np-u2.npy');
    const fo = path.join(dir, 'np-fortran.npy');
    python(
      `
a = np.arange(12, dtype='<f8').reshape(3, 4) / 7
with open(sys.argv[1], 'wb') as f: np.lib.format.write_array(f, a, version=(2, 0))
np.save(sys.argv[2], (np.arange(6, dtype='>i4') - 3).reshape(2, 3))
np.save(sys.argv[3], np.arange(5, dtype='<u2'))
np.save(sys.argv[4], np.asfortranarray(np.arange(6, dtype='<f4').reshape(2, 3)))
`,
      v2,
      be,
      u2,
      fo,
    );
    const a = await readNpy(v2);
    expect(a.shape).toEqual([3, 4]);
    expect(Array.from(a.data as Float64Array)).toEqual(Array.from({ length: 12 }, (_, k) => k / 7));
    const b = await readNpy(be);
    expect(b.dtype).toBe('int32');
    expect(Array.from(b.data as Int32Array)).toEqual([-3, -2, -1, 0, 1, 2]);
    const c = await readNpy(u2);
    expect(Array.from(c.data as Uint16Array)).toEqual([0, 1, 2, 3, 4]);
    await expect(readNpy(fo)).rejects.toThrow(/Fortran-order arrays are not supported/);
  });
});
