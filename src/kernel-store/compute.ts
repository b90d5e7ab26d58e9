/**
 * Computing kernel stores for a run: for each selected checkpoint, the eNTK over a point set
 * (src/kernel), the model's logits and probabilities at the points, written as a store
 * (./store.ts) — whole, or as one shard of block rows so that many machines (e.g. a Slurm job
 * array) can share one kernel; ./merge.ts assembles the shards.
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { InvalidArgumentError } from '../errors.js';
import type { ArrayFormat, ArrayProducer, NdArray } from '../io/index.js';
import {
  empiricalNtkFn,
  logitsFunction,
  type NtkAccumulation,
  type NtkBlock,
  type NtkContraction,
  type NtkImplementation,
  type NtkInput,
  type NtkLayerRule,
  type NtkLogits,
  type NtkParameters,
  type NtkResult,
  type NtkStreamSummary,
  terminateNtkWorkers,
} from '../kernel/index.js';
import { countParameters } from '../model/index.js';
import { type CheckpointInfo, openRun, type Run } from '../train/index.js';
import { assertFits, freeDiskBytes, memoryBudget } from '../util/index.js';
import type { KernelManifest, ManifestLayer, ManifestRule } from './manifest.js';
import { defaultPointSetName, resolvePoints } from './points.js';
import { checkStoreOutput, type KernelManifestInput, writeKernelStore } from './store.js';

/** A shard: block rows `index` of `count` (0-based, `0 <= index < count`). */
export interface ShardSpec {
  index: number;
  count: number;
}

/** Kinds `computeKernelStores` produces (pairs are written through the store API directly). */
export type ComputedKernelKind = 'full' | 'diagonal' | 'trace';

/** Options of {@link computeKernelStores} (the `entk kernel` flags map one to one onto these). */
export interface ComputeKernelStoresOptions {
  /** The run: a directory written by `entk train`, or an opened Run. */
  run: string | Run;
  /** Points: a point spec (see ./points.ts), e.g. 'train:per-class=10,test:20'. */
  points: string;
  /** Checkpoints: 'last' (default), 'first', 'all', an id, a step, or a comma list of these. */
  checkpoint?: string;
  /** Point-set name (directory); default derived from the spec (`train:100` → `train-100`). */
  name?: string;
  /** Seed for sampled point terms. Default 0. */
  seed?: number;
  /** Root of the stores: `<out>/<name>/<checkpoint>/`. Default `<run>/kernels`. */
  out?: string;
  /** 'full' (default), 'diagonal' (K(x,x) blocks) or 'trace' (tr K / V). */
  kind?: ComputedKernelKind;
  /** eNTK implementation; default 'auto'. */
  implementation?: NtkImplementation;
  /** Parameter subset: 'all' (default), 'head' or layer names. */
  parameters?: NtkParameters;
  /** Accumulation precision: 'float32' (default, kernel stored as float32) or 'float64'. */
  accumulation?: NtkAccumulation;
  /** float32 contraction kernels: 'auto' (default), 'wasm' or 'tfjs' (see NTK_CONTRACTIONS). */
  contraction?: NtkContraction;
  /** Worker threads: a number or 'auto'; default 1. */
  threads?: number | 'auto';
  /** Points per kernel block; default chosen by the engine. */
  blockSize?: number;
  /** Array file format; default 'npy'. */
  format?: ArrayFormat;
  /** Compute only this shard of block rows (written to `<store>.shards/shard-i-of-n/`). */
  shard?: ShardSpec;
  /**
   * Kernels larger than this many bytes are streamed to disk row panel by row panel instead of
   * being held in memory (the symmetric one-piece case then computes both triangles). Default 2 GiB.
   */
  maxInMemoryBytes?: number;
  /** Progress bars on a terminal; default true. */
  progress?: boolean;
  /**
   * Bytes available, checked before computing: `disk` (default: statfs of the store's file system)
   * and `memory` for a kernel held in memory (default: physical memory or ENTK_MEMORY_BYTES).
   */
  available?: { disk?: number; memory?: number };
  /** Replace kernel stores (or shards) already there; default false: an existing store is refused. */
  overwrite?: boolean;
  /**
   * 'output' (default): the model's outputs are the logits (a softmax/sigmoid output is refused);
   * 'pre-activation': kernel and logits.npy of the values before the output's softmax/sigmoid.
   */
  logits?: NtkLogits;
}

