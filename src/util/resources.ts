/**
 * Up-front resource estimates: refuse a request whose memory or disk need exceeds what is available,
 * with both numbers and the argument to change, instead of crashing half-way (a V8 abort, an
 * "Invalid typed array length", a bare ENOSPC).
 */
import { promises as fs } from 'node:fs';
import { totalmem } from 'node:os';
import * as path from 'node:path';
import { InvalidArgumentError } from '../errors.js';

/** Largest element count of one typed array entk allocates (V8 on 64-bit Node 20 allows 2^32). */
export const MAX_TYPED_ARRAY_LENGTH = 2 ** 32;

/** Bytes as a short human-readable string: '1.5 GB', '320 MB', '12 kB' (powers of 1000). */
export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];
  let value = bytes;
  let u = 0;
  while (value >= 1000 && u < units.length - 1) {
    value /= 1000;
    u++;
  }
  return `${u === 0 ? value : value.toPrecision(3)} ${units[u]}`;
}

/** What one check compares. */
export interface FitRequest {
  /** What needs the bytes, e.g. 'the finetune recording (1000001 steps × 30 points × 10 classes × 8 B)'. */
  what: string;
  /** Estimated bytes needed. */
  bytes: number;
  /** Bytes available (memory budget or free disk space). */
  available: number;
  /** Where the bytes are taken from: 'memory' or 'free space on /path'. */
  where?: string;
  /** The argument (or flag) to change, named in the error. */
  argument: string;
  /** The value of that argument. */
  received: unknown;
}

/**
 * Throw an InvalidArgumentError naming `argument` unless `bytes` ≤ `available`:
 * `steps: expected a value for which the finetune recording (…) fits: it needs 80.0 GB of memory,
 * 16.0 GB available, received 1000000000`.
 */
export function assertFits(request: FitRequest): void {
  const { what, bytes, available, argument, received } = request;
  if (Number.isFinite(bytes) && bytes <= available) return;
  const where = request.where ?? 'memory';
  throw new InvalidArgumentError(
    argument,
    received,
    `a value for which ${what} fits: it needs ${formatBytes(bytes)} of ${where}, ${formatBytes(available)} available`,
  );
}

/**
 * Memory budget for one process: the machine's physical memory (typed arrays live outside the V8
 * heap, so its limit is not the bound). `ENTK_MEMORY_BYTES` overrides it (tests, shared machines).
 */
export function memoryBudget(): number {
  const override = Number(process.env.ENTK_MEMORY_BYTES);
  return Number.isFinite(override) && override > 0 ? override : totalmem();
}

/**
 * Free bytes for an unprivileged user on the file system that will hold `target` (statfs of its
 * nearest existing ancestor). Infinity when the file system cannot be queried.
 */
export async function freeDiskBytes(target: string): Promise<number> {
  let dir = path.resolve(target);
  for (;;) {
    try {
      const s = await fs.statfs(dir);
      return s.bavail * s.bsize;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const parent = path.dirname(dir);
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || parent === dir) return Number.POSITIVE_INFINITY;
      dir = parent;
    }
  }
}
