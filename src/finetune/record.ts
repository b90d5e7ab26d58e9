/**
 * The finetune recorder: from a checkpoint of a run (or a user's tfjs layers model), plain SGD (no momentum, no weight decay) on
 * the mean cross-entropy of a finetune set — one example repeated, the full batch, or seeded
 * minibatches — with η > 0 (descent) or η < 0 (ascent, unlearning), recording the log-probability
 * of every label at every tracked point (the finetune set, then an observation set) every k steps,
 * with the loss and the parameter distance ‖θ − θ₀‖. The eNTK blocks the predictors need are
 * computed at the checkpoint and, optionally, every r steps along the run (refreshed kernels and
 * kernel-drift curves).
 *
 * One step (docs/theory.md#one-sgd-step): θ ← θ − η ∇_θ (1/|B|) Σ_{u∈B} −log π(y_u | x_u), in inference mode
 * (dropout off), float32 as the model is.
 *
 * Recording layout, `<run>/finetune/<name>/` (a run's checkpoint) or `out` (a user's model; written
 * atomically as a whole directory):
 * ```
 * manifest.json                 FinetuneManifest (format 'entk-finetune', version 3): where the model
 *                               came from (`source`: a run's checkpoint, or a model file identified
 *                               by sha256), options, the points (ids, labels), recorded steps, the
 *                               batch schedule, the array files with shapes, dtypes and sha256,
 *                               kernel steps and drift
 * logprobs.npy                  float64 [T, P, V]  log π at the recorded steps; P = N finetune + M
 *                               observation points, finetune points first
 * loss.npy                      float64 [T]        mean cross-entropy over the finetune set
 * param-distance.npy            float64 [T]        ‖θ − θ₀‖₂ over the finetuned parameters
 * kernels/step-XXXXXX/          a kernel store (src/kernel-store/store.ts; kind 'full', float32)
 *                               over the P tracked points at that SGD step: K(u, u′), K(o, u),
 *                               K(u, o) = K(o, u)ᵀ and K(o, o), with the logits there; its
 *                               manifest's `finetune` names the recording and the step
 * predictions/, comparison.json  written later by `entk predict` / `entk compare` (src/compare)
 * ```
 *
 * Versions: 3 added `source` (and `run`/`checkpoint` null for a model); version 2 recordings (a
 * run's checkpoint, no `source`) are read as `source: { kind: 'run' }`.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ENTK_VERSION } from '../backend/index.js';
import { type BatchSchedule, logSoftmaxRow, type Trajectory } from '../dynamics/index.js';
import { loadUserModel, resolveModelJson } from '../embed/index.js';
import { assertArgument, CorruptFileError, InvalidArgumentError } from '../errors.js';
import { type NdArray, readNpy, writeNpy } from '../io/index.js';
import {
  analyzeModel,
  checkTokenIds,
  empiricalNtkFn,
  type NtkImplementation,
  type NtkParameters,
  type NtkPlan,
} from '../kernel/index.js';
import {
  hashModelFiles,
  type KernelStore,
  type KernelStoreSource,
  loadModelPoints,
  logitsAndProbabilities,
  modelStoreSource,
  type PointSource,
  readKernelStore,
  resolvePoints,
  runStoreDescription,
  type StoreDescription,
  userModelDescription,
  writeKernelStore,
} from '../kernel-store/index.js';
import { disposeModel } from '../model/index.js';
import { checkpointId, meanCrossEntropy, openRun, type Run, runPaths } from '../train/index.js';
import {
  assertFits,
  checkOutputDir,
  kernelDrift,
  memoryBudget,
  type OutputKind,
  progressBar,
  Rng,
  resolveInside,
  writeJsonAtomic,
  writeOutputDir,
} from '../util/index.js';

export const FINETUNE_FORMAT = 'entk-finetune';
export const FINETUNE_VERSION = 3;
/** The recording versions {@link readFinetuneManifest} reads (2: before `source`). */
export const FINETUNE_READ_VERSIONS: readonly number[] = [2, 3];
export const FINETUNE_MANIFEST = 'manifest.json';

/** How the finetune set is fed: all of it every step, seeded minibatches, or its single example. */
export type FinetuneMode = 'full' | 'minibatch' | 'single';
export const FINETUNE_MODES: readonly FinetuneMode[] = ['full', 'minibatch', 'single'];

