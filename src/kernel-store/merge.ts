/**
 * Merging shards: `computeKernelStores({ shard })` writes block rows of one kernel into
 * `<store>.shards/shard-i-of-n/`, possibly on many machines; `mergeKernelShards` checks that the
 * set is complete and consistent and assembles the one-piece store at `<store>/`.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CorruptFileError, InvalidArgumentError } from '../errors.js';
import { type ArrayFormat, allocate, type DType, type NdArray } from '../io/index.js';
import { isDirectory } from '../util/index.js';
import { type KernelManifest, MANIFEST_JSON, STORE_ARRAYS } from './manifest.js';
import {
  checkStoreOutput,
  type KernelManifestInput,
  manifestInput,
  readKernelManifest,
  readStoreArray,
  type WriteKernelStoreInput,
  writeKernelStore,
} from './store.js';

const SHARD_DIR = /^shard-(\d+)-of-(\d+)$/;

/** Options of {@link mergeKernelShards}. */
export interface MergeOptions {
  /** Array format of the merged store; default the shards' format. */
  format?: ArrayFormat;
  /** Delete the `.shards` directory after a successful merge. Default false. */
  removeShards?: boolean;
  /** Replace a kernel store already at the merged path. Default false: it is refused. */
  overwrite?: boolean;
}

/** One merged store. */
export interface MergedStore {
  dir: string;
  shardsDir: string;
  manifest: KernelManifest;
}

/** The kernel fields that must agree across shards. */
const KERNEL_IDENTITY = [
  'kind',
  'dtype',
  'indexConvention',
  'implementation',
  'rules',
  'accumulation',
  'parameters',
  'layers',
  'parameterCount',
] as const;

/** What must agree across the shards of one kernel (everything but rows, files, timings, machine). */
function identity(m: KernelManifest): string {
  return JSON.stringify({
    formatVersion: m.formatVersion,
    run: m.run ? { ...m.run, dir: null } : null,
    source: m.source?.kind === 'model' ? { ...m.source, path: null } : (m.source ?? null),
    model: m.model,
    checkpoint: m.checkpoint,
    points: m.points,
    kernel: Object.fromEntries(KERNEL_IDENTITY.map((key) => [key, m.kernel[key]])),
    count: m.shard?.count,
    formats: Object.fromEntries(Object.entries(m.arrays).map(([k, v]) => [k, [v.format, v.dtype]])),
  });
}

/**
 * The `.shards` directories `dir` refers to: itself (a `.shards` directory), `<dir>.shards` (a
 * store path), or every `*.shards` inside it (a point-set directory).
 */
export async function findShardSets(dir: string): Promise<string[]> {
  const clean = dir.replace(/[/\\]+$/, '');
  if (clean.endsWith('.shards') && (await isDirectory(clean))) return [clean];
  if (await isDirectory(`${clean}.shards`)) return [`${clean}.shards`];
  if (await isDirectory(clean)) {
    const inside = (await fs.readdir(clean)).filter((n) => n.endsWith('.shards')).sort();
    if (inside.length > 0) return inside.map((n) => path.join(clean, n));
  }
  throw new InvalidArgumentError(
    'dir',
    dir,
    'a shards directory (<store>.shards), a store path with one, or a point-set directory containing them',
  );
}

/** Read and check one shard set; returns manifests ordered by shard index. */
async function readShardSet(shardsDir: string): Promise<Array<{ dir: string; manifest: KernelManifest }>> {
  const names = (await fs.readdir(shardsDir)).filter((n) => SHARD_DIR.test(n)).sort();
  if (names.length === 0)
    throw new InvalidArgumentError('dir', shardsDir, 'a directory holding shard-i-of-n/ stores');
  const shards: Array<{ dir: string; manifest: KernelManifest }> = [];
  for (const n of names) {
    const dir = path.join(shardsDir, n);
    const manifest = await readKernelManifest(dir);
    const [, i, c] = SHARD_DIR.exec(n)!;
    if (!manifest.shard || manifest.shard.index !== Number(i) || manifest.shard.count !== Number(c)) {
      throw new CorruptFileError(
        path.join(dir, MANIFEST_JSON),
        `shard field does not match the directory name ${n}`,
      );
    }
    shards.push({ dir, manifest });
  }
  const count = shards[0]!.manifest.shard!.count;
  const counts = new Set(shards.map((s) => s.manifest.shard!.count));
  if (counts.size > 1) {
    throw new CorruptFileError(
      shardsDir,
      `shards disagree on the number of shards (${[...counts].join(' vs ')})`,
    );
  }
  const have = new Set(shards.map((s) => s.manifest.shard!.index));
  const missing = Array.from({ length: count }, (_, k) => k).filter((k) => !have.has(k));
  if (missing.length > 0) {
    throw new InvalidArgumentError(
      'shards',
      `${shards.length} of ${count} in ${shardsDir}`,
      `all ${count} shards; missing ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', ...' : ''} (run entk kernel ... --shard i/${count} for each)`,
    );
  }
  shards.sort((a, b) => a.manifest.shard!.index - b.manifest.shard!.index);
  const ref = identity(shards[0]!.manifest);
  let row = 0;
  for (const s of shards) {
    if (identity(s.manifest) !== ref) {
      throw new CorruptFileError(
        path.join(s.dir, MANIFEST_JSON),
        `shard ${s.manifest.shard!.index} belongs to a different kernel than shard 0 (model, checkpoint, points or kernel settings differ)`,
      );
    }
    if (s.manifest.shard!.rowStart !== row) {
      throw new CorruptFileError(
        path.join(s.dir, MANIFEST_JSON),
        `rows start at ${s.manifest.shard!.rowStart}, expected ${row}`,
      );
    }
    row = s.manifest.shard!.rowEnd;
  }
  if (row !== shards[0]!.manifest.points.count) {
    throw new CorruptFileError(
      shardsDir,
      `shards cover ${row} of ${shards[0]!.manifest.points.count} points`,
    );
  }
  return shards;
}

