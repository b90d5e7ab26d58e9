/**
 * The kernel store on disk: one directory per (point set, checkpoint),
 *
 * ```
 * <run>/kernels/<point-set>/<checkpoint-id>/
 *     manifest.json          see ./manifest.ts (format version, model, checkpoint, points, kernel, hashes)
 *     kernel.<ext>           full [N·V, N·V] | diagonal [N, V, V] | trace [N, N] | pairs [P, V, V]
 *     inputs.<ext>           float32 [N, ...inputShape]   the points as fed to the model (standardised)
 *     labels.<ext>           int32 [N]                     class index (-1: no label)
 *     logits.<ext>           float32 [N, V]                the model's logits at the checkpoint
 *     probabilities.<ext>    float64 [N, V]                softmax of the logits (computed in float64)
 *     pairs.<ext>            int32 [P, 2]                  kind 'pairs' only: point indices of each pair
 * <run>/kernels/<point-set>/<checkpoint-id>.shards/shard-003-of-008/   a shard (same layout, its rows)
 * ```
 *
 * `<ext>` is the store's array format (.npy by default; .npz, .safetensors, .json). Every write is
 * atomic: the directory is built aside and swapped in, so an interrupted export leaves the previous
 * store intact. Every read checks the manifest, each file's sha256 and each array's dtype/shape.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ENTK_VERSION } from '../backend/index.js';
import { CorruptFileError, InvalidArgumentError } from '../errors.js';
import {
  type ArrayFormat,
  type ArraySource,
  checkHash,
  type DType,
  FORMAT_EXTENSION,
  type NdArray,
  parseArrayFormat,
  readArray,
  readArrayHeader,
  readNpyRows,
  sha256File,
  streamArray,
} from '../io/index.js';
import {
  checkOutputDir,
  exists,
  isDirectory,
  type OutputKind,
  resolveInside,
  writeJsonAtomic,
  writeOutputDir,
} from '../util/index.js';
import {
  INDEX_CONVENTION,
  KERNEL_STORE_FORMAT,
  KERNEL_STORE_VERSION,
  type KernelManifest,
  MANIFEST_JSON,
  type ManifestArray,
  parseManifest,
  STORE_ARRAYS,
  type StoreArrayName,
} from './manifest.js';

/** The kernel array to write: in memory, or streamed by a producer (block rows in C order). */
export interface KernelArraySource {
  dtype: DType;
  shape: number[];
  /** The elements (row-major), or a producer writing them in chunks (see src/io ArrayProducer). */
  data: ArraySource;
}

/** Everything a store holds besides what writeKernelStore fills in itself. */
export type KernelManifestInput = Omit<
  KernelManifest,
  'format' | 'formatVersion' | 'entkVersion' | 'createdAt' | 'arrays' | 'kernel'
> & {
  kernel: Omit<KernelManifest['kernel'], 'shape' | 'dtype' | 'indexConvention'>;
  /** ISO time; default now. */
  createdAt?: string;
};

/** The input that would write `manifest` again: it without the fields writeKernelStore fills in. */
export function manifestInput(manifest: KernelManifest): KernelManifestInput {
  const { format: _f, formatVersion: _v, entkVersion: _e, arrays: _a, kernel, ...rest } = manifest;
  const { shape: _s, dtype: _d, indexConvention: _i, ...kernelRest } = kernel;
  return { ...rest, kernel: kernelRest };
}

/** Input of {@link writeKernelStore}. */
export interface WriteKernelStoreInput {
  /**
   * The manifest fields describing run, model, checkpoint, points and kernel; or a function
   * returning them, called again after the arrays are written (so a streamed kernel's producer can
   * contribute its implementation and timings).
   */
  manifest: KernelManifestInput | (() => KernelManifestInput);
  /** The arrays; kernel is required, the others are written when given. */
  arrays: {
    kernel: KernelArraySource;
    inputs?: NdArray;
    labels?: NdArray;
    logits?: NdArray;
    probabilities?: NdArray;
    pairs?: NdArray;
  };
  /** Array file format. Default 'npy'. */
  format?: ArrayFormat;
  /** Replace a kernel store already at `dir` (anything else there is never replaced). Default false. */
  overwrite?: boolean;
  /** The argument named when `dir` is refused. Default 'out'. */
  argument?: string;
}

