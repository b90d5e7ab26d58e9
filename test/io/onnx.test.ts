import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataType, encodeModel, floatTensor, int64Tensor } from '../../models/onnx-writer.js';
import { CorruptFileError } from '../../src/errors.js';
import { readOnnxModel } from '../../src/io/index.js';
import { TINY_BERT_DIR } from '../embed/reference.js';
import { fixtureOnnx, fixtureWeights } from '../model/bert-fixture.js';
import { tempDir } from '../util/temp-dir.js';

const dir = tempDir('onnx');

function write(name: string, bytes: Uint8Array): string {
  const file = path.join(dir, name);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, bytes);
  return file;
}

/** Protobuf wire encoding, by hand (an independent writer for the cases models/onnx-writer.ts cannot write). */
function varint(n: number): number[] {
  const out: number[] = [];
  do {
    out.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
    n = Math.floor(n / 128);
  } while (n > 0);
  return out;
}
const field = (no: number, wire: number) => varint(no * 8 + wire);
const bytesField = (no: number, bytes: number[]) => [...field(no, 2), ...varint(bytes.length), ...bytes];
const intField = (no: number, v: number) => [...field(no, 0), ...varint(v)];
const text = (s: string) => Array.from(Buffer.from(s, 'utf8'));
const le = (array: Float64Array | Uint16Array | Int8Array) => Array.from(new Uint8Array(array.buffer));

