import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CorruptFileError } from '../../src/errors.js';
import { type NdArray, readArray, readJsonArray, writeJsonArray } from '../../src/io/index.js';
import { DTYPES, python, RUN_NUMPY_TESTS, SHAPES, sameArray, sampleArray, tempDir } from './helpers.js';

const dir = tempDir('json');

describe('JSON arrays', () => {
  it('round-trips every dtype and shape exactly (NaN, ±Infinity, -0, 64-bit extremes included)', async () => {
    for (const dtype of DTYPES) {
      for (const shape of SHAPES) {
        const a = sampleArray(dtype, shape, 4);
        const file = path.join(dir, `${dtype}-${shape.join('x')}.json`);
        const info = await writeJsonArray(file, a);
        const back = await readArray(file, { sha256: info.sha256 });
        expect(sameArray(back, a), `${dtype} [${shape}]`).toBe(true);
        expect((await writeJsonArray(path.join(dir, 'again.json'), a)).sha256).toBe(info.sha256);
      }
    }
  });

  it('writes nested lists shaped like the array', async () => {
    const file = path.join(dir, 'small.json');
    await writeJsonArray(file, { dtype: 'int32', shape: [2, 3], data: new Int32Array([1, 2, 3, 4, 5, 6]) });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({
      dtype: 'int32',
      shape: [2, 3],
      data: [
        [1, 2, 3],
        [4, 5, 6],
      ],
    });
  });

  it('rejects files whose nesting, values or JSON are wrong, and arrays too large for JSON', async () => {
    const file = path.join(dir, 'bad.json');
    const cases: Array<[string, RegExp]> = [
      [
        '{"dtype":"float32","shape":[2,2],"data":[[1,2],[3]]}',
        /data\[1\]: expected a list of 2 \(shape \[2, 2\]\), found a list of 1/,
      ],
      ['{"dtype":"int8","shape":[2],"data":[1,200]}', /data\[1\]: 200 is not a valid int8 value/],
      ['{"dtype":"uint64","shape":[1],"data":["-1"]}', /not a valid uint64 value/],
      ['{"dtype":"bool","shape":[1],"data":[2]}', /not a valid bool value/],
      ['{"dtype":"float32","shape":[1],"data":["nan"]}', /not a valid float32 value/],
      ['{"dtype":"complex64","shape":[1],"data":[1]}', /"dtype" must be one of/],
      ['{"dtype":"float32","shape":[-1],"data":[]}', /"shape" must be an array/],
      ['{"dtype":"float32","shape":[3],"data":[1,2,', /not valid JSON/],
    ];
    for (const [text, message] of cases) {
      writeFileSync(file, text);
      await expect(readJsonArray(file)).rejects.toThrow(message);
      await expect(readJsonArray(file)).rejects.toThrow(CorruptFileError);
    }
    const big = { dtype: 'float32' as const, shape: [11], data: new Float32Array(11) };
    await expect(writeJsonArray(file, big, { maxElements: 10 })).rejects.toThrow(
      /format: expected npy or safetensors for an array of 11 elements \(JSON is limited to 10\), received "json"/,
    );
  });
});

describe.runIf(RUN_NUMPY_TESTS)('JSON arrays in NumPy', () => {
  it('np.array(obj["data"], dtype=obj["dtype"]) rebuilds every array bit for bit', async () => {
    const files: string[] = [];
    const arrays: NdArray[] = [];
    for (const dtype of DTYPES) {
      const a = sampleArray(dtype, [3, 4], 8);
      const file = path.join(dir, `np-${dtype}.json`);
      await writeJsonArray(file, a);
      files.push(file);
      arrays.push(a);
    }
    const out = python(
      `
for f in sys.argv[1:]:
    obj = json.load(open(f))
    a = np.array(obj['data'], dtype=obj['dtype'])
    print(json.dumps([list(a.shape), a.tobytes().hex()]))
`,
      ...files,
    );
    out
      .trim()
      .split('\n')
      .forEach((line, k) => {
        const [shape, hex] = JSON.parse(line);
        const a = arrays[k];
        expect(shape).toEqual(a.shape);
        expect(hex, a.dtype).toBe(
          Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).toString('hex'),
        );
      });
  });
});