/** Kernel stores as output directories (src/util/output.ts): marked by their manifest's format. */
export const KERNEL_STORE_OUTPUT: OutputKind = {
  name: 'kernel store',
  marker: MANIFEST_JSON,
  format: KERNEL_STORE_FORMAT,
};

/**
 * Throw unless a kernel store may be written to `dir`: it is new, an empty directory, or (with
 * `overwrite`) a kernel store. Called before computing anything; writeKernelStore checks again.
 */
export async function checkStoreOutput(
  dir: string,
  options: { overwrite?: boolean; argument?: string } = {},
): Promise<void> {
  await checkOutputDir(dir, {
    argument: options.argument ?? 'out',
    kind: KERNEL_STORE_OUTPUT,
    overwrite: options.overwrite,
  });
}

/** A store read back: manifest plus the arrays that were loaded (all by default). */
export interface KernelStore {
  /** The store directory. */
  dir: string;
  manifest: KernelManifest;
  kernel: NdArray;
  inputs?: NdArray;
  labels?: NdArray;
  logits?: NdArray;
  probabilities?: NdArray;
  pairs?: NdArray;
}

/** The rows (points) a store holds: all N, or a shard's [rowStart, rowEnd). */
export function storeRows(manifest: Pick<KernelManifest, 'points' | 'shard'>): {
  start: number;
  end: number;
} {
  return manifest.shard
    ? { start: manifest.shard.rowStart, end: manifest.shard.rowEnd }
    : { start: 0, end: manifest.points.count };
}

/** The shapes every array of a store must have, from its manifest (kernel kind, N, V, rows). */
export function expectedShapes(
  manifest: Pick<KernelManifest, 'points' | 'shard' | 'model'> & {
    kernel: { kind: KernelManifest['kernel']['kind'] };
  },
  pairCount?: number,
): Partial<Record<StoreArrayName, number[]>> {
  const N = manifest.points.count;
  const V = manifest.model.numOutputs;
  const { start, end } = storeRows(manifest);
  const R = end - start;
  const kind = manifest.kernel.kind;
  const shapes: Partial<Record<StoreArrayName, number[]>> = {
    inputs: [R, ...manifest.model.inputShape],
    labels: [R],
    logits: [R, V],
    probabilities: [R, V],
  };
  if (kind === 'full') shapes.kernel = [R * V, N * V];
  else if (kind === 'diagonal') shapes.kernel = [R, V, V];
  else if (kind === 'trace') shapes.kernel = [R, N];
  else if (pairCount !== undefined) {
    shapes.kernel = [pairCount, V, V];
    shapes.pairs = [pairCount, 2];
  }
  return shapes;
}

const ARRAY_DTYPES: Partial<Record<StoreArrayName, DType>> = {
  inputs: 'float32',
  labels: 'int32',
  logits: 'float32',
  probabilities: 'float64',
  pairs: 'int32',
};

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, k) => d === b[k]);
}

/**
 * Write a kernel store to `dir` atomically (the previous content, if any, stays intact until the
 * new store is complete), holding the lock of `dir`. `dir` must be new or empty, or a kernel store
 * and `overwrite` set (see src/util/output.ts); anything else is refused. Checks that every array's dtype and shape fit the manifest (kind, N, V,
 * shard rows). Returns the manifest written.
 */
