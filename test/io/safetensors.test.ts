import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CorruptFileError } from '../../src/errors.js';
import {
  type ArrayEntry,
  type NdArray,
  readArray,
  readSafetensors,
  readSafetensorsHeader,
  writeArray,
  writeSafetensors,
} from '../../src/io/index.js';
import { DTYPES, python, RUN_NUMPY_TESTS, SHAPES, sameArray, sampleArray, tempDir } from './helpers.js';

const dir = tempDir('safetensors');

/** A safetensors file built by hand: 8-byte LE size, the JSON padded with spaces to 8, the data. */
function handMade(json: string, data: number[] = []): Buffer {
  const padded = json + ' '.repeat((8 - (json.length % 8)) % 8);
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(padded.length));
  return Buffer.concat([size, Buffer.from(padded, 'utf8'), Buffer.from(data)]);
}

function f32Bytes(values: number[]): number[] {
  return Array.from(new Uint8Array(new Float32Array(values).buffer));
}

describe('safetensors layout', () => {
  it('writes the bytes the Rust crate writes (its own serialisation test vectors)', async () => {
    const data = new Float32Array([0, 1, 2, 3, 4, 5]);
    const cases: Array<[Record<string, NdArray>, Record<string, string>, Buffer]> = [
      [
        { 'attn.0': { dtype: 'float32', shape: [1, 2, 3], data } },
        {},
        handMade(
          '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}',
          f32Bytes([0, 1, 2, 3, 4, 5]),
        ),
      ],
      [
        { attn0: { dtype: 'float32', shape: [1, 1, 2, 3], data } },
        {},
        handMade(
          '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}',
          f32Bytes([0, 1, 2, 3, 4, 5]),
        ),
      ],
      [{}, {}, handMade('{}')],
      [{}, { framework: 'pt' }, handMade('{"__metadata__":{"framework":"pt"}}')],
    ];
    for (const [tensors, metadata, expected] of cases) {
      const file = path.join(dir, 'vector.safetensors');
      await writeSafetensors(file, tensors, metadata);
      expect(readFileSync(file).equals(expected), JSON.stringify(Object.keys(tensors))).toBe(true);
    }
    // Sizes of these vectors as the crate's tests state them: 64, 72, 8 and 40 header bytes.
    expect(cases.map((c) => Number(c[2].readBigUInt64LE(0)))).toEqual([64, 72, 8, 40]);
  });

  it('orders tensors by the crate dtype order (descending), then name, contiguous from offset 0', async () => {
    const file = path.join(dir, 'order.safetensors');
    await writeSafetensors(file, {
      b: sampleArray('float32', [2]),
      a: sampleArray('float32', [3]),
      m: sampleArray('uint8', [5]),
      z: sampleArray('float64', [1]),
      i: sampleArray('int64', [1]),
    });
    const header = await readSafetensorsHeader(file);
    const order = Object.entries(header.tensors)
      .sort((x, y) => x[1].dataOffsets[0] - y[1].dataOffsets[0])
      .map(([name, info]) => [name, info.dataOffsets]);
    expect(order).toEqual([
      ['i', [0, 8]],
      ['z', [8, 16]],
      ['a', [16, 28]],
      ['b', [28, 36]],
      ['m', [36, 41]],
    ]);
    expect(header.dataStart % 8).toBe(0);
  });
});

