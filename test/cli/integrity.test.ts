// Issue 12 (part B): entk never computes from a path outside its directories, a damaged or stale
// checkpoint, changed data, or an array whose header disagrees with its manifest.
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { CorruptFileError, DivergenceError } from '../../src/errors.js';
import type { ExperimentConfig } from '../../src/experiment/config.js';
import { StageRunner } from '../../src/experiment/index.js';
import { type ExperimentContext, trainStage } from '../../src/experiment/pipeline.js';
import { MANIFEST_JSON, verifyKernelStore } from '../../src/kernel-store/index.js';
import { loadModel, saveModel } from '../../src/model/io.js';
import {
  openRun,
  readCheckpointIndex,
  resolveTrainConfig,
  runPaths,
  type TrainConfigInput,
  train,
} from '../../src/train/index.js';
import { sha256, smallCsv, snapshot, writeSmallStore } from '../fuzz/fixtures.js';
import { tempDir } from '../util/temp-dir.js';
import { expectOneLineError, runCli } from './run-cli.js';

const dir = tempDir('integrity');
const csv = path.join(dir, 'data.csv');
const run = path.join(dir, 'run');
const tinyTrain: TrainConfigInput = {
  data: csv,
  model: { kind: 'mlp', widths: [4], activation: 'tanh', parameterization: 'standard' },
  steps: 2,
  batchSize: 8,
  checkpoints: { steps: [0, 2] },
};

/** A copy of the trained run (tests damage their own copy). */
function copyRun(name: string): string {
  const to = path.join(dir, name);
  cpSync(run, to, { recursive: true });
  return to;
}

// biome-ignore lint/suspicious/noExplicitAny: tests edit arbitrary JSON fields
function editJson(file: string, edit: (value: any) => void): void {
  const value = JSON.parse(readFileSync(file, 'utf8'));
  edit(value);
  writeFileSync(file, JSON.stringify(value));
}

beforeAll(async () => {
  writeFileSync(csv, smallCsv());
  await train(tinyTrain, { outDir: run });
}, 120_000);

describe('2. paths read from files stay inside their directory', () => {
  it('a checkpoint id ../../victim in index.json is refused; the victim directory is untouched', async () => {
    const r = copyRun('run-traversal');
    const victim = path.join(dir, 'victim');
    cpSync(path.join(r, 'checkpoints', 'step-000002'), victim, { recursive: true });
    writeFileSync(path.join(victim, 'keep.txt'), 'mine');
    editJson(runPaths(r).index, async (index) => {
      index[1].id = '../../victim';
    });
    const before = { victim: snapshot(victim), run: snapshot(r) };
    const res = await runCli(['kernel', '--run', r, '--points', 'test:3']);
    expectOneLineError(
      res,
      /checkpoints\/index\.json: entry 1: id "\.\.\/\.\.\/victim" is not "step-000002"/,
    );
    expect({ victim: snapshot(victim), run: snapshot(r) }).toEqual(before);
  });

  it("a kernel store manifest naming '../../../etc/passwd' is refused by verify, naming the field", async () => {
    const store = path.join(dir, 'store-traversal');
    await writeSmallStore(store, 'npy');
    editJson(path.join(store, MANIFEST_JSON), (m) => {
      m.arrays.kernel.file = '../../../etc/passwd';
    });
    const res = await runCli(['kernel', 'verify', store]);
    expectOneLineError(
      res,
      /manifest\.json: arrays\.kernel\.file "\.\.\/\.\.\/\.\.\/etc\/passwd" has a '\.\.' segment/,
    );
  });

  it('model.json weight paths outside the directory (../../dev/zero) or larger than described are refused', async () => {
    const modelDir = path.join(dir, 'model');
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [3] })] });
    await saveModel(model, modelDir);
    model.dispose();
    const file = path.join(modelDir, 'model.json');
    const original = readFileSync(file, 'utf8');
    editJson(file, (m) => {
      m.weightsManifest[0].paths = ['../../../dev/zero'];
    });
    await expect(loadModel(modelDir)).rejects.toThrow(
      /weightsManifest\[0\]\.paths "\.\.\/\.\.\/\.\.\/dev\/zero" has a '\.\.' segment/,
    );
    writeFileSync(file, original);
    writeFileSync(path.join(modelDir, 'weights.bin'), Buffer.alloc(1 << 20)); // 1 MiB, model has 32 bytes
    const err = await loadModel(modelDir).catch((e) => e);
    expect(err).toBeInstanceOf(CorruptFileError);
    expect(err.message).toMatch(/weights\.bin: weights are 1048576 bytes but model\.json describes 32/);
  });
});