export async function writeKernelStore(dir: string, input: WriteKernelStoreInput): Promise<KernelManifest> {
  const format = parseArrayFormat(input.format ?? 'npy');
  const { arrays } = input;
  const manifestNow = () => (typeof input.manifest === 'function' ? input.manifest() : input.manifest);
  const m = manifestNow();
  if (!arrays?.kernel) throw new InvalidArgumentError('arrays.kernel', undefined, 'the kernel array');
  if (m.kernel.kind === 'pairs' && !arrays.pairs) {
    throw new InvalidArgumentError('arrays.pairs', undefined, "the [P, 2] point pairs for kind 'pairs'");
  }
  if (m.kernel.kind === 'pairs' && m.shard) {
    throw new InvalidArgumentError('shard', m.shard, "no shard for kind 'pairs' (shards split kernel rows)");
  }
  if (m.points.ids.length !== m.points.count || m.points.sources.length !== m.points.count) {
    throw new InvalidArgumentError(
      'manifest.points.ids',
      m.points.ids,
      `all ${m.points.count} point ids and sources`,
    );
  }
  const expected = expectedShapes(m, arrays.pairs?.shape[0]);
  for (const name of STORE_ARRAYS) {
    const a = arrays[name];
    if (!a) continue;
    const want = expected[name];
    if (want && !sameShape(a.shape, want)) {
      throw new InvalidArgumentError(
        `arrays.${name}.shape`,
        `[${a.shape.join(', ')}]`,
        `[${want.join(', ')}] for kind '${m.kernel.kind}' with N = ${m.points.count}, V = ${m.model.numOutputs}`,
      );
    }
    const dtype = ARRAY_DTYPES[name];
    if (dtype && a.dtype !== dtype) throw new InvalidArgumentError(`arrays.${name}.dtype`, a.dtype, dtype);
  }
  if (arrays.kernel.dtype !== 'float32' && arrays.kernel.dtype !== 'float64') {
    throw new InvalidArgumentError('arrays.kernel.dtype', arrays.kernel.dtype, 'float32 or float64');
  }
  let written: KernelManifest | undefined;
  const output = { argument: input.argument ?? 'out', kind: KERNEL_STORE_OUTPUT, overwrite: input.overwrite };
  await writeOutputDir(dir, output, async (tmp) => {
    const files: Partial<Record<StoreArrayName, ManifestArray>> = {};
    for (const name of STORE_ARRAYS) {
      const a = arrays[name];
      if (!a) continue;
      const file = `${name}${FORMAT_EXTENSION[format]}`;
      const info = await streamArray(path.join(tmp, file), { dtype: a.dtype, shape: a.shape }, a.data, {
        format,
        name,
        metadata: format === 'safetensors' ? { format: KERNEL_STORE_FORMAT, array: name } : undefined,
      });
      files[name] = {
        file,
        format,
        name,
        dtype: a.dtype,
        shape: [...a.shape],
        bytes: info.bytes,
        sha256: info.sha256,
      };
    }
    const final = manifestNow();
    const { createdAt, ...rest } = final;
    const manifest: KernelManifest = {
      format: KERNEL_STORE_FORMAT,
      formatVersion: KERNEL_STORE_VERSION,
      entkVersion: ENTK_VERSION,
      createdAt: createdAt ?? new Date().toISOString(),
      ...rest,
      // What made the store: versions, and the command line of the process that wrote it.
      versions: { entk: ENTK_VERSION, tfjs: tf.version.tfjs, node: process.versions.node },
      commandLine: process.argv.slice(1),
      kernel: {
        ...final.kernel,
        timingsUnit: 'ms',
        dtype: arrays.kernel.dtype,
        shape: [...arrays.kernel.shape],
        indexConvention: INDEX_CONVENTION,
      },
      arrays: files as KernelManifest['arrays'],
    };
    written = parseManifest(JSON.parse(JSON.stringify(manifest)), path.join(dir, MANIFEST_JSON));
    await writeJsonAtomic(path.join(tmp, MANIFEST_JSON), manifest);
  });
  return written!;
}

/** Read and validate a store's manifest.json. */
export async function readKernelManifest(dir: string): Promise<KernelManifest> {
  const file = path.join(dir, MANIFEST_JSON);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new InvalidArgumentError('store', dir, `a kernel store directory (no ${MANIFEST_JSON})`);
    }
    throw error;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new CorruptFileError(file, `not valid JSON (${(error as Error).message})`);
  }
  return parseManifest(json, file);
}

/** Options of {@link readKernelStore}. */
export interface ReadKernelStoreOptions {
  /** Which arrays to load; default all in the store. The kernel is always loaded. */
  arrays?: StoreArrayName[];
}