/** One store written. */
export interface ComputedStore {
  dir: string;
  manifest: KernelManifest;
  /** How each selected layer was differentiated (the kernel plan's rules). */
  rules: NtkLayerRule[];
}

const DEFAULT_MAX_IN_MEMORY = 2 * 1024 ** 3;

/**
 * What computeKernelStores carries from one checkpoint's store to the next: the kernel array, once
 * written (computed with the same points and options, it is the next one's NtkCallOptions.out:
 * fresh memory is slow on first touch); the worker threads keep running (the owner stops them).
 */
export interface StoreSession {
  kernel?: Float32Array | Float64Array;
}

/** Counters for tests: kernels computed into the previous checkpoint's array (computeKernelStores). */
export const storeTestHooks = { reusedKernels: 0 };

/** The directory of shard `index` of `count` of the store at `storeDir`. */
export function shardDir(storeDir: string, index: number, count: number): string {
  const w = Math.max(3, String(count).length);
  return `${storeDir}.shards/shard-${String(index).padStart(w, '0')}-of-${String(count).padStart(w, '0')}`;
}

/** Points [rowStart, rowEnd) of shard `index` of `count` over N points (balanced, in order). */
export function shardRows(n: number, shard: ShardSpec): { rowStart: number; rowEnd: number } {
  return {
    rowStart: Math.floor((shard.index * n) / shard.count),
    rowEnd: Math.floor(((shard.index + 1) * n) / shard.count),
  };
}

/** Parse `i/n` (0-based shard index i of n) as given to `--shard`. */
export function parseShard(value: string): ShardSpec {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(value);
  const index = m ? Number(m[1]) : Number.NaN;
  const count = m ? Number(m[2]) : Number.NaN;
  if (!m || count < 1 || index >= count) {
    throw new InvalidArgumentError(
      'shard',
      value,
      'i/n with 0 <= i < n (e.g. 0/8 for the first of 8 shards)',
    );
  }
  return { index, count };
}

/** The checkpoints named by a selector: 'all', or a comma list of 'last'/'first'/ids/steps. */
export function selectCheckpoints(run: Run, selector: string): CheckpointInfo[] {
  if (selector.trim() === 'all') return [...run.checkpoints];
  const out: CheckpointInfo[] = [];
  for (const part of selector.split(',')) {
    const c = run.resolveCheckpoint(part.trim());
    if (!out.some((o) => o.id === c.id)) out.push(c);
  }
  return out;
}

/** Layer-by-layer summary of a model: name, class, output shape, trainable parameters. */
export function summarizeModel(model: tf.LayersModel): ManifestLayer[] {
  return model.layers.map((layer) => {
    const shape = layer.outputShape;
    const flat = (Array.isArray(shape[0]) ? shape[0] : shape) as Array<number | null>;
    return {
      name: layer.name,
      className: layer.getClassName(),
      outputShape: flat.map((d) => (d == null ? null : d)),
      parameters: countParameters(layer),
    };
  });
}

/**
 * Logits of `model` at `ds` rows [start, end) as float32 [R, V] (with `kind` 'pre-activation': before
 * the output's softmax/sigmoid, see src/kernel logitsFunction), and softmax probabilities in
 * float64 (max-shifted). Inputs are fed in chunks; no tensors are left behind.
 */
export function logitsAndProbabilities(
  model: tf.LayersModel,
  x: Float32Array,
  inputShape: number[],
  start: number,
  end: number,
  kind: NtkLogits = 'output',
): { logits: NdArray; probabilities: NdArray } {
  const d = inputShape.reduce((a, b) => a * b, 1);
  const R = end - start;
  const chunks: Float32Array[] = [];
  let V = 0;
  const logitsOf = logitsFunction(model, kind);
  for (let r = start; r < end; r += 512) {
    const e = Math.min(end, r + 512);
    const out = tf.tidy(() => {
      const input = tf.tensor(x.subarray(r * d, e * d), [e - r, ...inputShape]);
      const y = logitsOf(input);
      V = y.shape[y.shape.length - 1]!;
      return y.dataSync() as Float32Array;
    });
    chunks.push(Float32Array.from(out));
  }
  if (R === 0) V = (model.outputs[0]!.shape[model.outputs[0]!.shape.length - 1] as number) ?? 0;
  const logits = new Float32Array(R * V);
  let o = 0;
  for (const c of chunks) {
    logits.set(c, o);
    o += c.length;
  }
  const probabilities = new Float64Array(R * V);
  for (let n = 0; n < R; n++) {
    let max = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < V; i++) max = Math.max(max, logits[n * V + i]!);
    let sum = 0;
    for (let i = 0; i < V; i++) {
      const e = Math.exp(logits[n * V + i]! - max);
      probabilities[n * V + i] = e;
      sum += e;
    }
    for (let i = 0; i < V; i++) probabilities[n * V + i]! /= sum;
  }
  return {
    logits: { dtype: 'float32', shape: [R, V], data: logits },
    probabilities: { dtype: 'float64', shape: [R, V], data: probabilities },
  };
}

