// Kernel-store limits (issue 12): the free space and memory a store needs are checked before it is
// computed (an injected 'available' stands for a full disk), and point sets of more than ~125k
// examples resolve (no call-stack spread over the ids).
import { existsSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import { computeKernelStores, readKernelStore, resolvePoints } from '../../src/kernel-store/index.js';
import { openRun, type Run, train } from '../../src/train/index.js';
import { formatBytes, freeDiskBytes } from '../../src/util/resources.js';
import { tempDir } from '../util/temp-dir.js';

const dir = tempDir('kernel-limits');
let run: Run;

beforeAll(async () => {
  await train(
    { data: 'iris', model: 'mlp-small', steps: 2, batchSize: 16, checkpoints: { steps: [0, 2] } },
    { outDir: path.join(dir, 'run') },
  );
  run = await openRun(path.join(dir, 'run'));
}, 120_000);

describe('kernel store size checks', () => {
  // 30 points × 3 classes: a 90×90 float32 kernel (32400 B) + inputs 30×4×4 + labels 30×4 + logits
  // and probabilities 30×3×12 = 35400 bytes in all.
  const storeBytes = 90 * 90 * 4 + 30 * 16 + 30 * 4 + 30 * 3 * 12;

  it('refuses a store larger than the free space, naming both numbers, and writes nothing', async () => {
    const out = path.join(dir, 'full-disk');
    const error = await computeKernelStores({
      run,
      points: 'train:30',
      out,
      progress: false,
      available: { disk: storeBytes - 1 },
    }).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error!.message).toContain(`needs ${formatBytes(storeBytes)} of free space on the file system of`);
    expect(error!.message).toContain(`${formatBytes(storeBytes - 1)} available`);
    expect(error!.message).toMatch(/^points: .*kernel 90×90 float32.*received "train:30"$/);
    expect(existsSync(out)).toBe(false);
  });

  it('refuses a kernel held in memory that does not fit in memory', async () => {
    await expect(
      computeKernelStores({
        run,
        points: 'train:30',
        kind: 'diagonal',
        out: path.join(dir, 'no-memory'),
        progress: false,
        available: { memory: 1000 },
      }),
    ).rejects.toThrow(
      /the in-memory kernel \(30×3×3 float32\) fits: it needs 1.08 kB of memory, 1.00 kB available/,
    );
  });

  it('computes the store when exactly enough space is free, and by default on the real file system', async () => {
    const [exact] = await computeKernelStores({
      run,
      points: 'train:30',
      out: path.join(dir, 'exact'),
      progress: false,
      available: { disk: storeBytes },
    });
    const store = await readKernelStore(exact!.dir);
    expect(store.kernel.shape).toEqual([90, 90]);
    const [real] = await computeKernelStores({
      run,
      points: 'train:30',
      out: path.join(dir, 'real'),
      progress: false,
    });
    expect(readdirSync(real!.dir)).toContain('manifest.json');
    expect(await freeDiskBytes(path.join(dir, 'not', 'yet', 'there'))).toBeGreaterThan(storeBytes);
  });
});

describe('large point sets', () => {
  it('resolves train:all over 128000 examples (a spread of the ids overflowed the call stack)', async () => {
    const big = path.join(dir, 'big');
    await train(
      {
        data: 'synthetic:classes=2,dim=1,per-class=80000',
        model: 'linear',
        steps: 1,
        batchSize: 'full',
        checkpoints: { steps: [0, 1] },
      },
      { outDir: big },
    );
    const points = await resolvePoints(await openRun(big), 'train:all');
    expect(points.dataset.ids).toHaveLength(128_000);
    expect(points.sources).toHaveLength(128_000);
    expect(points.sources.every((s) => s === 'train')).toBe(true);
  }, 300_000);
});