export interface FinetuneOptions {
  /** The run directory, or an opened run (or, instead, `model`). */
  run?: string | Run;
  /**
   * Instead of `run`: a tfjs layers model, a model.json file or its directory (e.g. written by
   * `saveModel`); its files are read, never written. Needs `out`.
   */
  model?: string;
  /** With `model`: the recording directory. (A run's recordings are `<run>/finetune/<name>/`.) */
  out?: string;
  /** With `run`: the checkpoint to start from: 'last' (default), 'first', a step or an id. */
  checkpoint?: string;
  /**
   * Recording name (letters, digits, . _ -): with `run` required, the directory
   * `<run>/finetune/<name>/`; with `model` the default is the name of `out`.
   */
  name?: string;
  /**
   * The finetune set. With `run`: a point spec (src/kernel-store/points.ts), e.g.
   * 'train:per-class=2'. With `model`: `file:<points.csv|.jsonl>` with a label column (see
   * `labelColumn`; inputs as the model takes them, src/kernel-store/model.ts).
   */
  points: string;
  /**
   * The observation set (tracked, never trained on), a point spec as `points`; with `model` also
   * `npy:<inputs.npy>`, and labels are optional. Default: none.
   */
  observe?: string;
  /** With `model`: the label column of CSV/JSONL points files. Default 'label'. */
  labelColumn?: string;
  /** 'full' (default), 'minibatch' (needs batchSize) or 'single' (the finetune set is one example). */
  mode?: FinetuneMode;
  /** Minibatch size for mode 'minibatch'. */
  batchSize?: number;
  /** η: finite, non-zero; negative is gradient ascent. */
  learningRate: number;
  /** Number of SGD steps (≥ 1). */
  steps: number;
  /** Record every k steps (and always at step 0 and the last step). Default 1. */
  recordEvery?: number;
  /** Recompute the kernel every r steps (0 = only at the checkpoint). Default 0. */
  refreshEvery?: number;
  /** Seed of sampled point specs and of the minibatch order. Default 0. */
  seed?: number;
  /**
   * Which parameters are finetuned — every other weight stays frozen — and so which eNTK the
   * recording holds (the kernel of the trained parameters is the one the dynamics follow,
   * docs/theory.md §2): 'all' (default), 'head' (the last layer with trainable weights) or layer
   * names, a name ending in '/' selecting every layer it prefixes (e.g. ['block1/', 'head'] for
   * the last block and the head of entk's 2-block transformer). As `parameters` of `empiricalNtkFn`.
   */
  parameters?: NtkParameters;
  /** eNTK implementation. Default 'auto'. */
  implementation?: NtkImplementation;
  /** eNTK worker threads. Default 1. */
  threads?: number | 'auto';
  /** Replace an existing recording of that name (nothing else is ever replaced). Default false. */
  overwrite?: boolean;
}

/** Finetune recordings as output directories (src/util/output.ts): marked by their manifest. */
export const FINETUNE_OUTPUT: OutputKind = {
  name: 'finetune recording',
  marker: FINETUNE_MANIFEST,
  format: FINETUNE_FORMAT,
};

/** An array file listed in a manifest. */
export interface FinetuneArrayFile {
  file: string;
  shape: number[];
  dtype: 'float32' | 'float64';
  sha256: string;
}

/** The kernel store recorded at one step, with the drift from the checkpoint's kernel. */
export interface FinetuneKernelEntry {
  step: number;
  /** The kernel store directory, relative to the recording (`kernels/step-XXXXXX`). */
  store: string;
  /**
   * Relative change and kernel distance vs step 0 (null at step 0), as `kernelDrift` of
   * src/util/stats.ts: the finetune block K(u, u′), and it with the observation block K(o, u).
   */
  drift: {
    train: { relativeChange: number; distance: number };
    all: { relativeChange: number; distance: number };
  } | null;
}

/** `manifest.json` of a recording (a version 2 file is read with `source: { kind: 'run' }`). */
export interface FinetuneManifest {
  format: typeof FINETUNE_FORMAT;
  /** The version of the file (written: {@link FINETUNE_VERSION}). */
  version: number;
  entkVersion: string;
  createdAt: string;
  /**
   * Where the model came from: a run's checkpoint (`run`, `checkpoint`), or a user's tfjs layers
   * model identified by the sha256 of its files (as a kernel store's `source`).
   */
  source: KernelStoreSource;
  /** The run directory as given (null for a model). */
  run: string | null;
  /** The checkpoint finetuned (null for a model). */
  checkpoint: { id: string; step: number } | null;
  name: string;
  numClasses: number;
  classNames: string[];
  learningRate: number;
  mode: FinetuneMode;
  batchSize: number | null;
  steps: number;
  recordEvery: number;
  refreshEvery: number;
  seed: number;
  finetune: { spec: string; ids: string[]; labels: number[] };
  observe: { spec: string | null; ids: string[]; labels: number[] };
  recordedSteps: number[];
  /** The batch of every step: full batch, or the explicit sequence (indices into the finetune set). */
  schedule: BatchSchedule;
  arrays: { logProbs: FinetuneArrayFile; loss: FinetuneArrayFile; paramDistance: FinetuneArrayFile };
  kernels: FinetuneKernelEntry[];
  /**
   * The eNTK's implementation and the parameters finetuned (and covered by the kernels): the subset
   * as given (`parameters`; absent in recordings before it existed = 'all'), its layers and count.
   */
  ntk: { implementation: string; parameters?: NtkParameters; parameterCount: number; layers: string[] };
  seconds: { sgd: number; kernels: number; total: number };
}

export interface FinetuneResult {
  dir: string;
  manifest: FinetuneManifest;
}

/** The kernel computed at one step, in memory until the recording is written. */
interface RecordedKernel {
  step: number;
  /** K(u, u′) [N·V, N·V]; K(o, u) [M·V, N·V]; K(o, o′) [M·V, M·V] (null when M = 0). */
  train: Float32Array;
  observe: Float32Array | null;
  observeObserve: Float32Array | null;
  threads: number;
  blockSize: number;
  logits: NdArray;
  probabilities: NdArray;
}

