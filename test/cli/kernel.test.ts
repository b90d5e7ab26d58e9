import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { EntkError } from '../../src/errors.js';
import { readKernelStore, verifyKernelStore } from '../../src/kernel-store/index.js';
import { train } from '../../src/train/index.js';
import { tempDir } from '../util/temp-dir.js';
import { type CliResult, expectOneLineError, runCli, runCliAsync } from './run-cli.js';

const dir = tempDir('cli-kernel');
const run = path.join(dir, 'run');

/** Run several CLI invocations concurrently (each is a separate process). */
function runMany(argvs: string[][]): Promise<CliResult[]> {
  return Promise.all(argvs.map((args) => runCliAsync(args)));
}

beforeAll(async () => {
  await train(
    {
      data: 'iris',
      model: { kind: 'mlp', widths: [8], activation: 'tanh', parameterization: 'standard' },
      steps: 2,
      batchSize: 16,
      checkpoints: { steps: [0, 2] },
    },
    { outDir: run },
  );
});

describe('entk kernel', () => {
  it('computes verified stores for every checkpoint (full, trace, diagonal; npy and safetensors)', async () => {
    const [full, trace, diag] = await runMany([
      ['kernel', '--run', run, '--points', 'train:per-class=2,test:3', '--checkpoint', 'all', '--json'],
      ['kernel', '--run', run, '--points', 'test:5', '--trace', '--format', 'safetensors', '--json'],
      ['kernel', '--run', run, '--points', 'test:5', '--diagonal', '--name', 'diag', '--float64'],
    ]);
    expect(full!.status, full!.stderr).toBe(0);
    const stores = JSON.parse(full!.stdout);
    expect(stores.map((s: { checkpoint: string }) => s.checkpoint)).toEqual(['step-000000', 'step-000002']);
    expect(stores[0].dir).toBe(path.join(run, 'kernels', 'train-per-class-2-test-3', 'step-000000'));
    expect(stores[1].shape).toEqual([27, 27]);
    const store = await readKernelStore(stores[1].dir);
    expect(store.manifest.points.sources).toEqual([...Array(6).fill('train'), ...Array(3).fill('test')]);
    expect(store.manifest.kernel.implementation).toBe('structured');

    expect(trace!.status, trace!.stderr).toBe(0);
    const t = JSON.parse(trace!.stdout)[0];
    expect([t.kind, t.shape, t.arrays.kernel.file]).toEqual(['trace', [5, 5], 'kernel.safetensors']);
    await verifyKernelStore(t.dir);

    expect(diag!.status, diag!.stderr).toBe(0);
    expect(diag!.stdout).toMatch(/kernels\/diag\/step-000002 {2}diagonal \[5, 3, 3\] float64 {2}N=5 V=3/);
  });

  it('shards with --shard i/n, merges with `kernel merge`, and the result equals the one-piece kernel', async () => {
    const out = path.join(dir, 'sharded');
    const shardRuns = await runMany(
      [0, 1, 2].map((i) => [
        'kernel',
        '--run',
        run,
        '--points',
        'train:12',
        '--out',
        out,
        '--shard',
        `${i}/3`,
        '--quiet',
      ]),
    );
    for (const r of shardRuns) expect(r.status, r.stderr).toBe(0);
    expect(shardRuns[1]!.stdout).toMatch(
      /step-000002\.shards\/shard-001-of-003 .* shard 1\/3 \(points 4\.\.7\)/,
    );
    const [merge, one] = await runMany([
      ['kernel', 'merge', path.join(out, 'train-12'), '--json'],
      ['kernel', '--run', run, '--points', 'train:12', '--out', path.join(dir, 'one'), '--json'],
    ]);
    expect(merge!.status, merge!.stderr).toBe(0);
    const merged = JSON.parse(merge!.stdout)[0];
    expect(merged.dir).toBe(path.join(out, 'train-12', 'step-000002'));
    const a = await readKernelStore(merged.dir);
    const b = await readKernelStore(JSON.parse(one!.stdout)[0].dir);
    const ka = a.kernel.data as Float32Array;
    const kb = b.kernel.data as Float32Array;
    let diff = 0;
    let scale = 0;
    for (let k = 0; k < ka.length; k++) {
      diff = Math.max(diff, Math.abs(ka[k]! - kb[k]!));
      scale = Math.max(scale, Math.abs(kb[k]!));
    }
    expect(a.kernel.shape).toEqual([36, 36]);
    expect(diff).toBeLessThanOrEqual(1e-6 * scale);
    expect(a.manifest.points.ids).toEqual(b.manifest.points.ids);

    const [list, verify] = await runMany([
      ['kernel', 'list', out, '--json'],
      ['kernel', 'verify', out],
    ]);
    expect(JSON.parse(list!.stdout).map((s: { dir: string }) => s.dir)).toEqual([merged.dir]);
    expect(verify!.stdout).toContain(`ok  ${merged.dir}`);
    const kernelFile = path.join(merged.dir, 'kernel.npy');
    const bytes = readFileSync(kernelFile);
    bytes[bytes.length - 1] ^= 1;
    writeFileSync(kernelFile, bytes);
    const tampered = await runCli(['kernel', 'verify', out]);
    expectOneLineError(tampered, /kernel\.npy: sha256 mismatch/);
  });

  it('--threads 2 stores the same kernel bitwise and records where the factors ran', async () => {
    const [two, one] = await runMany(
      [2, 1].map((t) => [
        'kernel',
        '--run',
        run,
        '--points',
        'train:80',
        '--out',
        path.join(dir, `threads-${t}`),
        '--threads',
        String(t),
        '--json',
      ]),
    );
    expect(two!.status, two!.stderr).toBe(0);
    expect(one!.status, one!.stderr).toBe(0);
    const a = await readKernelStore(JSON.parse(two!.stdout)[0].dir);
    const b = await readKernelStore(JSON.parse(one!.stdout)[0].dir);
    expect(a.manifest.kernel.threads).toBe(2);
    expect(b.manifest.kernel.threads).toBe(1);
    // 80 points in 3 blocks: the worker computes the factors of 0 to 3 of them (it claims blocks
    // once its backend has started).
    expect(a.manifest.kernel.workerFactorBlocks).toBeGreaterThanOrEqual(0);
    expect(a.manifest.kernel.workerFactorBlocks).toBeLessThanOrEqual(3);
    expect(b.manifest.kernel.workerFactorBlocks).toBe(0);
    const bytes = (k: Float32Array) => Buffer.from(k.buffer, k.byteOffset, k.byteLength);
    expect(a.kernel.shape).toEqual([240, 240]);
    expect(Buffer.compare(bytes(a.kernel.data as Float32Array), bytes(b.kernel.data as Float32Array))).toBe(
      0,
    );
  });

  it('rejects bad inputs with one line naming the argument and a non-zero exit', async () => {
    const cases: Array<[string[], RegExp]> = [
      [
        ['kernel', '--points', 'train:5'],
        /--run: expected a run directory written by 'entk train', received undefined/,
      ],
      [['kernel', '--run', run, '--points', 'val:3'], /points: expected .*"val:3" is not a term/],
      [
        ['kernel', '--run', run, '--points', 'train:5', '--shard', '3/3'],
        /shard: expected i\/n with 0 <= i < n/,
      ],
      [['kernel', 'merge', path.join(dir, 'missing')], /dir: expected a shards directory/],
    ];
    const results = await runMany(cases.map(([argv]) => argv));
    for (const [k, r] of results.entries()) expectOneLineError(r, cases[k]![1]);
  });

  it('names the argument for every other bad flag (in-process, same program)', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['kernel', '--run', run], /--points: expected a point spec/],
      [
        ['kernel', '--run', run, '--points', 'train:5', '--trace', '--diagonal'],
        /at most one of --trace and --diagonal/,
      ],
      [
        ['kernel', '--run', run, '--points', 'train:5', '--format', 'hdf5'],
        /--format: expected one of npy, npz, safetensors, json/,
      ],
      [
        ['kernel', '--run', run, '--points', 'train:5', '--implementation', 'magic'],
        /--implementation: expected one of structured, jacobian, auto/,
      ],
      [
        ['kernel', '--run', run, '--points', 'train:5', '--contraction', 'blas'],
        /--contraction: expected one of auto, wasm, tfjs/,
      ],
      [
        ['kernel', '--run', run, '--points', 'train:5', '--checkpoint', '99'],
        /checkpoint: expected last, first, a step or an id/,
      ],
      [
        ['kernel', '--run', dir, '--points', 'train:5'],
        /run: expected a run directory written by 'entk train' \(no config.json\)/,
      ],
      [
        ['kernel', '--run', run, '--points', 'train:5', '--threads', '0'],
        /--threads: expected an integer in \[1, 1024\]/,
      ],
      [
        ['kernel', '--run', run, '--points', 'train:5', '--parameters', 'a,,b'],
        /--parameters: expected all, head or a comma list/,
      ],
      [['kernel', 'list', path.join(dir, 'missing')], /dir: expected an existing directory/],
    ];
    for (const [argv, message] of cases) {
      const program = buildProgram().exitOverride();
      await expect(program.parseAsync(['node', 'entk', ...argv]), argv.join(' ')).rejects.toThrow(message);
      await expect(
        buildProgram()
          .exitOverride()
          .parseAsync(['node', 'entk', ...argv]),
      ).rejects.toThrow(EntkError);
    }
  });
});
