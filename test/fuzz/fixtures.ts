// Small valid files written by entk's own writers, shared by the integrity and fuzz tests.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import type { ArrayFormat, NdArray } from '../../src/io/index.js';
import { writeKernelStore } from '../../src/kernel-store/index.js';
import { Rng } from '../../src/util/rng.js';
import { syntheticStore } from '../kernel-store/synthetic-store.js';

/** A kernel store of N points and V outputs (full float32 kernel with random values) in `format`. */
export async function writeSmallStore(dir: string, format: ArrayFormat, N = 3, V = 2): Promise<NdArray> {
  const { manifest, arrays } = syntheticStore(N, V, 'full', 'float32', 11);
  await writeKernelStore(dir, { manifest, arrays: { kernel: arrays.kernel }, format });
  return arrays.kernel;
}

/** sha256 of `bytes`, lowercase hex. */
export function sha256(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Every file under `dir` (recursively) with its sha256: compare before/after to see nothing changed. */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out[path.relative(dir, p)] = sha256(readFileSync(p));
    }
  };
  walk(dir);
  return out;
}

/** A 3-class CSV with 2 features and 30 rows (label column 'label'). */
export function smallCsv(shift = 0): string {
  const rng = new Rng(5);
  const lines = ['x1,x2,label'];
  for (let i = 0; i < 30; i++) {
    const c = i % 3;
    lines.push(
      `${(c + rng.normal() * 0.3 + shift).toFixed(4)},${(-c + rng.normal() * 0.3).toFixed(4)},k${c}`,
    );
  }
  return `${lines.join('\n')}\n`;
}