function inputOf(points: StorePoints, start: number, end: number): NtkInput {
  const shape = points.inputShape;
  const d = shape.reduce((a, b) => a * b, 1);
  return { data: points.x.subarray(start * d, end * d), shape: [end - start, ...shape] };
}

/** Throw InvalidArgumentError unless `shard` (if given) is i/n with 0 <= i < n <= N points. */
export function checkShard(shard: ShardSpec | undefined, N: number): void {
  if (!shard) return;
  if (
    !Number.isInteger(shard.index) ||
    !Number.isInteger(shard.count) ||
    shard.index < 0 ||
    shard.index >= shard.count
  ) {
    throw new InvalidArgumentError('shard', `${shard.index}/${shard.count}`, 'i/n with 0 <= i < n');
  }
  if (shard.count > N) {
    throw new InvalidArgumentError(
      'shard',
      `${shard.index}/${shard.count}`,
      `at most ${N} shards (one per point)`,
    );
  }
}

/** A kernel rule as the manifest records it (no undefined `note`). */
function manifestRule(r: NtkLayerRule): ManifestRule {
  const { name, className, rule, parameters, uses, note } = r;
  return { name, className, rule, parameters, uses, ...(note ? { note } : {}) };
}

/** The manifest fields of a store besides the kernel and shard (see ./manifest.ts). */
export type StoreDescription = Omit<KernelManifestInput, 'kernel' | 'shard'>;

/** The points of a store: inputs [N, ...inputShape] as fed to the model, labels [N] (-1: none). */
export interface StorePoints {
  x: Float32Array;
  y: Int32Array;
  inputShape: number[];
}

/** Kernel options shared by run stores and model stores. */
export type StoreKernelOptions = Pick<
  ComputeKernelStoresOptions,
  | 'kind'
  | 'implementation'
  | 'parameters'
  | 'accumulation'
  | 'contraction'
  | 'threads'
  | 'blockSize'
  | 'format'
  | 'shard'
  | 'maxInMemoryBytes'
  | 'progress'
  | 'available'
  | 'overwrite'
  | 'logits'
>;

/**
 * Refuse a store that cannot be written before computing it: its files must fit in the free space
 * of the target file system, and a kernel held in memory (not streamed) in memory.
 */
async function checkStoreFits(
  storeDir: string,
  spec: string,
  shape: number[],
  dtype: string,
  kernelBytes: number,
  o: { inMemory: boolean; otherBytes: number; available: StoreKernelOptions['available'] },
): Promise<void> {
  const kernel = `the kernel store (kernel ${shape.join('×')} ${dtype}, inputs, logits and probabilities; --trace or --diagonal store less)`;
  const disk = o.available?.disk ?? (await freeDiskBytes(storeDir));
  assertFits({
    what: kernel,
    bytes: kernelBytes + o.otherBytes,
    available: disk,
    where: `free space on the file system of ${storeDir}`,
    argument: 'points',
    received: spec,
  });
  if (o.inMemory) {
    assertFits({
      what: `the in-memory kernel (${shape.join('×')} ${dtype})`,
      bytes: kernelBytes,
      available: o.available?.memory ?? memoryBudget(),
      argument: 'points',
      received: spec,
    });
  }
}

/**
 * Compute the kernel of `model` over `points` (whole, or the block rows of `options.shard`) with
 * its logits and probabilities, and write the store to `storeDir` (a shard: to
 * `shardDir(storeDir, i, n)`). `base.model.numOutputs` is taken from the kernel plan. The caller
 * owns (and disposes) the model; `t0` is when the caller started (for the `checkpointTotal` timing).
 */