/** Read one array of a store, checking its sha256, dtype and shape against the manifest. */
export async function readStoreArray(
  dir: string,
  manifest: KernelManifest,
  name: StoreArrayName,
): Promise<NdArray> {
  const entry = manifest.arrays[name];
  if (!entry)
    throw new InvalidArgumentError('array', name, `one of ${Object.keys(manifest.arrays).join(', ')}`);
  const file = await checkArrayFile(dir, manifest, name);
  const array = await readArray(file, {
    format: entry.format as ArrayFormat,
    name: entry.name,
    sha256: entry.sha256,
  });
  checkArraySpec(file, array, entry);
  const { sha256: _hash, ...plain } = array;
  return plain;
}

/**
 * Read a kernel store: manifest (validated) and arrays (each verified against its sha256, dtype
 * and shape in the manifest, and the shapes against kind, N and V).
 */
export async function readKernelStore(
  dir: string,
  options: ReadKernelStoreOptions = {},
): Promise<KernelStore> {
  const manifest = await readKernelManifest(dir);
  checkManifestShapes(dir, manifest);
  const wanted = new Set<StoreArrayName>(['kernel', ...(options.arrays ?? STORE_ARRAYS)]);
  const store: KernelStore = { dir, manifest, kernel: undefined as unknown as NdArray };
  for (const name of STORE_ARRAYS) {
    if (!wanted.has(name) || !manifest.arrays[name]) continue;
    store[name] = await readStoreArray(dir, manifest, name);
  }
  return store;
}

function checkManifestShapes(dir: string, manifest: KernelManifest): void {
  const expected = expectedShapes(manifest, manifest.arrays.pairs?.shape[0]);
  for (const [name, entry] of Object.entries(manifest.arrays)) {
    const want = expected[name as StoreArrayName];
    if (want && !sameShape(entry.shape, want)) {
      throw new CorruptFileError(
        path.join(dir, MANIFEST_JSON),
        `arrays.${name}.shape [${entry.shape.join(', ')}] does not fit kind '${manifest.kernel.kind}', N = ${manifest.points.count}, V = ${manifest.model.numOutputs} (expected [${want.join(', ')}])`,
      );
    }
  }
}

/**
 * Verify a store without keeping its arrays: manifest, shapes, and for every array file its size,
 * its header (dtype, shape; npy byte order and Fortran order; npz members; safetensors offsets)
 * against the manifest, and its sha256 (streamed). Throws CorruptFileError on the first problem;
 * returns the manifest.
 */
export async function verifyKernelStore(dir: string): Promise<KernelManifest> {
  const manifest = await readKernelManifest(dir);
  checkManifestShapes(dir, manifest);
  for (const [name, entry] of Object.entries(manifest.arrays)) {
    const file = await checkArrayFile(dir, manifest, name as StoreArrayName);
    const header = await readArrayHeader(file, { format: entry.format as ArrayFormat, name: entry.name });
    checkArraySpec(file, header, entry);
    checkHash(file, await sha256File(file), entry.sha256);
  }
  return manifest;
}

/**
 * The path of array `name` of a store, checked against its manifest entry: a file inside the
 * store directory that exists and has the recorded size. CorruptFileError naming the file.
 */
async function checkArrayFile(dir: string, manifest: KernelManifest, name: StoreArrayName): Promise<string> {
  const entry = manifest.arrays[name]!;
  const file = resolveInside(dir, entry.file, `arrays.${name}.file`, path.join(dir, MANIFEST_JSON));
  const stat = await fs.stat(file).catch(() => null);
  if (!stat?.isFile()) throw new CorruptFileError(file, `missing (listed in ${MANIFEST_JSON})`);
  if (stat.size !== entry.bytes) {
    throw new CorruptFileError(file, `is ${stat.size} bytes, the manifest says ${entry.bytes}`);
  }
  return file;
}