function concatRows(parts: NdArray[]): NdArray {
  const first = parts[0]!;
  const rows = parts.reduce((s, p) => s + p.shape[0]!, 0);
  const data = allocate(
    first.dtype,
    parts.reduce((s, p) => s + p.data.length, 0),
  );
  let o = 0;
  for (const p of parts) {
    (data as Float32Array).set(p.data as Float32Array, o);
    o += p.data.length;
  }
  return { dtype: first.dtype, shape: [rows, ...first.shape.slice(1)], data } as NdArray;
}

/**
 * Merge every complete shard set `dir` refers to (see {@link findShardSets}) into its one-piece
 * store (`x.shards` → `x`), atomically. Each shard's arrays are verified (sha256, dtype, shape);
 * the kernel is streamed shard by shard, so memory holds one shard's kernel at a time.
 * Throws, naming what is missing or inconsistent, before writing anything.
 */
export async function mergeKernelShards(dir: string, options: MergeOptions = {}): Promise<MergedStore[]> {
  const sets = await findShardSets(dir);
  const plans = [];
  for (const shardsDir of sets) {
    plans.push({ shardsDir, shards: await readShardSet(shardsDir) });
    await checkStoreOutput(shardsDir.slice(0, -'.shards'.length), {
      overwrite: options.overwrite,
      argument: 'dir',
    });
  }
  const merged: MergedStore[] = [];
  for (const { shardsDir, shards } of plans) {
    const t0 = performance.now();
    const m0 = shards[0]!.manifest;
    const target = shardsDir.slice(0, -'.shards'.length);
    const kernelEntry = m0.arrays.kernel!;
    const kernelShape = [
      shards.reduce((s, x) => s + x.manifest.arrays.kernel!.shape[0]!, 0),
      ...kernelEntry.shape.slice(1),
    ];
    const format = options.format ?? (kernelEntry.format as ArrayFormat);
    const arrays: WriteKernelStoreInput['arrays'] = {
      // Streamed shard by shard (JSON cannot be streamed: small kernels are concatenated in memory).
      kernel:
        format === 'json'
          ? concatRows(await Promise.all(shards.map((s) => readStoreArray(s.dir, s.manifest, 'kernel'))))
          : {
              dtype: kernelEntry.dtype as DType,
              shape: kernelShape,
              data: async (write) => {
                for (const s of shards) await write((await readStoreArray(s.dir, s.manifest, 'kernel')).data);
              },
            },
    };
    for (const name of STORE_ARRAYS) {
      if (name === 'kernel' || !m0.arrays[name]) continue;
      const parts: NdArray[] = [];
      for (const s of shards) parts.push(await readStoreArray(s.dir, s.manifest, name));
      arrays[name] = concatRows(parts);
    }
    const timings: Record<string, number> = {};
    for (const s of shards) {
      for (const [k, v] of Object.entries(s.manifest.kernel.timings)) timings[k] = (timings[k] ?? 0) + v;
    }
    const backends = [...new Set(shards.map((s) => s.manifest.kernel.backend))];
    const contractions = [...new Set(shards.flatMap((s) => s.manifest.kernel.contraction ?? []))];
    /** The sum over the shards of an optional count, when every shard records it. */
    const total = (key: 'flops' | 'workerFactorBlocks') =>
      shards.every((s) => s.manifest.kernel[key] !== undefined)
        ? shards.reduce((sum, s) => sum + s.manifest.kernel[key]!, 0)
        : undefined;
    const flops = total('flops');
    const workerFactorBlocks = total('workerFactorBlocks');
    const input = manifestInput(m0);
    const manifest: KernelManifestInput = {
      ...input,
      shard: null,
      kernel: {
        ...input.kernel,
        backend: backends.join(','),
        ...(contractions.length > 0 ? { contraction: contractions.join(',') } : {}),
        ...(flops !== undefined ? { flops } : {}),
        ...(workerFactorBlocks !== undefined ? { workerFactorBlocks } : {}),
        threads: Math.max(...shards.map((s) => s.manifest.kernel.threads)),
        timings,
      },
    };
    // (Not shard 0's count when a shard does not record it.)
    if (workerFactorBlocks === undefined) delete manifest.kernel.workerFactorBlocks;
    const written = await writeKernelStore(target, {
      format,
      overwrite: options.overwrite,
      argument: 'dir',
      manifest: () => ({
        ...manifest,
        kernel: {
          ...manifest.kernel,
          timings: { ...timings, merge: performance.now() - t0, shards: shards.length },
        },
      }),
      arrays,
    });
    if (options.removeShards) await fs.rm(shardsDir, { recursive: true, force: true });
    merged.push({ dir: target, shardsDir, manifest: written });
  }
  return merged;
}