/**
 * The full kernel [P·V, P·V] over the tracked points (finetune points first) from its blocks:
 * K(u, o) is K(o, u)ᵀ, i.e. entry (u·V + i, o·V + j) = K(o, u)[o·V + j, u·V + i].
 */
function assembleKernel(k: RecordedKernel, N: number, M: number, V: number): Float32Array {
  const NV = N * V;
  const MV = M * V;
  const PV = NV + MV;
  const out = new Float32Array(PV * PV);
  for (let r = 0; r < NV; r++) {
    out.set(k.train.subarray(r * NV, (r + 1) * NV), r * PV);
    for (let c = 0; c < MV; c++) out[r * PV + NV + c] = k.observe![c * NV + r]!;
  }
  for (let r = 0; r < MV; r++) {
    out.set(k.observe!.subarray(r * NV, (r + 1) * NV), (NV + r) * PV);
    out.set(k.observeObserve!.subarray(r * MV, (r + 1) * MV), (NV + r) * PV + NV);
  }
  return out;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** `<run>/finetune/<name>`. */
export function finetuneDir(runDir: string, name: string): string {
  assertArgument(
    typeof name === 'string' && NAME.test(name),
    'name',
    name,
    'a recording name of letters, digits, . _ - (≤ 100)',
  );
  return path.join(runPaths(runDir).finetune, name);
}

/** Batches of an epoch-wise seeded shuffle of N points into batches of `b` (last one may be smaller). */
export function minibatchSchedule(N: number, batchSize: number, steps: number, seed: number): number[][] {
  const batches: number[][] = [];
  for (let epoch = 0; batches.length < steps; epoch++) {
    const order = new Rng(seed)
      .fork(`finetune-order/epoch-${epoch}`)
      .shuffle(Array.from({ length: N }, (_, i) => i));
    for (let s = 0; s < N && batches.length < steps; s += batchSize)
      batches.push(order.slice(s, s + batchSize));
  }
  return batches;
}

/** Points as the recorder uses them: ids, inputs [n, ...inputShape] as the model takes them, labels (−1: none). */
interface RecorderPoints {
  ids: string[];
  x: Float32Array;
  y: Int32Array;
  sources: PointSource[];
}

/** The model to finetune (a run's checkpoint or a user's model file) and its points. */
interface FinetuneSource {
  /** The recording directory and its name. */
  dir: string;
  name: string;
  classNames: string[];
  inputShape: number[];
  train: RecorderPoints;
  observe: RecorderPoints | null;
  /** What the manifest says about the model's origin. */
  origin: Pick<FinetuneManifest, 'source' | 'run' | 'checkpoint'>;
  /** The model, already loaded (a user's model) or null until {@link FinetuneSource.load}. */
  model: tf.LayersModel | null;
  load: () => Promise<tf.LayersModel>;
  /** The description every recorded kernel store carries (its points: the tracked points). */
  describe: (model: tf.LayersModel, points: StoreDescription['points']) => StoreDescription;
}

function concatPoints(a: RecorderPoints, b: RecorderPoints | null): Float32Array {
  if (!b) return a.x;
  const x = new Float32Array(a.x.length + b.x.length);
  x.set(a.x, 0);
  x.set(b.x, a.x.length);
  return x;
}

/** A run's checkpoint and point specs against its data. */
async function runSource(options: FinetuneOptions, seed: number): Promise<FinetuneSource> {
  for (const key of ['out', 'labelColumn'] as const) {
    if (options[key] !== undefined) {
      throw new InvalidArgumentError(key, options[key], 'nothing with run (it applies to model)');
    }
  }
  const run = typeof options.run === 'string' ? await openRun(options.run) : options.run!;
  const name = options.name!;
  const dir = finetuneDir(run.dir, name);
  await checkOutputDir(dir, { argument: 'name', kind: FINETUNE_OUTPUT, overwrite: options.overwrite });
  const ckpt = run.resolveCheckpoint(options.checkpoint ?? 'last');
  const points = async (spec: string): Promise<RecorderPoints> => {
    const set = await resolvePoints(run, spec, { seed });
    return { ids: set.dataset.ids, x: set.dataset.x, y: set.dataset.y, sources: set.sources };
  };
  const train = await points(options.points);
  const observe = options.observe ? await points(options.observe) : null;
  return {
    dir,
    name,
    classNames: run.split.classNames,
    inputShape: run.train.inputShape,
    train,
    observe,
    origin: { source: { kind: 'run' }, run: run.dir, checkpoint: { id: ckpt.id, step: ckpt.step } },
    model: null,
    load: () => run.loadModel(ckpt.id),
    describe: (model, pts) => runStoreDescription(run, model, ckpt, pts, run.train.inputShape),
  };
}

/** A user's tfjs layers model and points files (inputs as the model takes them). */
async function modelSource(options: FinetuneOptions): Promise<FinetuneSource> {
  if (options.run !== undefined)
    throw new InvalidArgumentError('model', options.model, 'either run or model, not both');
  if (options.checkpoint !== undefined) {
    throw new InvalidArgumentError(
      'checkpoint',
      options.checkpoint,
      'nothing with model (it applies to run)',
    );
  }
  assertArgument(
    typeof options.out === 'string' && options.out !== '',
    'out',
    options.out,
    'a directory for the recording of model',
  );
  const dir = path.resolve(options.out);
  const name = options.name ?? path.basename(dir);
  assertArgument(NAME.test(name), 'name', name, 'a recording name of letters, digits, . _ - (≤ 100)');
  await checkOutputDir(dir, { argument: 'out', kind: FINETUNE_OUTPUT, overwrite: options.overwrite });
  const { model, report } = await loadUserModel(options.model!);
  try {
    const { inputShape, numOutputs: V, tokenIds } = analyzeModel(model, 'all');
    const points = async (spec: string, labelled: boolean): Promise<RecorderPoints> => {
      const p = await loadModelPoints(spec, inputShape, V, { labelColumn: options.labelColumn });
      checkTokenIds(p.x, inputShape, tokenIds, labelled ? 'points' : 'observe');
      if (labelled && !p.labelled) {
        throw new InvalidArgumentError(
          'points',
          spec,
          `a labelled points file (a '${options.labelColumn ?? 'label'}' column of class indices in [0, ${V}))`,
        );
      }
      return { ids: p.ids, x: p.x, y: p.y, sources: p.ids.map(() => 'file' as const) };
    };
    const train = await points(options.points, true);
    const observe = options.observe ? await points(options.observe, false) : null;
    const source = await modelStoreSource(report);
    const classNames = Array.from({ length: V }, (_, i) => String(i));
    return {
      dir,
      name,
      classNames,
      inputShape,
      train,
      observe,
      origin: { source, run: null, checkpoint: null },
      model,
      load: async () => model,
      describe: (m, pts) => ({ ...userModelDescription(source, m, report, inputShape, V), points: pts }),
    };
  } catch (error) {
    disposeModel(model); // (with a shared layer's weights)
    throw error;
  }
}

/**
 * Refuse a model that is not the one `manifest` was recorded with: the sha256 of its files
 * (model.json and the weight files) must equal the recording's `source.sha256`.
 */
export async function checkRecordingModel(manifest: FinetuneManifest, model: string): Promise<void> {
  if (manifest.source.kind !== 'model') {
    throw new InvalidArgumentError(
      'model',
      model,
      `nothing for recording ${manifest.name}: it finetuned a checkpoint of ${manifest.run}`,
    );
  }
  const { sha256 } = await hashModelFiles(await resolveModelJson(model));
  if (sha256 !== manifest.source.sha256) {
    throw new InvalidArgumentError(
      'model',
      model,
      `the model recording ${manifest.name} was made with (sha256 ${manifest.source.sha256.slice(0, 12)}… of ${manifest.source.files.map((f) => f.file).join(', ')}); these files hash to ${sha256.slice(0, 12)}… (changed since)`,
    );
  }
}

function validate(o: FinetuneOptions) {
  assertArgument(o != null && typeof o === 'object', 'options', o, 'a FinetuneOptions object');
  if (o.model === undefined) {
    assertArgument(o.run !== undefined, 'run', o.run, 'a run directory (or, instead, model)');
    finetuneDir('.', o.name as string); // checks the name
  }
  const mode = o.mode ?? 'full';
  assertArgument(FINETUNE_MODES.includes(mode), 'mode', mode, `one of ${FINETUNE_MODES.join(', ')}`);
  assertArgument(
    Number.isFinite(o.learningRate) && o.learningRate !== 0,
    'learningRate',
    o.learningRate,
    'a finite non-zero number (negative: gradient ascent)',
  );
  assertArgument(Number.isInteger(o.steps) && o.steps >= 1, 'steps', o.steps, 'an integer ≥ 1');
  const recordEvery = o.recordEvery ?? 1;
  assertArgument(
    Number.isInteger(recordEvery) && recordEvery >= 1,
    'recordEvery',
    recordEvery,
    'an integer ≥ 1',
  );
  const refreshEvery = o.refreshEvery ?? 0;
  assertArgument(
    Number.isInteger(refreshEvery) && refreshEvery >= 0,
    'refreshEvery',
    refreshEvery,
    'an integer ≥ 0',
  );
  const seed = o.seed ?? 0;
  assertArgument(Number.isSafeInteger(seed) && seed >= 0, 'seed', seed, 'a non-negative integer');
  if (mode === 'minibatch') {
    assertArgument(
      Number.isInteger(o.batchSize) && o.batchSize! >= 1,
      'batchSize',
      o.batchSize,
      "a positive integer for mode 'minibatch'",
    );
  } else {
    assertArgument(
      o.batchSize === undefined,
      'batchSize',
      o.batchSize,
      `nothing for mode '${mode}' (only 'minibatch' takes a batch size)`,
    );
  }
  return { mode, recordEvery, refreshEvery, seed };
}

/**
 * Refuse a finetune whose arrays do not fit in the memory budget (ENTK_MEMORY_BYTES, else the
 * machine's memory), before allocating any of them. Counted: R = ⌊steps / recordEvery⌋ + 1 (+1 for
 * a last step off the grid) recorded steps of P·V float64 log-probs (+ loss, distance and the step
 * list); K = 1 + ⌊steps / refreshEvery⌋ held kernels, each K(u, u′) (N·V)², K(o, u) (M·V)(N·V) and
 * K(o, o′) (M·V)² float32 plus the logits and probabilities P·V float32; for minibatches the
 * schedule (steps × batchSize indices); and the largest transient array, the assembled store
 * kernel (P·V)² float32 written per kernel step (assembleKernel), which is at least as large as one
 * kernel computation's output copied into the recorder.
 */
function finetuneMemoryBytes(s: {
  steps: number;
  batchSize?: number;
  mode: FinetuneMode;
  recordEvery: number;
  refreshEvery: number;
  N: number;
  M: number;
  V: number;
}): {
  bytes: number;
  recorded: number;
  kernels: number;
  perKernel: number;
  assembled: number;
  schedule: number;
} {
  const { steps, N, M, V } = s;
  const P = N + M;
  const recorded = Math.floor(steps / s.recordEvery) + 1 + (steps % s.recordEvery === 0 ? 0 : 1);
  const kernels = 1 + (s.refreshEvery > 0 ? Math.floor(steps / s.refreshEvery) : 0);
  const perKernel = ((N * V) ** 2 + M * V * N * V + (M * V) ** 2 + 2 * P * V) * 4;
  const assembled = (P * V) ** 2 * 4;
  const schedule = s.mode === 'minibatch' ? steps * (s.batchSize ?? 1) * 8 : 0;
  const bytes = kernels * perKernel + recorded * (P * V * 8 + 3 * 8) + schedule + assembled;
  return { bytes, recorded, kernels, perKernel, assembled, schedule };
}

function checkFinetuneMemory(
  options: FinetuneOptions,
  s: { mode: FinetuneMode; recordEvery: number; refreshEvery: number; N: number; M: number; V: number },
): void {
  const { steps } = options;
  const { N, M, V } = s;
  const P = N + M;
  const need = finetuneMemoryBytes({ ...s, steps, batchSize: options.batchSize });
  const available = memoryBudget();
  const what =
    `the finetune recording (${need.recorded} recorded steps × ${P} points × ${V} classes × 8 B` +
    `, ${need.kernels} kernel(s) of (${N}+${M} points × ${V} classes)² float32 with K(o, o′)` +
    `, the assembled ${P * V}×${P * V} store kernel` +
    (need.schedule > 0 ? `, a schedule of ${steps}×${options.batchSize} indices` : '') +
    '; raise recordEvery / refreshEvery, lower steps or the observed points, or raise ENTK_MEMORY_BYTES)';
  // Fewer steps cannot help when one kernel (and its store) alone is too large: name the observed points.
  const oneKernel = need.perKernel + need.assembled + 2 * (P * V * 8 + 24);
  const tooManyPoints = oneKernel > available;
  assertFits({
    what,
    bytes: need.bytes,
    available,
    where: process.env.ENTK_MEMORY_BYTES ? 'memory (the budget ENTK_MEMORY_BYTES)' : 'memory',
    argument: tooManyPoints ? 'observe' : 'steps',
    received: tooManyPoints ? `${M} observed points (and ${N} finetune points)` : steps,
  });
}

/**
 * Run a recorded finetune from a run's checkpoint (written to `<run>/finetune/<name>/`) or from a
 * user's tfjs layers model (written to `out`).
 *
 * @example
 *   await finetune({ run: 'runs/digits', name: 'unlearn-3', points: 'ids:digits-0003',
 *     observe: 'test:50', mode: 'single', learningRate: -0.05, steps: 100 });
 *   await finetune({ model: 'my-model/model.json', points: 'file:train.csv', observe: 'file:watch.csv',
 *     out: 'recordings/mine', learningRate: 0.05, steps: 100 });
 */
export async function finetune(options: FinetuneOptions): Promise<FinetuneResult> {
  const { mode, recordEvery, refreshEvery, seed } = validate(options);
  const started = performance.now();
  const src = options.model !== undefined ? await modelSource(options) : await runSource(options, seed);
  let model = src.model;
  try {
    return await record(options, src, { mode, recordEvery, refreshEvery, seed, started }, async () => {
      model ??= await src.load();
      return model;
    });
  } finally {
    if (model) disposeModel(model);
  }
}

/** The recorder proper: SGD on the source's model, recording, and writing the recording. */
async function record(
  options: FinetuneOptions,
  src: FinetuneSource,
  s: { mode: FinetuneMode; recordEvery: number; refreshEvery: number; seed: number; started: number },
  loadModel: () => Promise<tf.LayersModel>,
): Promise<FinetuneResult> {
  const { mode, recordEvery, refreshEvery, seed, started } = s;
  const { dir, train: ftSet, observe: obsSet } = src;
  const output = {
    argument: options.model !== undefined ? 'out' : 'name',
    kind: FINETUNE_OUTPUT,
    overwrite: options.overwrite,
  };
  const N = ftSet.ids.length;
  const M = obsSet ? obsSet.ids.length : 0;
  if (mode === 'single' && N !== 1) {
    throw new InvalidArgumentError(
      'points',
      options.points,
      `exactly one example for mode 'single' (got ${N}; e.g. ids:<id>)`,
    );
  }
  if (obsSet) {
    const ft = new Set(ftSet.ids);
    const dup = obsSet.ids.find((id) => ft.has(id));
    if (dup !== undefined) {
      throw new InvalidArgumentError(
        'observe',
        options.observe,
        `points outside the finetune set (${dup} is in both)`,
      );
    }
  }
  const V = src.classNames.length;
  const inputShape = src.inputShape;
  const P = N + M;
  const tracked = { x: concatPoints(ftSet, obsSet) };
  const labels = Array.from(ftSet.y);

  checkFinetuneMemory(options, { mode, recordEvery, refreshEvery, N, M, V });
  const schedule: BatchSchedule =
    mode === 'minibatch'
      ? { kind: 'sequence', batches: minibatchSchedule(N, options.batchSize!, options.steps, seed) }
      : { kind: 'full' };

  const recordedSteps: number[] = [];
  for (let n = 0; n <= options.steps; n += recordEvery) recordedSteps.push(n);
  if (recordedSteps[recordedSteps.length - 1] !== options.steps) recordedSteps.push(options.steps);
  const kernelSteps: number[] = [0];
  if (refreshEvery > 0) for (let n = refreshEvery; n <= options.steps; n += refreshEvery) kernelSteps.push(n);

  const logProbs = new Float64Array(recordedSteps.length * P * V);
  const loss = new Float64Array(recordedSteps.length);
  const paramDistance = new Float64Array(recordedSteps.length);
  const kernels: RecordedKernel[] = [];
  let kernelMs = 0;
  const model = await loadModel();
  // What every recorded kernel store says about run (or model file), model and checkpoint
  // (finetuning changes the weights, not the layers).
  const storeBase = src.describe(model, {
    name: 'tracked',
    spec: null,
    seed,
    count: P,
    ids: [...ftSet.ids, ...(obsSet?.ids ?? [])],
    sources: [...ftSet.sources, ...(obsSet?.sources ?? [])],
  });
  // Everything created from here on is released in the finally, also when setting up fails.
  const held: tf.Tensor[] = [];
  let ntkPlan!: NtkPlan;
  const bar = progressBar(`finetune ${src.name}`, options.steps);
  try {
    const parameters = options.parameters ?? 'all';
    const ntk = empiricalNtkFn(model, {
      output: 'full',
      parameters,
      implementation: options.implementation ?? 'auto',
      threads: options.threads ?? 1,
      progress: false,
    });
    ntkPlan = ntk.plan;
    // SGD moves only the chosen parameters (the ones the kernel covers); the rest stay frozen.
    const vars = analyzeModel(model, parameters).variables.map((w) => w.read() as tf.Variable);
    const hold = <T extends tf.Tensor>(t: T): T => {
      held.push(t);
      return t;
    };
    const theta0 = vars.map((v) => hold(tf.clone(v)));
    const xTracked = hold(tf.tensor(tracked.x, [P, ...inputShape]));
    const xFinetune = hold(tf.tensor(ftSet.x, [N, ...inputShape]));
    const onehot = hold(tf.tidy(() => tf.oneHot(tf.tensor1d(ftSet.y, 'int32'), V).toFloat()));
    const record = (k: number) => {
      const logits = tf.tidy(
        () => (model.apply(xTracked, { training: false }) as tf.Tensor).dataSync() as Float32Array,
      );
      const o = k * P * V;
      for (let p = 0; p < P; p++) logSoftmaxRow(logits, p, V, logProbs, k * P + p);
      let l = 0;
      for (let u = 0; u < N; u++) l -= logProbs[o + u * V + labels[u]!]!;
      loss[k] = l / N;
      paramDistance[k] = tf.tidy(() => {
        let acc = tf.scalar(0);
        vars.forEach((v, i) => {
          acc = acc.add(v.sub(theta0[i]!).square().sum());
        });
        return Math.sqrt(acc.dataSync()[0]!);
      });
    };
    const kernelAt = async (step: number) => {
      const t = performance.now();
      const kt = await ntk({ data: ftSet.x, shape: [N, ...inputShape] });
      const ko = obsSet
        ? await ntk(
            { data: obsSet.x, shape: [M, ...inputShape] },
            { data: ftSet.x, shape: [N, ...inputShape] },
          )
        : null;
      // K(o, o′): only for the store (the predictors use K(u, u′) and K(o, u))
      const kOO = obsSet ? await ntk({ data: obsSet.x, shape: [M, ...inputShape] }) : null;
      kernels.push({
        step,
        train: Float32Array.from(kt.data),
        observe: ko ? Float32Array.from(ko.data) : null,
        observeObserve: kOO ? Float32Array.from(kOO.data) : null,
        threads: kt.threads,
        blockSize: kt.blockSize,
        ...logitsAndProbabilities(model, tracked.x, inputShape, 0, P),
      });
      kernelMs += performance.now() - t;
    };
    let k = 0;
    record(k++);
    await kernelAt(0);
    let kernelIndex = 1;
    for (let n = 0; n < options.steps; n++) {
      tf.tidy(() => {
        // full batch: the whole finetune set in order, no gather needed
        const idx = schedule.kind === 'full' ? null : tf.tensor1d(schedule.batches[n]!, 'int32');
        const xb = idx ? tf.gather(xFinetune, idx) : xFinetune;
        const yb = idx ? tf.gather(onehot, idx) : onehot;
        const { grads } = tf.variableGrads(
          () => meanCrossEntropy(yb, model.apply(xb, { training: false }) as tf.Tensor),
          vars,
        );
        for (const v of vars) {
          const g = grads[v.name];
          if (g) v.assign(tf.sub(v, tf.mul(g, options.learningRate)));
        }
      });
      const step = n + 1;
      if (recordedSteps[k] === step) record(k++);
      if (kernelSteps[kernelIndex] === step) {
        await kernelAt(step);
        kernelIndex++;
      }
      bar.tick(1);
    }
  } finally {
    bar.done();
    tf.dispose(held);
  }

  const k0 = kernels[0]!;

  const createdAt = new Date().toISOString();
  let manifest: FinetuneManifest | undefined;
  await writeOutputDir(dir, output, async (tmp) => {
    const file = async (
      name: string,
      dtype: 'float32' | 'float64',
      shape: number[],
      data: Float32Array | Float64Array,
    ) => {
      const written = await writeNpy(path.join(tmp, name), { dtype, shape, data } as Parameters<
        typeof writeNpy
      >[1]);
      return { file: name, shape, dtype, sha256: written.sha256 } satisfies FinetuneArrayFile;
    };
    await fs.mkdir(path.join(tmp, 'kernels'));
    const kernelEntries: FinetuneKernelEntry[] = [];
    const trackedLabels = Int32Array.from([...labels, ...(obsSet ? Array.from(obsSet.y) : [])]);
    for (const kt of kernels) {
      const store = `kernels/${checkpointId(kt.step)}`;
      await writeKernelStore(path.join(tmp, store), {
        manifest: {
          ...storeBase,
          model: { ...storeBase.model, numOutputs: V },
          finetune: { recording: src.name, step: kt.step },
          kernel: {
            kind: 'full',
            implementation: ntkPlan.implementation,
            accumulation: 'float32',
            parameters: options.parameters ?? 'all',
            layers: ntkPlan.layers,
            parameterCount: ntkPlan.parameterCount,
            backend: tf.getBackend(),
            threads: kt.threads,
            blockSize: kt.blockSize,
            timings: {},
          },
          shard: null,
          createdAt,
        },
        arrays: {
          kernel: { dtype: 'float32', shape: [P * V, P * V], data: assembleKernel(kt, N, M, V) },
          inputs: { dtype: 'float32', shape: [P, ...inputShape], data: tracked.x },
          labels: { dtype: 'int32', shape: [P], data: trackedLabels },
          logits: kt.logits,
          probabilities: kt.probabilities,
        },
      });
      kernelEntries.push({
        step: kt.step,
        store,
        drift:
          kt.step === 0
            ? null
            : {
                train: kernelDrift(k0.train, kt.train),
                all: kernelDrift(
                  k0.observe ? [k0.train, k0.observe] : [k0.train],
                  kt.observe ? [kt.train, kt.observe] : [kt.train],
                ),
              },
      });
    }
    manifest = {
      format: FINETUNE_FORMAT,
      version: FINETUNE_VERSION,
      entkVersion: ENTK_VERSION,
      createdAt,
      ...src.origin,
      name: src.name,
      numClasses: V,
      classNames: src.classNames,
      learningRate: options.learningRate,
      mode,
      batchSize: mode === 'minibatch' ? options.batchSize! : null,
      steps: options.steps,
      recordEvery,
      refreshEvery,
      seed,
      finetune: { spec: options.points, ids: ftSet.ids, labels },
      observe: {
        spec: options.observe ?? null,
        ids: obsSet?.ids ?? [],
        labels: obsSet ? Array.from(obsSet.y) : [],
      },
      recordedSteps,
      schedule,
      arrays: {
        logProbs: await file('logprobs.npy', 'float64', [recordedSteps.length, P, V], logProbs),
        loss: await file('loss.npy', 'float64', [recordedSteps.length], loss),
        paramDistance: await file('param-distance.npy', 'float64', [recordedSteps.length], paramDistance),
      },
      kernels: kernelEntries,
      ntk: {
        implementation: ntkPlan.implementation,
        parameters: options.parameters ?? 'all',
        parameterCount: ntkPlan.parameterCount,
        layers: ntkPlan.layers,
      },
      seconds: {
        sgd: (performance.now() - started - kernelMs) / 1000,
        kernels: kernelMs / 1000,
        total: (performance.now() - started) / 1000,
      },
    };
    await writeJsonAtomic(path.join(tmp, FINETUNE_MANIFEST), manifest);
  });
  return { dir, manifest: manifest! };
}

/** A recording read back. */
export interface FinetuneRecording {
  dir: string;
  manifest: FinetuneManifest;
  /** N finetune points (the first N tracked points). */
  numTrain: number;
  /** M observation points. */
  numObserve: number;
  /** y_u of the finetune points. */
  labels: Int32Array;
  /** The recorded log-probabilities. */
  trajectory: Trajectory;
  loss: Float64Array;
  paramDistance: Float64Array;
}

async function readArrayFile(
  dir: string,
  entry: FinetuneArrayFile,
  what: string,
): Promise<Float32Array | Float64Array> {
  // Names relative to the recording (kernels/ holds the kernel blocks), never outside it.
  const file = resolveInside(dir, entry?.file, `${what} file`, path.join(dir, FINETUNE_MANIFEST), {
    basename: false,
  });
  const { sha256, dtype, shape } = entry;
  const arr = await readNpy(file, { sha256, dtype, shape }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT')
      throw new CorruptFileError(file, `missing (${what} listed in ${FINETUNE_MANIFEST})`);
    throw error;
  });
  return arr.data as Float32Array | Float64Array;
}

