/**
 * Fuzz test of every reader: seeded truncations, byte flips, insertions and crafted headers/JSON
 * values (huge or negative shapes, wrong dtypes, header lengths past the end, '../' paths, deep
 * nesting) applied to valid files written by entk's own writers. Each input must either load —
 * and then, where the reader was given the original sha256 or the bytes were not changed, equal
 * the original — or be refused with an EntkError: never another exception, never a hang (each
 * case is bounded by a timeout), never a changed array accepted silently.
 */
import { copyFileSync, cpSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadDataFile } from '../../src/data/index.js';
import { EntkError } from '../../src/errors.js';
import { loadExperimentConfig } from '../../src/experiment/config.js';
import { finetune, readFinetuneManifest } from '../../src/finetune/index.js';
import { type ArrayFormat, type NdArray, readArray, writeArray } from '../../src/io/index.js';
import { readKernelStore, verifyKernelStore } from '../../src/kernel-store/index.js';
import { loadModel } from '../../src/model/io.js';
import { openRun, type Run, readCheckpointIndex, runPaths, train } from '../../src/train/index.js';
import { Rng } from '../../src/util/rng.js';
import { tempDir } from '../util/temp-dir.js';
import { smallCsv, writeSmallStore } from './fixtures.js';

const dir = tempDir('fuzz');
const rng = new Rng(20261204);
const CASES = 24; // mutations per file
const TIMEOUT_MS = 5000;

/** Values a crafted JSON field may receive. */
const NASTY: unknown[] = [
  -1,
  1e300,
  2 ** 53 + 1,
  0,
  3.5,
  '../../../etc/passwd',
  '/etc/passwd',
  '..',
  '',
  null,
  [],
  {},
  [1e9, 1e9, 1e9],
  [-3, 2],
  'float64',
  'int8',
  'NaN',
  true,
  JSON.parse(`${'['.repeat(2000)}${']'.repeat(2000)}`),
];

/** A mutation of `bytes`: truncation, bit flips, an insertion, or (for JSON) a crafted value. */
function mutate(bytes: Buffer, json: boolean): Buffer {
  const kind = rng.int(json ? 5 : 4);
  const out = Buffer.from(bytes);
  if (kind === 0) return out.subarray(0, rng.int(bytes.length));
  if (kind === 1) {
    for (let k = 0, n = 1 + rng.int(4); k < n; k++) out[rng.int(out.length)]! ^= 1 << rng.int(8);
    return out;
  }
  if (kind === 2) {
    const at = rng.int(out.length + 1);
    const junk = Buffer.from(Array.from({ length: 1 + rng.int(16) }, () => rng.int(256)));
    return Buffer.concat([out.subarray(0, at), junk, out.subarray(at)]);
  }
  if (kind === 3) {
    // a header-length / size field made huge: overwrite 4 bytes near the start with 0xff
    const at = rng.int(Math.min(out.length, 64));
    out.fill(0xff, at, Math.min(out.length, at + 4));
    return out;
  }
  // a crafted JSON value at a random place of the document
  const value = JSON.parse(bytes.toString('utf8'));
  const slots: Array<[Record<string, unknown> | unknown[], string | number]> = [];
  const walk = (node: unknown, depth: number) => {
    if (depth > 6 || node === null || typeof node !== 'object') return;
    for (const key of Object.keys(node)) {
      slots.push([node as Record<string, unknown>, Array.isArray(node) ? Number(key) : key]);
      walk((node as Record<string, unknown>)[key], depth + 1);
    }
  };
  walk(value, 0);
  if (slots.length === 0) return out;
  const [parent, key] = slots[rng.int(slots.length)]!;
  (parent as Record<string | number, unknown>)[key] = structuredClone(NASTY[rng.int(NASTY.length)]);
  return Buffer.from(JSON.stringify(value));
}