describe('3. checkpoints are verified before use', () => {
  it('records the sha256 of every checkpoint file in the index', async () => {
    const index = await readCheckpointIndex(run);
    const files = index[1]!.files!;
    expect(Object.keys(files).sort()).toEqual([
      'model.json',
      'optimizer.bin',
      'optimizer.json',
      'state.json',
      'weights.bin',
    ]);
    const ckpt = path.join(run, 'checkpoints', 'step-000002');
    for (const [name, hash] of Object.entries(files))
      expect(sha256(readFileSync(path.join(ckpt, name)))).toBe(hash);
  });

  it('a flipped byte in weights.bin stops `entk kernel`, naming the file; nothing is written', async () => {
    const r = copyRun('run-flipped');
    const weights = path.join(r, 'checkpoints', 'step-000002', 'weights.bin');
    const bytes = readFileSync(weights);
    bytes[5] ^= 0x01;
    writeFileSync(weights, bytes);
    const before = snapshot(r);
    const res = await runCli(['kernel', '--run', r, '--points', 'test:3']);
    expectOneLineError(
      res,
      /step-000002\/weights\.bin: changed since checkpoint step-000002 was written: sha256 [0-9a-f]{64}, .*index\.json records [0-9a-f]{64}/,
    );
    expect(snapshot(r)).toEqual(before);
  });

  it('an edited state.json stops `entk train --resume`, naming the file; no file of the run changes', async () => {
    const r = copyRun('run-state');
    editJson(path.join(r, 'checkpoints', 'step-000002', 'state.json'), async (s) => {
      s.step = 1;
    });
    const before = snapshot(r);
    const res = await runCli(['train', '--resume', '--out', r, '--steps', '4']);
    expectOneLineError(res, /step-000002\/state\.json: changed since checkpoint step-000002 was written/);
    expect(snapshot(r)).toEqual(before);
  });

  it('NaN weights in a checkpoint (even with matching hashes) are refused, naming the checkpoint', async () => {
    const r = copyRun('run-nan');
    const weights = path.join(r, 'checkpoints', 'step-000002', 'weights.bin');
    const bytes = readFileSync(weights);
    bytes.writeFloatLE(Number.NaN, 0);
    writeFileSync(weights, bytes);
    editJson(runPaths(r).index, (index) => {
      index[1].files['weights.bin'] = sha256(bytes);
    });
    const opened = await openRun(r);
    const tensors = tf.memory().numTensors;
    const err = await opened.loadModel('last').catch((e) => e);
    expect(err).toBeInstanceOf(CorruptFileError);
    expect(err.message).toMatch(/step-000002: checkpoint step-000002 has a non-finite weight \(NaN in /);
    expect(tf.memory().numTensors).toBe(tensors); // the refused model was disposed
  });

  it('a run diverging to NaN/Inf is an error naming the step and writes no non-finite checkpoint', async () => {
    const out = path.join(dir, 'run-diverge');
    const tensors = tf.memory().numTensors;
    const err = await train(
      {
        ...tinyTrain,
        steps: 6,
        checkpoints: { steps: [0, 3, 6] },
        model: { kind: 'mlp', widths: [4], activation: 'relu', parameterization: 'standard' },
        optimizer: { name: 'sgd', learningRate: 1e38 },
      },
      { outDir: out },
    ).catch((e) => e);
    expect(err).toBeInstanceOf(DivergenceError);
    expect(err.message).toMatch(/^training diverged at step [1-6]: /);
    expect(tf.memory().numTensors).toBe(tensors);
    const index = await readCheckpointIndex(out);
    const step = Number(/step (\d)/.exec(err.message)![1]);
    expect(index.every((c) => c.step < step)).toBe(true);
    const opened = await openRun(out);
    for (const c of index) (await opened.loadModel(c.id)).dispose(); // every written checkpoint is finite
  });
});

describe('4. changed data is never used silently', async () => {
  it('records the data sha256 in split.json (the shipped file for a built-in dataset)', async () => {
    const split = JSON.parse(readFileSync(runPaths(run).split, 'utf8'));
    expect(split.dataSha256).toBe(sha256(readFileSync(csv)));
  });

  it('`entk kernel` and `entk train --resume` refuse an edited data file, naming it and both hashes', async () => {
    const r = copyRun('run-data');
    const data = path.join(dir, 'data-edited.csv');
    writeFileSync(data, smallCsv());
    editJson(path.join(r, 'config.json'), async (c) => {
      c.data = data;
    });
    editJson(runPaths(r).split, async (s) => {
      s.data = data;
    });
    const old = sha256(readFileSync(data));
    writeFileSync(data, smallCsv(0.5));
    const now = sha256(readFileSync(data));
    const before = snapshot(r);
    const message = new RegExp(
      `^entk: error: data: expected the data the run was trained on \\(sha256 ${old} in .*split\\.json\\), but the file changed \\(it now hashes to ${now}\\).*received ".*data-edited\\.csv"`,
    );
    expectOneLineError(await runCli(['kernel', '--run', r, '--points', 'test:3']), message);
    expectOneLineError(await runCli(['train', '--resume', '--out', r, '--steps', '4']), message);
    expect(snapshot(r)).toEqual(before);
  });
});

describe('4. an experiment redoes the stages whose data changed', () => {
  it('the train stage key holds the data sha256: an edited CSV retrains from scratch', async () => {
    const outDir = path.join(dir, 'experiment');
    const data = path.join(dir, 'experiment.csv');
    writeFileSync(data, smallCsv());
    const ctx: ExperimentContext = {
      config: {} as ExperimentConfig, // not read by the train stage
      outDir,
      stages: await StageRunner.open(outDir),
      log: () => {},
      runs: new Map(),
    };
    const config = resolveTrainConfig({ ...tinyTrain, data });
    const status = () => ctx.stages.events.map((e) => e.status);
    await trainStage(ctx, 'base', config);
    await trainStage(ctx, 'base', config);
    writeFileSync(data, smallCsv(0.5));
    const again = await trainStage(ctx, 'base', config);
    expect(status()).toEqual(['done', 'cached', 'done']);
    const split = JSON.parse(readFileSync(runPaths(path.join(outDir, again.result.dir)).split, 'utf8'));
    expect(split.dataSha256).toBe(sha256(readFileSync(data)));
  });
});

describe('5. kernel verify checks every array header against the manifest', () => {
  it('a manifest saying float64 over a float32 file fails verify (and the reader)', async () => {
    const store = path.join(dir, 'store-dtype');
    await writeSmallStore(store, 'npy');
    editJson(path.join(store, MANIFEST_JSON), (m) => {
      m.arrays.kernel.dtype = 'float64';
      m.kernel.dtype = 'float64';
    });
    const res = await runCli(['kernel', 'verify', store]);
    expectOneLineError(res, /kernel\.npy: holds float32 \[6, 6\], the manifest says float64 \[6, 6\]/);
  });

  for (const format of ['npy', 'npz', 'safetensors'] as const) {
    it(`an edited, re-hashed ${format} header (shape [6, 6] → [3, 12]) fails verify`, async () => {
      const store = path.join(dir, `store-shape-${format}`);
      await writeSmallStore(store, format);
      const file = path.join(store, `kernel.${format}`);
      const fixed =
        format === 'safetensors'
          ? editSafetensorsHeader(readFileSync(file), '"shape":[6,6]', '"shape":[3,12]')
          : // same length: the npy header loses one of its padding spaces
            replaceOnce(readFileSync(file), "'shape': (6, 6), } ", "'shape': (3, 12), }");
      writeFileSync(file, fixed);
      editJson(path.join(store, MANIFEST_JSON), (m) => {
        m.arrays.kernel.sha256 = sha256(fixed);
        m.arrays.kernel.bytes = fixed.byteLength;
      });
      const err = await verifyKernelStore(store).catch((e) => e);
      expect(err, String(err)).toBeInstanceOf(CorruptFileError);
      expect(err.message).toMatch(/holds float32 \[3, 12\], the manifest says float32 \[6, 6\]/);
    });
  }

  it('a Fortran-order npy header (re-hashed) fails verify', async () => {
    const store = path.join(dir, 'store-fortran');
    await writeSmallStore(store, 'npy');
    const file = path.join(store, 'kernel.npy');
    const fixed = replaceOnce(readFileSync(file), "'fortran_order': False, ", "'fortran_order': True,  ");
    writeFileSync(file, fixed);
    editJson(path.join(store, MANIFEST_JSON), (m) => {
      m.arrays.kernel.sha256 = sha256(fixed);
    });
    await expect(verifyKernelStore(store)).rejects.toThrow(/Fortran-order arrays are not supported/);
  });
});

/** `bytes` with the first `from` (latin1) replaced by `to`; fails the test if `from` is absent. */
function replaceOnce(bytes: Buffer, from: string, to: string): Buffer {
  const text = bytes.toString('latin1');
  expect(text).toContain(from);
  return Buffer.from(text.replace(from, to), 'latin1');
}

/** A safetensors file with `from` replaced by `to` in its JSON header (header length rewritten). */
function editSafetensorsHeader(bytes: Buffer, from: string, to: string): Buffer {
  const n = Number(bytes.readBigUInt64LE(0));
  const header = replaceOnce(bytes.subarray(8, 8 + n), from, to)
    .toString('latin1')
    .trimEnd();
  const padded = Buffer.from(header.padEnd(Math.ceil(header.length / 8) * 8, ' '), 'latin1');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(padded.byteLength), 0);
  return Buffer.concat([length, padded, bytes.subarray(8 + n)]);
}