/** CorruptFileError unless an array's header (or the array read) has the manifest's dtype and shape. */
function checkArraySpec(file: string, found: { dtype: DType; shape: number[] }, entry: ManifestArray): void {
  if (found.dtype !== entry.dtype || !sameShape(found.shape, entry.shape)) {
    throw new CorruptFileError(
      file,
      `holds ${found.dtype} [${found.shape.join(', ')}], the manifest says ${entry.dtype} [${entry.shape.join(', ')}]`,
    );
  }
}

/** `checkpointId` that {@link listKernelStores} gives a model store (`entk kernel --model`). */
export const MODEL_STORE_CHECKPOINT = 'model';

/** A store found by {@link listKernelStores}. */
export interface KernelStoreEntry {
  dir: string;
  pointSet: string;
  /** The checkpoint id; {@link MODEL_STORE_CHECKPOINT} for a model store. */
  checkpointId: string;
  /** The checkpoint's step; 0 for a model store. */
  step: number;
  kind: KernelManifest['kernel']['kind'];
  count: number;
  manifest: KernelManifest;
}

/**
 * The stores under `root`: a run directory (its `kernels/`), a kernels directory
 * (`<point-set>/<checkpoint>/`), or one point set's directory. Sorted by point set, then step.
 * Shards (`*.shards`) and temporary directories are skipped; damaged manifests throw.
 */
export async function listKernelStores(root: string): Promise<KernelStoreEntry[]> {
  if (!(await isDirectory(root))) throw new InvalidArgumentError('dir', root, 'an existing directory');
  let base = root;
  if (await isDirectory(path.join(root, 'kernels'))) base = path.join(root, 'kernels');
  const out: KernelStoreEntry[] = [];
  const visible = async (dir: string) =>
    (await fs.readdir(dir)).filter((n) => !n.startsWith('.') && !n.endsWith('.shards')).sort();
  const add = async (dir: string) => {
    const manifest = await readKernelManifest(dir);
    out.push({
      dir,
      pointSet: manifest.points.name,
      checkpointId: manifest.checkpoint?.id ?? MODEL_STORE_CHECKPOINT,
      step: manifest.checkpoint?.step ?? 0,
      kind: manifest.kernel.kind,
      count: manifest.points.count,
      manifest,
    });
  };
  if (await exists(path.join(base, MANIFEST_JSON))) {
    await add(base);
    return out;
  }
  for (const a of await visible(base)) {
    const first = path.join(base, a);
    if (!(await isDirectory(first))) continue;
    if (await exists(path.join(first, MANIFEST_JSON))) {
      await add(first);
      continue;
    }
    for (const b of await visible(first)) {
      const second = path.join(first, b);
      if ((await isDirectory(second)) && (await exists(path.join(second, MANIFEST_JSON)))) await add(second);
    }
  }
  return out.sort((x, y) => (x.pointSet < y.pointSet ? -1 : x.pointSet > y.pointSet ? 1 : x.step - y.step));
}

/** Indices (kernel order) of the points with the given ids; InvalidArgumentError naming unknown ids. */
export function pointIndices(manifest: KernelManifest, ids: readonly string[]): number[] {
  const position = new Map(manifest.points.ids.map((id, k) => [id, k]));
  const missing = ids.filter((id) => !position.has(id));
  if (missing.length > 0) {
    throw new InvalidArgumentError(
      'ids',
      missing.slice(0, 5).join(', '),
      `ids of the store's point set ${JSON.stringify(manifest.points.name)}`,
    );
  }
  return ids.map((id) => position.get(id)!);
}

/**
 * The block of a full kernel between row points `rows` and column points `cols` (indices in
 * kernel order), as Float64Array [rows.length·V, cols.length·V], point-major like the store
 * (entry (a·V + i, b·V + j) = K_ij(x_rows[a], x_cols[b])). This is the form src/dynamics consumes.
 */