/** Outcome of one case: 'loaded' (with the value) or 'refused' (EntkError); anything else fails. */
async function attempt<T>(load: () => Promise<T>): Promise<{ loaded: T } | { refused: EntkError }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`hang: no answer within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
  });
  try {
    return { loaded: await Promise.race([load(), timeout]) };
  } catch (error) {
    if (error instanceof EntkError) return { refused: error };
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

function sameArray(a: NdArray, b: NdArray): boolean {
  return (
    a.dtype === b.dtype &&
    JSON.stringify(a.shape) === JSON.stringify(b.shape) &&
    Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).equals(
      Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength),
    )
  );
}

/**
 * Fuzz `file` (restored afterwards): for each mutation, `check(result, changed)` runs on what
 * `load` returned; `changed` says whether the file's bytes differ from the original. Returns the
 * failures (a non-EntkError, a hang, or a check that threw) as readable lines.
 */
async function fuzzFile<T>(
  file: string,
  load: () => Promise<T>,
  check: (result: T, changed: boolean) => void,
  options: { json?: boolean; cases?: number } = {},
): Promise<string[]> {
  const original = readFileSync(file);
  const failures: string[] = [];
  try {
    for (let c = 0; c < (options.cases ?? CASES); c++) {
      const bytes = mutate(original, options.json ?? false);
      writeFileSync(file, bytes);
      const changed = !bytes.equals(original);
      try {
        const outcome = await attempt(load);
        if ('loaded' in outcome) check(outcome.loaded, changed);
      } catch (error) {
        failures.push(
          `${path.basename(file)} case ${c}: ${(error as Error).stack?.split('\n').slice(0, 3).join(' | ')}`,
        );
      }
    }
  } finally {
    writeFileSync(file, original);
  }
  return failures;
}

const expectSame = (a: NdArray, b: NdArray, what: string) => {
  if (!sameArray(a, b)) throw new Error(`${what}: a changed array was accepted`);
};

const reference = {
  dtype: 'float32',
  shape: [3, 4],
  data: Float32Array.from({ length: 12 }, (_, k) => k / 3 - 1),
} as NdArray;

describe('every reader refuses damaged input with an EntkError (seeded fuzz)', () => {
  for (const format of ['npy', 'npz', 'safetensors', 'json'] as ArrayFormat[]) {
    it(`${format} arrays`, async () => {
      const file = path.join(dir, `a.${format}`);
      const { sha256: hash } = await writeArray(file, reference, { name: 'kernel' });
      const withHash = await fuzzFile(
        file,
        () => readArray(file, { sha256: hash }),
        (a) => expectSame(a, reference, 'read with the sha256'),
        { json: format === 'json' },
      );
      const withoutHash = await fuzzFile(
        file,
        () => readArray(file),
        (a, changed) => {
          if (!changed) expectSame(a, reference, 'unchanged file');
        },
        { json: format === 'json' },
      );
      expect([...withHash, ...withoutHash]).toEqual([]);
    });
  }

  it('npy headers crafted by hand (huge and negative shapes, unknown dtypes, lengths past the end)', async () => {
    const file = path.join(dir, 'crafted.npy');
    const headers = [
      "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (-3, 4), }",
      "{'descr': '<c16', 'fortran_order': False, 'shape': (3,), }",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), 'shape': (1,), }",
      "{'descr': '<f4', 'fortran_order': 1, 'shape': (3, 4), }",
      `{'descr': '<f4', 'fortran_order': False, 'shape': (${'1, '.repeat(5000)}), }`,
      "{'descr': '<f4'",
    ];
    const failures: string[] = [];
    for (const [k, header] of headers.entries()) {
      for (const declared of [header.length + 1, 0xffff]) {
        const h = Buffer.alloc(10);
        Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(h);
        h.writeUInt16LE(declared, 8);
        writeFileSync(file, Buffer.concat([h, Buffer.from(`${header}\n`, 'latin1'), Buffer.alloc(48)]));
        try {
          const outcome = await attempt(() => readArray(file));
          if ('loaded' in outcome) failures.push(`header ${k}: accepted`);
        } catch (error) {
          failures.push(`header ${k}: ${(error as Error).message}`);
        }
      }
    }
    expect(failures).toEqual([]);
  });

  it('kernel stores (manifest.json and array files)', async () => {
    const failures: string[] = [];
    for (const format of ['npy', 'npz', 'safetensors', 'json'] as ArrayFormat[]) {
      const store = path.join(dir, `store-${format}`);
      const kernel = await writeSmallStore(store, format);
      const check = (s: { kernel: NdArray }) => expectSame(s.kernel, kernel, `${format} store`);
      for (const name of ['manifest.json', `kernel.${format}`]) {
        const json = name.endsWith('.json');
        failures.push(
          ...(await fuzzFile(path.join(store, name), () => readKernelStore(store), check, { json })),
        );
        failures.push(
          ...(await fuzzFile(
            path.join(store, name),
            async () => {
              await verifyKernelStore(store);
              return readKernelStore(store); // verified: it must be the original
            },
            check,
            { json, cases: 8 },
          )),
        );
      }
    }
    expect(failures).toEqual([]);
  });

  it('CSV and JSONL data files', async () => {
    const csv = path.join(dir, 'data.csv');
    writeFileSync(csv, smallCsv());
    const jsonl = path.join(dir, 'data.jsonl');
    const rows = smallCsv()
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => {
        const [x1, x2, label] = l.split(',');
        return JSON.stringify({ x1: Number(x1), x2: Number(x2), label });
      });
    writeFileSync(jsonl, `${rows.join('\n')}\n`);
    const failures = [
      ...(await fuzzFile(
        csv,
        () => loadDataFile(csv),
        () => {},
      )),
      ...(await fuzzFile(
        jsonl,
        () => loadDataFile(jsonl),
        () => {},
      )),
    ];
    expect(failures).toEqual([]);
  });

  it('experiment configs (YAML and JSON, with extends cycles)', async () => {
    const yaml = path.join(dir, 'exp.yaml');
    copyFileSync(path.join('src', 'experiment', 'configs', 'demo.yaml'), yaml);
    const json = path.join(dir, 'exp.json');
    writeFileSync(json, JSON.stringify({ extends: yaml, title: 'x', seed: 1 }));
    const cycle = path.join(dir, 'cycle.json');
    writeFileSync(cycle, JSON.stringify({ extends: cycle }));
    const failures = [
      ...(await fuzzFile(
        yaml,
        () => loadExperimentConfig(yaml),
        () => {},
      )),
      ...(await fuzzFile(
        json,
        () => loadExperimentConfig(json),
        () => {},
        { json: true },
      )),
    ];
    const outcome = await attempt(() => loadExperimentConfig(cycle));
    if ('loaded' in outcome) failures.push('an extends cycle was accepted');
    expect(failures).toEqual([]);
  });

  describe('run files', () => {
    const runDir = path.join(dir, 'run');
    let run: Run;
    beforeAll(async () => {
      const csv = path.join(dir, 'run.csv');
      writeFileSync(csv, smallCsv());
      await train(
        {
          data: csv,
          model: { kind: 'mlp', widths: [4], activation: 'tanh', parameterization: 'standard' },
          steps: 2,
          batchSize: 8,
          checkpoints: { steps: [0, 2] },
        },
        { outDir: runDir },
      );
      run = await openRun(runDir);
    }, 60_000);

    it('checkpoint index and checkpoint files (every change is detected)', async () => {
      const ckpt = path.join(runDir, 'checkpoints', 'step-000002');
      const weights = async () => {
        const model = await run.loadModel('last');
        const values = model.getWeights().map((w) => Buffer.from(w.dataSync().buffer).toString('hex'));
        model.dispose();
        return values;
      };
      const original = await weights();
      const failures = await fuzzFile(
        runPaths(runDir).index,
        () => readCheckpointIndex(runDir),
        () => {},
        {
          json: true,
        },
      );
      for (const name of ['model.json', 'weights.bin', 'optimizer.bin', 'state.json']) {
        failures.push(
          ...(await fuzzFile(
            path.join(ckpt, name),
            weights,
            (w, changed) => {
              if (changed) throw new Error(`${name}: a changed checkpoint file was accepted`);
              expect(w).toEqual(original);
            },
            { json: name.endsWith('.json'), cases: 8 },
          )),
        );
      }
      expect(failures).toEqual([]);
    });

    it('model.json and weights of a model directory (no hashes: load or refuse)', async () => {
      const modelDir = path.join(dir, 'model');
      cpSync(path.join(runDir, 'checkpoints', 'step-000002'), modelDir, { recursive: true });
      const tensors = tf.memory().numTensors;
      // Loaded or refused, a case leaves no tensor behind.
      const load = async () => {
        const before = tf.memory().numTensors;
        let refusal: unknown;
        try {
          (await loadModel(modelDir)).dispose();
        } catch (error) {
          refusal = error;
        }
        const leaked = tf.memory().numTensors - before;
        if (leaked !== 0) throw new Error(`${leaked} tensors leaked (${String(refusal)})`);
        if (refusal) throw refusal;
        return true;
      };
      const failures = [
        ...(await fuzzFile(path.join(modelDir, 'model.json'), load, () => {}, { json: true })),
        ...(await fuzzFile(path.join(modelDir, 'weights.bin'), load, () => {}, { cases: 8 })),
      ];
      expect(failures).toEqual([]);
      expect(tf.memory().numTensors).toBe(tensors);
    });

    it('finetune manifests', async () => {
      const ftDir = path.join(dir, 'ft');
      await finetune({
        run,
        name: 'fz',
        points: 'train:3',
        learningRate: 0.1,
        steps: 2,
      });
      cpSync(path.join(runDir, 'finetune', 'fz'), ftDir, { recursive: true });
      const failures = await fuzzFile(
        path.join(ftDir, 'manifest.json'),
        () => readFinetuneManifest(ftDir),
        () => {},
        {
          json: true,
        },
      );
      expect(failures).toEqual([]);
    }, 60_000);
  });
});