/** Read `manifest.json` of a recording directory (validated). */
export async function readFinetuneManifest(dir: string): Promise<FinetuneManifest> {
  const file = path.join(dir, FINETUNE_MANIFEST);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    throw new InvalidArgumentError(
      'recording',
      dir,
      `a finetune recording directory (no ${FINETUNE_MANIFEST}; run 'entk finetune')`,
    );
  }
  let m: FinetuneManifest;
  try {
    m = JSON.parse(text) as FinetuneManifest;
  } catch (error) {
    throw new CorruptFileError(file, `not valid JSON (${(error as Error).message})`);
  }
  if (m?.format !== FINETUNE_FORMAT)
    throw new CorruptFileError(file, `format is ${JSON.stringify(m?.format)}, expected "${FINETUNE_FORMAT}"`);
  if (!FINETUNE_READ_VERSIONS.includes(m.version)) {
    throw new CorruptFileError(
      file,
      `version ${m.version} is not supported (this entk reads versions ${FINETUNE_READ_VERSIONS.join(', ')}${m.version > FINETUNE_VERSION ? '; upgrade entk' : ''})`,
    );
  }
  // version 2: a run's checkpoint, before `source`
  if (m.version === 2) m = { ...m, source: { kind: 'run' } };
  const ok =
    Number.isInteger(m.numClasses) &&
    Array.isArray(m.recordedSteps) &&
    Array.isArray(m.finetune?.labels) &&
    Array.isArray(m.observe?.ids) &&
    Array.isArray(m.kernels) &&
    m.kernels.length > 0 &&
    m.kernels[0]!.step === 0 &&
    m.schedule != null &&
    Number.isFinite(m.learningRate) &&
    (m.source?.kind === 'run'
      ? typeof m.run === 'string' && m.checkpoint != null
      : m.source?.kind === 'model' && typeof m.source.sha256 === 'string' && Array.isArray(m.source.files));
  if (!ok)
    throw new CorruptFileError(
      file,
      'missing or malformed fields (numClasses, recordedSteps, finetune, observe, kernels, schedule, learningRate, source)',
    );
  return m;
}