describe('safetensors round trip', () => {
  it('round-trips every dtype and shape with metadata, from arrays and producers, with stable bytes', async () => {
    const tensors: Record<string, NdArray> = {};
    for (const dtype of DTYPES) {
      for (const [k, shape] of SHAPES.entries()) tensors[`${dtype}.${k}`] = sampleArray(dtype, shape, 3);
    }
    const metadata = { format: 'entk-kernel', note: 'ünïcode ✓', index: 'n*V+i' };
    const file = path.join(dir, 'all.safetensors');
    const info = await writeSafetensors(file, tensors, metadata);
    const back = await readSafetensors(file, { sha256: info.sha256 });
    expect(back.metadata).toEqual(metadata);
    expect(Object.keys(back.tensors).sort()).toEqual(Object.keys(tensors).sort());
    for (const [name, a] of Object.entries(tensors))
      expect(sameArray(back.tensors[name], a), name).toBe(true);

    const entries: ArrayEntry[] = Object.entries(tensors).map(([name, a]) => ({
      name,
      dtype: a.dtype,
      shape: a.shape,
      data: async (write) => {
        for (let o = 0; o < a.data.length; o += 4) await write(a.data.subarray(o, o + 4));
      },
    }));
    const streamed = await writeSafetensors(path.join(dir, 'streamed.safetensors'), entries, metadata);
    expect(streamed.sha256).toBe(info.sha256);

    const single = path.join(dir, 'single.safetensors');
    await writeArray(single, tensors['float64.3'], { name: 'kernel', metadata: { kind: 'full' } });
    expect(sameArray(await readArray(single), tensors['float64.3'])).toBe(true);
  });

  it('rejects holes, overlaps, size mismatches, truncation, trailing bytes, bad JSON and hash mismatches', async () => {
    const bad = path.join(dir, 'bad.safetensors');
    const d = f32Bytes([1, 2, 3, 4]);
    const cases: Array<[Buffer, RegExp]> = [
      [handMade('{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}', d), /leave a hole or overlap/],
      [
        handMade(
          '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}',
          d,
        ),
        /leave a hole or overlap/,
      ],
      [
        handMade('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}', d),
        /span 16 bytes, shape \[3\] float32 needs 12/,
      ],
      [
        handMade('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', d.slice(0, 15)),
        /truncated: the tensors need 16/,
      ],
      [
        handMade('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', [...d, 0]),
        /1 unexpected bytes after/,
      ],
      [handMade('{"a":{"dtype":"F16","shape":[8],"data_offsets":[0,16]}}', d), /bad tensor entry "a"/],
      [handMade('{"__metadata__":{"x":1}}'), /__metadata__.x is not a string/],
      [handMade('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]'), /not valid JSON/],
      [handMade('[1]'), /does not start with "\{"/],
      [handMade('{}').subarray(0, 12), /truncated: header of 8 bytes/],
      [Buffer.from([1, 2, 3]), /too short for safetensors/],
    ];
    for (const [bytes, message] of cases) {
      writeFileSync(bad, bytes);
      await expect(readSafetensors(bad), String(message)).rejects.toThrow(message);
      await expect(readSafetensors(bad)).rejects.toThrow(CorruptFileError);
    }
    const good = path.join(dir, 'good.safetensors');
    const info = await writeSafetensors(good, { a: sampleArray('float32', [4, 4]) });
    const flipped = readFileSync(good);
    flipped[flipped.length - 1] ^= 0x80;
    writeFileSync(bad, flipped);
    await expect(readSafetensors(bad, { sha256: info.sha256 })).rejects.toThrow(/sha256 mismatch/);
    await expect(writeSafetensors(bad, { __metadata__: sampleArray('int8', [1]) })).rejects.toThrow(
      /tensor name: expected a non-empty string other than "__metadata__"/,
    );
    await expect(writeSafetensors(bad, {}, { n: 3 as unknown as string })).rejects.toThrow(
      /metadata.n: expected a string/,
    );
  });
});

describe.runIf(RUN_NUMPY_TESTS)('safetensors parsed by Python', () => {
  it('Python parses the header exactly as specified and NumPy reads every tensor bit for bit', async () => {
    const tensors: Record<string, NdArray> = {};
    for (const dtype of DTYPES) tensors[`t_${dtype}`] = sampleArray(dtype, [3, 2], 21);
    tensors.scalar = sampleArray('float64', [], 2);
    tensors.empty = sampleArray('float32', [0, 4], 2);
    const file = path.join(dir, 'py.safetensors');
    await writeSafetensors(file, tensors, { kind: 'full', index: 'n*V+i' });
    // An independent Python implementation of the safetensors rules (the format's spec): size,
    // padding, JSON layout as serde_json writes it, offsets, and the data of every tensor.
    const out = python(
      `
import struct
raw = open(sys.argv[1], 'rb').read()
(n,) = struct.unpack('<Q', raw[:8])
assert n % 8 == 0, n
text = raw[8:8 + n].decode('utf8')
stripped = text.rstrip(' ')
assert len(text) - len(stripped) < 8
header = json.loads(stripped)
assert list(header)[0] == '__metadata__'
# serde_json's compact form: no spaces, keys in the writer's order.
assert json.dumps(header, separators=(',', ':'), ensure_ascii=False) == stripped
names = {'F32': '<f4', 'F64': '<f8', 'I8': '|i1', 'U8': '|u1', 'I16': '<i2', 'U16': '<u2',
         'I32': '<i4', 'U32': '<u4', 'I64': '<i8', 'U64': '<u8', 'BOOL': '|b1'}
buf = raw[8 + n:]
pos = 0
out = {}
for name, info in sorted(((k, v) for k, v in header.items() if k != '__metadata__'), key=lambda kv: kv[1]['data_offsets']):
    b, e = info['data_offsets']
    assert b == pos, (name, b, pos)
    dt = np.dtype(names[info['dtype']])
    a = np.frombuffer(buf[b:e], dtype=dt).reshape(info['shape'])
    assert a.nbytes == e - b
    pos = e
    out[name] = [a.dtype.str, list(a.shape), a.tobytes().hex()]
assert pos == len(buf)
print(json.dumps({'metadata': header['__metadata__'], 'tensors': out}))
`,
      file,
    );
    const got = JSON.parse(out);
    expect(got.metadata).toEqual({ index: 'n*V+i', kind: 'full' });
    expect(Object.keys(got.tensors).sort()).toEqual(Object.keys(tensors).sort());
    for (const [name, a] of Object.entries(tensors)) {
      expect(got.tensors[name][1]).toEqual(a.shape);
      expect(got.tensors[name][2], name).toBe(
        Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).toString('hex'),
      );
    }
  });
});