export async function computeStore(
  model: tf.LayersModel,
  points: StorePoints,
  base: StoreDescription,
  storeDir: string,
  options: StoreKernelOptions,
  t0 = performance.now(),
  session?: StoreSession,
): Promise<ComputedStore> {
  const kind = options.kind ?? 'full';
  const shard = options.shard;
  const N = base.points.count;
  const { rowStart, rowEnd } = shard ? shardRows(N, shard) : { rowStart: 0, rowEnd: N };
  const R = rowEnd - rowStart;
  const maxInMemory = options.maxInMemoryBytes ?? DEFAULT_MAX_IN_MEMORY;
  const ntk = empiricalNtkFn(model, {
    output: kind,
    implementation: options.implementation,
    parameters: options.parameters,
    accumulation: options.accumulation,
    contraction: options.contraction,
    threads: options.threads,
    blockSize: options.blockSize,
    progress: options.progress,
    logits: options.logits,
  });
  try {
    const V = ntk.plan.numOutputs;
    const dtype = options.accumulation === 'float64' ? 'float64' : 'float32';
    const elementSize = dtype === 'float64' ? 8 : 4;
    const all = inputOf(points, 0, N);
    const rows = inputOf(points, rowStart, rowEnd);
    const shape = kind === 'full' ? [R * V, N * V] : kind === 'diagonal' ? [R, V, V] : [R, N];
    const bytes = shape.reduce((a, b) => a * b, 1) * elementSize;
    await checkStoreFits(storeDir, base.points.spec ?? base.points.name, shape, dtype, bytes, {
      inMemory: kind === 'diagonal' || bytes <= maxInMemory,
      // inputs (float32), labels (int32), logits (float32), probabilities (float64)
      otherBytes: R * (points.inputShape.reduce((a, b) => a * b, 1) * 4 + 4 + V * 12),
      available: options.available,
    });

    // The kernel: in memory (symmetric case computes one triangle), or streamed in row panels.
    let summary: NtkStreamSummary | NtkResult | undefined;
    let kernelData: Float32Array | Float64Array | ArrayProducer;
    if (kind === 'diagonal' || bytes <= maxInMemory) {
      const out = kind === 'diagonal' ? undefined : session?.kernel;
      if (out) storeTestHooks.reusedKernels++;
      const result =
        kind === 'diagonal' ? await ntk(rows) : await ntk(shard ? rows : all, shard ? all : null, { out });
      summary = result;
      kernelData = result.data;
    } else {
      kernelData = async (write) => {
        summary = await ntk.stream(rows, shard ? all : null, async (block: NtkBlock) => write(block.data), {
          order: 'rows',
        });
      };
    }
    const tForward = performance.now();
    const { logits, probabilities } = logitsAndProbabilities(
      model,
      points.x,
      points.inputShape,
      rowStart,
      rowEnd,
      options.logits,
    );
    const forwardMs = performance.now() - tForward;
    const d = points.inputShape.reduce((a, b) => a * b, 1);
    const kernelInfo: KernelManifestInput['kernel'] = {
      kind,
      implementation: ntk.plan.implementation,
      accumulation: options.accumulation ?? 'float32',
      parameters: options.parameters ?? 'all',
      layers: ntk.plan.layers,
      rules: ntk.plan.rules.map(manifestRule),
      parameterCount: ntk.plan.parameterCount,
      backend: tf.getBackend(),
      threads: 1,
      blockSize: null,
      timings: {},
    };
    const manifest: KernelManifestInput = {
      ...base,
      model: { ...base.model, numOutputs: V },
      kernel: kernelInfo,
      shard: shard ? { index: shard.index, count: shard.count, rowStart, rowEnd } : null,
    };
    const dir = shard ? shardDir(storeDir, shard.index, shard.count) : storeDir;
    const tWrite = performance.now();
    // Called again after the arrays are written: a streamed kernel's summary is known by then.
    const finalManifest = (): KernelManifestInput =>
      summary
        ? {
            ...manifest,
            kernel: {
              ...kernelInfo,
              implementation: summary.implementation,
              rules: summary.rules.map(manifestRule),
              ...(summary.contraction ? { contraction: summary.contraction } : {}),
              ...(summary.flops !== undefined ? { flops: summary.flops } : {}),
              layers: summary.layers,
              parameterCount: summary.parameterCount,
              threads: summary.threads,
              workerFactorBlocks: summary.workerFactorBlocks,
              blockSize: summary.blockSize,
              timings: {
                ...summary.timings,
                forward: forwardMs,
                write: performance.now() - tWrite,
                checkpointTotal: performance.now() - t0,
              },
            },
          }
        : manifest;
    const written = await writeKernelStore(dir, {
      format: options.format,
      overwrite: options.overwrite,
      manifest: finalManifest,
      arrays: {
        kernel: { dtype, shape, data: kernelData },
        inputs: {
          dtype: 'float32',
          shape: [R, ...points.inputShape],
          data: points.x.slice(rowStart * d, rowEnd * d),
        },
        labels: { dtype: 'int32', shape: [R], data: points.y.slice(rowStart, rowEnd) },
        logits,
        probabilities,
      },
    });
    if (session && kind !== 'diagonal' && ArrayBuffer.isView(kernelData)) session.kernel = kernelData;
    return { dir, manifest: written, rules: ntk.plan.rules };
  } finally {
    await ntk.dispose({ workers: !session });
  }
}