/** Read a recording: manifest, recorded log-probabilities, loss and parameter distance (hashes verified). */
export async function readFinetuneRecording(dir: string): Promise<FinetuneRecording> {
  const manifest = await readFinetuneManifest(dir);
  const N = manifest.finetune.labels.length;
  const M = manifest.observe.ids.length;
  const logProbs = (await readArrayFile(dir, manifest.arrays.logProbs, 'logProbs')) as Float64Array;
  return {
    dir,
    manifest,
    numTrain: N,
    numObserve: M,
    labels: Int32Array.from(manifest.finetune.labels),
    trajectory: {
      numPoints: N + M,
      numClasses: manifest.numClasses,
      steps: manifest.recordedSteps,
      logProbs,
    },
    loss: (await readArrayFile(dir, manifest.arrays.loss, 'loss')) as Float64Array,
    paramDistance: (await readArrayFile(dir, manifest.arrays.paramDistance, 'paramDistance')) as Float64Array,
  };
}

/** The kernel store recorded at `step` (verified): the full kernel over the tracked points. */
export async function readRecordingKernel(
  recording: { dir: string; manifest: FinetuneManifest },
  step: number,
): Promise<KernelStore> {
  const entry = recording.manifest.kernels.find((k) => k.step === step);
  if (!entry) {
    throw new InvalidArgumentError(
      'step',
      step,
      `a kernel step of the recording (${recording.manifest.kernels.map((k) => k.step).join(', ')})`,
    );
  }
  // a path read from a file stays inside the recording
  if (typeof entry.store !== 'string' || !/^kernels\/step-[0-9]{6,}$/.test(entry.store)) {
    throw new CorruptFileError(
      path.join(recording.dir, FINETUNE_MANIFEST),
      `kernels[].store ${JSON.stringify(entry.store)} is not kernels/step-XXXXXX`,
    );
  }
  return readKernelStore(path.join(recording.dir, entry.store));
}