describe('readOnnxModel', () => {
  it('decodes float16 (raw_data and int32_data), float64 (double_data) to float32; other types carry no data', async () => {
    const tensor = (name: string, dims: number[], type: number, data: number[]) =>
      bytesField(5, [
        ...dims.flatMap((d) => intField(1, d)),
        ...intField(2, type),
        ...bytesField(8, text(name)),
        ...data,
      ]);
    const half = Uint16Array.of(0x3c00, 0xc000, 0x3800, 0x0001); // 1, -2, 0.5, 2^-24
    const graph = [
      ...tensor('h', [4], 10, bytesField(9, le(half))),
      ...tensor('h32', [2], 10, bytesField(5, [...varint(0x3c00), ...varint(0xc000)])),
      ...tensor('d', [2], 11, bytesField(10, le(Float64Array.of(0.25, -3)))),
      ...tensor('q', [1, 2], 3, bytesField(9, le(Int8Array.of(5, -7)))),
    ];
    const m = await readOnnxModel(
      write('types.onnx', Uint8Array.from([...intField(1, 9), ...bytesField(7, graph)])),
    );
    expect(m.irVersion).toBe(9);
    expect(m.initializers.get('h')).toEqual({
      name: 'h',
      dims: [4],
      dataType: 'FLOAT16',
      data: Float32Array.of(1, -2, 0.5, 2 ** -24),
    });
    expect(m.initializers.get('h32')!.data).toEqual(Float32Array.of(1, -2));
    expect(m.initializers.get('d')).toEqual({
      name: 'd',
      dims: [2],
      dataType: 'DOUBLE',
      data: Float32Array.of(0.25, -3),
    });
    expect(m.initializers.get('q')).toEqual({ name: 'q', dims: [1, 2], dataType: 'INT8', data: null });
  });

  it('reads nodes (inputs, outputs, attributes incl. negative ints) and typed initialisers', async () => {
    const bytes = encodeModel({
      name: 'g',
      producer: 'test',
      irVersion: 8,
      opset: 17,
      nodes: [
        {
          op: 'Softmax',
          inputs: ['x'],
          outputs: ['y'],
          name: 'sm',
          attributes: {
            axis: { int: -1 },
            perm: { ints: [0, 2, 1] },
            eps: { float: 0.25 },
            mode: { string: 'a' },
          },
        },
      ],
      initializers: [
        floatTensor('w', [2, 3], Float32Array.of(1, -2, 3.5, 0, 1e-30, -7)),
        int64Tensor('shape', [3], [0, -1, 2 ** 40]),
        { ...floatTensor('packed', [2], Float32Array.of(0.5, -0.25)), storage: 'float_data' },
      ],
      inputs: [{ name: 'x', elemType: DataType.FLOAT, shape: ['batch', 3] }],
      outputs: [{ name: 'y', elemType: DataType.FLOAT, shape: ['batch', 3] }],
    });
    const m = await readOnnxModel(write('small.onnx', bytes));
    expect(m.irVersion).toBe(8);
    expect(m.graphName).toBe('g');
    expect(m.inputs).toEqual(['x']);
    expect(m.outputs).toEqual(['y']);
    expect(m.nodes).toEqual([
      {
        opType: 'Softmax',
        name: 'sm',
        domain: '',
        inputs: ['x'],
        outputs: ['y'],
        attributes: { axis: -1, perm: [0, 2, 1], eps: 0.25, mode: 'a' },
      },
    ]);
    expect(m.initializers.get('w')).toEqual({
      name: 'w',
      dims: [2, 3],
      dataType: 'FLOAT',
      data: Float32Array.of(1, -2, 3.5, 0, 1e-30, -7),
    });
    expect(m.initializers.get('shape')!.data).toEqual([0, -1, 2 ** 40]);
    expect(m.initializers.get('shape')!.dataType).toBe('INT64');
    expect(m.initializers.get('packed')!.data).toEqual(Float32Array.of(0.5, -0.25));
  });

  it('raw_data, float_data and external data inside the directory give the same weights', async () => {
    const weights = fixtureWeights();
    const raw = await readOnnxModel(write('raw/model.onnx', fixtureOnnx(weights).onnx));
    const floats = await readOnnxModel(
      write('floats/model.onnx', fixtureOnnx(weights, { storage: 'float_data' }).onnx),
    );
    const ext = fixtureOnnx(weights, { storage: { external: 'model.onnx_data' } });
    write('ext/model.onnx_data', ext.external!);
    const external = await readOnnxModel(write('ext/model.onnx', ext.onnx));
    const name = 'encoder.layer.1.output.LayerNorm.weight';
    expect(raw.initializers.get(name)!.data).toEqual(weights.get(name)!.data);
    for (const other of [floats, external]) {
      expect([...other.initializers.keys()]).toEqual([...raw.initializers.keys()]);
      for (const [k, t] of raw.initializers) expect(other.initializers.get(k), k).toEqual(t);
    }
  });

  it('refuses external data outside the directory, truncated files and files that are not ONNX', async () => {
    const weights = fixtureWeights();
    const escaping = fixtureOnnx(weights, { storage: { external: '../secret.bin' } });
    write('secret.bin', escaping.external!);
    const escapeFile = write('escape/model.onnx', escaping.onnx);
    await expect(readOnnxModel(escapeFile)).rejects.toThrow(
      /escape\/model\.onnx: initialiser "embeddings\.word_embeddings\.weight": external data location "\.\.\/secret\.bin" has a '\.\.' segment/,
    );
    const absolute = fixtureOnnx(weights, { storage: { external: path.join(dir, 'secret.bin') } });
    await expect(readOnnxModel(write('absolute/model.onnx', absolute.onnx))).rejects.toThrow(
      /is an absolute path/,
    );
    const missing = fixtureOnnx(weights, { storage: { external: 'gone.bin' } });
    await expect(readOnnxModel(write('missing/model.onnx', missing.onnx))).rejects.toThrow(
      /external data file .*gone\.bin cannot be read \(ENOENT\)/,
    );
    const whole = readFileSync(path.join(TINY_BERT_DIR, 'onnx', 'model.onnx'));
    for (const cut of [10, 1000, whole.length - 3]) {
      const e = await readOnnxModel(write(`cut-${cut}.onnx`, whole.subarray(0, cut))).catch(
        (x: unknown) => x,
      );
      expect(e, String(cut)).toBeInstanceOf(CorruptFileError);
      expect((e as Error).message).toContain(`cut-${cut}.onnx`);
    }
    await expect(readOnnxModel(write('text.onnx', Buffer.from('{"not": "onnx"}')))).rejects.toThrow(
      CorruptFileError,
    );
    await expect(readOnnxModel(path.join(dir, 'none.onnx'))).rejects.toThrow(/none\.onnx: missing/);
  });
});