/**
 * The manifest fields of a store of `model`, a checkpoint of `run` (or a model finetuned from it),
 * over `points` (inputs of shape `inputShape`): run, model summary, checkpoint. `model.numOutputs`
 * is 0 (computeStore fills it in from the kernel plan).
 */
export function runStoreDescription(
  run: Run,
  model: tf.LayersModel,
  checkpoint: CheckpointInfo,
  points: StoreDescription['points'],
  inputShape: readonly number[],
): StoreDescription {
  return {
    source: { kind: 'run' },
    run: {
      dir: run.dir,
      data: run.config.data,
      dataOptions: run.config.dataOptions as Record<string, unknown>,
      split: { seed: run.config.split.seed, testFraction: run.config.split.testFraction },
      standardized: run.config.standardize,
    },
    model: {
      spec: run.config.model as unknown as Record<string, unknown>,
      preset: run.config.modelPreset,
      layers: summarizeModel(model),
      parameterCount: countParameters(model),
      inputShape: [...inputShape],
      numOutputs: 0, // filled in from the kernel plan
      classNames: [...run.split.classNames],
    },
    checkpoint: {
      id: checkpoint.id,
      step: checkpoint.step,
      epoch: checkpoint.epoch,
      metrics: (checkpoint.metrics as unknown as Record<string, number>) ?? null,
    },
    points,
  };
}

/**
 * Compute and write kernel stores: for every selected checkpoint, `<out>/<name>/<checkpoint>/`
 * (or, with `shard`, `<out>/<name>/<checkpoint>.shards/shard-i-of-n/` holding its block rows).
 * Returns the stores written, in checkpoint order.
 */
export async function computeKernelStores(options: ComputeKernelStoresOptions): Promise<ComputedStore[]> {
  const run = typeof options.run === 'string' ? await openRun(options.run) : options.run;
  const kind = options.kind ?? 'full';
  if (!['full', 'diagonal', 'trace'].includes(kind)) {
    throw new InvalidArgumentError('kind', kind, 'full, diagonal or trace');
  }
  const name = options.name ?? defaultPointSetName(options.points);
  if (!/^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(name) || name.endsWith('.shards')) {
    throw new InvalidArgumentError('name', name, 'a directory name of letters, digits, ".", "_" and "-"');
  }
  const points = await resolvePoints(run, options.points, { seed: options.seed, name });
  const N = points.dataset.ids.length;
  const shard = options.shard;
  checkShard(shard, N);
  const root = options.out ?? path.join(run.dir, 'kernels');
  const checkpoints = selectCheckpoints(run, options.checkpoint ?? 'last');
  // Refuse before computing anything: every target must be new, or a store to --overwrite.
  for (const checkpoint of checkpoints) {
    const storeDir = path.join(root, name, checkpoint.id);
    await checkStoreOutput(shard ? shardDir(storeDir, shard.index, shard.count) : storeDir, options);
  }
  const results: ComputedStore[] = [];
  // One kernel array and one pool of workers for every checkpoint (each store is written before the
  // next kernel is computed).
  const session: StoreSession = {};
  try {
    for (const checkpoint of checkpoints) {
      const t0 = performance.now();
      const model = await run.loadModel(checkpoint.id);
      try {
        const base = runStoreDescription(
          run,
          model,
          checkpoint,
          {
            name,
            spec: options.points,
            seed: points.seed,
            count: N,
            ids: [...points.dataset.ids],
            sources: [...points.sources],
          },
          points.dataset.inputShape,
        );
        const storeDir = path.join(root, name, checkpoint.id);
        results.push(
          await computeStore(model, points.dataset, base, storeDir, { ...options, kind, shard }, t0, session),
        );
      } finally {
        model.dispose();
      }
    }
  } finally {
    await terminateNtkWorkers();
  }
  return results;
}