export function kernelBlock(
  store: KernelStore,
  rows: readonly number[],
  cols: readonly number[],
): Float64Array {
  const { manifest, kernel } = store;
  if (manifest.kernel.kind !== 'full') {
    throw new InvalidArgumentError(
      'store',
      store.dir,
      `a full kernel (this one is '${manifest.kernel.kind}')`,
    );
  }
  const V = manifest.model.numOutputs;
  const N = manifest.points.count;
  const { start, end } = storeRows(manifest);
  const width = N * V;
  const data = kernel.data as Float32Array | Float64Array;
  const out = new Float64Array(rows.length * V * cols.length * V);
  const outWidth = cols.length * V;
  rows.forEach((r, a) => {
    if (!Number.isInteger(r) || r < start || r >= end) {
      throw new InvalidArgumentError('rows', r, `point indices in [${start}, ${end})`);
    }
    for (let i = 0; i < V; i++) {
      const src = ((r - start) * V + i) * width;
      const dst = (a * V + i) * outWidth;
      cols.forEach((c, b) => {
        if (!Number.isInteger(c) || c < 0 || c >= N)
          throw new InvalidArgumentError('cols', c, `point indices in [0, ${N})`);
        for (let j = 0; j < V; j++) out[dst + b * V + j] = data[src + c * V + j];
      });
    }
  });
  return out;
}

/**
 * Kernel rows of points [start, start + count) of a store, read from disk without loading the
 * whole kernel when it is an .npy file (other formats load the kernel, verified, and slice).
 * Full kind: [count·V, N·V]; diagonal: [count, V, V]; trace: [count, N]. Indices are relative to
 * the store's own rows (a shard starts at 0). Not hash-verified for .npy (use verifyKernelStore).
 */
export async function readKernelRows(dir: string, start: number, count: number): Promise<NdArray> {
  const manifest = await readKernelManifest(dir);
  const entry = manifest.arrays.kernel!;
  if (manifest.kernel.kind === 'pairs')
    throw new InvalidArgumentError('store', dir, 'a full, diagonal or trace kernel');
  const per = manifest.kernel.kind === 'full' ? manifest.model.numOutputs : 1;
  const rows = entry.shape[0]! / per;
  if (!Number.isInteger(start) || start < 0 || start > rows) {
    throw new InvalidArgumentError('start', start, `an integer in [0, ${rows}]`);
  }
  if (!Number.isInteger(count) || count < 0 || start + count > rows) {
    throw new InvalidArgumentError('count', count, `an integer in [0, ${rows - start}]`);
  }
  if (entry.format === 'npy') {
    const file = await checkArrayFile(dir, manifest, 'kernel');
    checkArraySpec(file, await readArrayHeader(file, { format: 'npy' }), entry);
    return readNpyRows(file, start * per, count * per);
  }
  const all = await readStoreArray(dir, manifest, 'kernel');
  const rowSize = all.data.length / all.shape[0]!;
  return {
    dtype: all.dtype,
    shape: [count * per, ...all.shape.slice(1)],
    data: all.data.slice(start * per * rowSize, (start + count) * per * rowSize),
  } as NdArray;
}

/** Options of {@link exportKernelStore}. */
export interface ExportKernelStoreOptions {
  /** Target array format. */
  format: ArrayFormat;
  /** Target store directory (created atomically; new or empty). */
  out: string;
  /** Replace a kernel store already at `out`. Default false. */
  overwrite?: boolean;
}

/**
 * Convert a store to another array format: every array is read (verified) and written to `out`
 * with the same manifest (new hashes). Holds the kernel in memory once.
 */
export async function exportKernelStore(
  dir: string,
  options: ExportKernelStoreOptions,
): Promise<KernelManifest> {
  const manifest = await readKernelManifest(dir);
  checkManifestShapes(dir, manifest);
  if (path.resolve(options.out) === path.resolve(dir)) {
    throw new InvalidArgumentError('out', options.out, 'a directory other than the source store');
  }
  await checkStoreOutput(options.out, { overwrite: options.overwrite });
  const arrays: WriteKernelStoreInput['arrays'] = { kernel: await readStoreArray(dir, manifest, 'kernel') };
  for (const name of STORE_ARRAYS) {
    if (name !== 'kernel' && manifest.arrays[name]) arrays[name] = await readStoreArray(dir, manifest, name);
  }
  return writeKernelStore(options.out, {
    manifest: manifestInput(manifest),
    arrays,
    format: options.format,
    overwrite: options.overwrite,
  });
}
