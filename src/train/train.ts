/**
 * The training loop: seeded, deterministic, checkpointed and exactly resumable.
 *
 * One step = one optimiser update on the mean softmax cross-entropy of one minibatch:
 * plain SGD is `θ⁺ = θ − (η/|B|) Σ_{u∈B} ∇ℓ_u` (docs/theory.md#one-sgd-step). Epoch e visits the
 * training split in the order of a permutation drawn from `new Rng(seed).fork('minibatch-order/epoch-e')`
 * (full batch: the split's own order), in batches of `batchSize` (the last one may be smaller).
 * Because the order of step s depends only on (seed, s), and every checkpoint stores the weights,
 * the optimiser state (with its iteration count and Adam's running β powers) and the step, training
 * 2k steps straight and training k steps, stopping, and resuming to 2k give bitwise identical
 * weights on the same backend.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { backendInfo, ENTK_VERSION } from '../backend/index.js';
import {
  builtinName,
  type Dataset,
  dataFileFormat,
  featureSize,
  isSyntheticSpec,
  resolveDataPath,
} from '../data/index.js';
import { CorruptFileError, DivergenceError, InvalidArgumentError } from '../errors.js';
import { buildModel, countParameters, saveModel } from '../model/index.js';
import {
  checkOutputDir,
  cleanStaleTemporaries,
  exists,
  isDirectory,
  type OutputKind,
  progressBar,
  Rng,
  readJsonFile,
  withOutputLock,
  writeDirAtomic,
  writeFileAtomic,
  writeJsonAtomic,
} from '../util/index.js';
import { planSteps, resolveTrainConfig, type TrainConfig, type TrainConfigInput } from './config.js';
import { createOptimizer, disposeOptimizer, loadOptimizer, saveOptimizerState } from './optimizer.js';
import {
  CHECKPOINTS_DIR,
  type CheckpointInfo,
  type CheckpointState,
  CONFIG_JSON,
  checkpointId,
  hashCheckpointFiles,
  LOGS_DIR,
  type LogEntry,
  loadCheckpointModel,
  type Metrics,
  prepareRunData,
  type RunConfigFile,
  readCheckpointIndex,
  readTrainLog,
  runPaths,
  type SplitFile,
  STATE_JSON,
  stripRunMetadata,
} from './run.js';

/** Options of {@link train}. */
export interface TrainOptions {
  /** The run directory to write (see src/train/run.ts for its layout). */
  outDir: string;
  /**
   * Continue the run in `outDir` from its last checkpoint (default false). The stored data,
   * split, model, optimiser and seed are kept; `epochs`/`steps`, `checkpoints` and `evalEvery`
   * may change (e.g. to train longer). Without a run in `outDir`, a new run starts.
   * When false, `outDir` must not exist or be empty.
   */
  resume?: boolean;
  /** Stop after the current step when aborted (result.interrupted = true; resume later). */
  signal?: AbortSignal;
  /** Called after every step (and after each evaluation, with its metrics). */
  onProgress?: (progress: TrainProgress) => void;
}

/** Progress report passed to {@link TrainOptions.onProgress}. */
export interface TrainProgress {
  step: number;
  totalSteps: number;
  epoch: number;
  /** Present when this step was evaluated. */
  metrics?: Metrics;
}

/** What {@link train} returns. */
export interface TrainResult {
  /** The run directory. */
  dir: string;
  /** The resolved configuration. */
  config: TrainConfig;
  /** Last step reached (= totalSteps unless interrupted). */
  step: number;
  totalSteps: number;
  stepsPerEpoch: number;
  /** step / stepsPerEpoch. */
  epoch: number;
  /** Metrics of the last evaluation. */
  metrics: Metrics;
  /** All checkpoints of the run, ascending. */
  checkpoints: CheckpointInfo[];
  /** True if stopped by `signal` before totalSteps. */
  interrupted: boolean;
  /** Step of the checkpoint this call resumed from, or null for a new run. */
  resumedFrom: number | null;
  /** Wall-clock seconds of this call. */
  seconds: number;
  /** Number of trainable parameters P. */
  numParameters: number;
  numTrain: number;
  numTest: number;
}

/**
 * The training loss: mean over the batch of the softmax cross-entropy (nats),
 * `−(1/B) Σ_b Σ_i y_bi log softmax(z_b)_i`, of one-hot targets `onehot` and `logits`, both [B, V].
 * Used by training and by the finetune recorder (src/train/finetune.ts).
 */
export function meanCrossEntropy(onehot: tf.Tensor, logits: tf.Tensor): tf.Scalar {
  return tf.neg(tf.mean(tf.sum(tf.mul(onehot, tf.logSoftmax(logits)), -1))) as tf.Scalar;
}

/**
 * Mean softmax cross-entropy (nats) and accuracy of `model` on `data`, in chunks of `chunk` rows.
 * Inputs are `data.x` shaped [n, ...data.inputShape]. No tensors are left behind.
 */
export async function evaluateModel(
  model: tf.LayersModel,
  data: Dataset,
  chunk = 1024,
): Promise<{ loss: number; accuracy: number }> {
  const n = data.y.length;
  const d = featureSize(data);
  const V = data.classNames.length;
  let lossSum = 0;
  let correct = 0;
  for (let start = 0; start < n; start += chunk) {
    const end = Math.min(n, start + chunk);
    const sums = tf.tidy(() => {
      const x = tf.tensor(data.x.subarray(start * d, end * d), [end - start, ...data.inputShape]);
      const labels = tf.tensor1d(data.y.subarray(start, end), 'int32');
      const logits = model.predict(x, { batchSize: end - start }) as tf.Tensor2D;
      const logp = tf.logSoftmax(logits);
      const nll = tf.neg(tf.sum(tf.mul(tf.oneHot(labels, V), logp)));
      const hits = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'float32'));
      return tf.stack([nll, hits]);
    });
    const [l, c] = await sums.data();
    sums.dispose();
    lossSum += l!;
    correct += c!;
  }
  return { loss: n > 0 ? lossSum / n : Number.NaN, accuracy: n > 0 ? correct / n : Number.NaN };
}

/** The error of a run whose loss or weights became NaN/Inf at `step` (nothing is written for it). */
function divergence(step: number, what: string): DivergenceError {
  return new DivergenceError(
    `training diverged at step ${step}: ${what} (no checkpoint is written for it; lower the learning rate or resume from an earlier checkpoint)`,
  );
}

/** DivergenceError unless every weight of `model` is finite (checked before writing a checkpoint). */
function assertFiniteWeights(model: tf.LayersModel, step: number): void {
  for (const w of model.weights) {
    const values = w.read().dataSync();
    for (let k = 0; k < values.length; k++) {
      if (!Number.isFinite(values[k]))
        throw divergence(step, `weight ${w.originalName}[${k}] is ${values[k]}`);
    }
  }
}

/** Keys a resumed run may change. */
const RESUMABLE_KEYS = new Set(['epochs', 'steps', 'checkpoints', 'evalEvery']);

/** Order in which differences are reported (the most telling first). */
const COMPARED_KEYS: (keyof TrainConfig)[] = [
  'data',
  'dataOptions',
  'model',
  'modelPreset',
  'optimizer',
  'seed',
  'batchSize',
  'split',
  'standardize',
];

function assertResumable(stored: TrainConfig, given: TrainConfig, configFile: string): void {
  const keys = [...COMPARED_KEYS, ...(Object.keys(stored) as (keyof TrainConfig)[])];
  for (const key of keys) {
    if (RESUMABLE_KEYS.has(key)) continue;
    if (JSON.stringify(stored[key]) !== JSON.stringify(given[key])) {
      throw new InvalidArgumentError(
        `config.${key}`,
        given[key],
        `${JSON.stringify(stored[key])} as stored in ${configFile} (a resumed run may change only epochs/steps, checkpoints and evalEvery)`,
      );
    }
  }
}

/**
 * The stored configuration of the run in `dir` (for resuming without restating it), or null if
 * `dir` holds no run.
 */
export async function readRunConfig(dir: string): Promise<TrainConfig | null> {
  const file = runPaths(dir).config;
  if (!(await exists(file))) return null;
  return resolveTrainConfig(stripRunMetadata(await readJsonFile<RunConfigFile>(file)));
}

/**
 * A data file given relative to the current directory becomes absolute (so that the run can be
 * opened from anywhere); built-in names, synthetic specs and files under the repository's data/
 * stay as given.
 */
async function normalizeDataSpec(spec: string): Promise<string> {
  if (builtinName(spec) || isSyntheticSpec(spec) || dataFileFormat(spec) === null || path.isAbsolute(spec))
    return spec;
  const found = await resolveDataPath(spec);
  return found === spec ? path.resolve(spec) : spec;
}

/** Runs as output directories (src/util/output.ts): marked by config.json (with entkVersion). */
export const RUN_OUTPUT: OutputKind = { name: 'run', marker: CONFIG_JSON };

/**
 * Train a model as configured, writing the run directory `options.outDir`. The run is locked while
 * training (a second writer gets an error naming the pid holding it); a new run's first files
 * (config.json, split.json, the step-0 checkpoint and log) are built aside and renamed in together,
 * so a failure before that leaves nothing behind.
 */
export async function train(
  input: TrainConfigInput | TrainConfig,
  options: TrainOptions,
): Promise<TrainResult> {
  const t0 = performance.now();
  const config = resolveTrainConfig(input);
  config.data = await normalizeDataSpec(config.data);
  const { outDir } = options;
  if (typeof outDir !== 'string' || outDir === '') {
    throw new InvalidArgumentError('outDir', outDir, 'a directory path for the run');
  }
  await checkRunOutput(outDir, options.resume);
  const target = path.resolve(outDir);
  return withOutputLock(target, 'outDir', 'run', async () => {
    await cleanStaleTemporaries(path.dirname(target), path.basename(target));
    await checkRunOutput(outDir, options.resume); // again, holding the lock
    if (await exists(runPaths(outDir).config)) {
      // Temporaries of killed writers inside the run (checkpoints, index, log, config).
      for (const sub of ['', CHECKPOINTS_DIR, LOGS_DIR]) await cleanStaleTemporaries(path.join(target, sub));
    }
    return trainLocked(config, options, t0);
  });
}

/** Throw unless `outDir` may receive a new run, or holds one and `resume` is set. */
async function checkRunOutput(outDir: string, resume: boolean | undefined): Promise<void> {
  if (await exists(runPaths(outDir).config)) {
    if (!resume) {
      throw new InvalidArgumentError(
        'outDir',
        outDir,
        'a new directory (this one holds a run: resume it with --resume, or choose another --out)',
      );
    }
    return;
  }
  await checkOutputDir(outDir, { argument: 'outDir', kind: RUN_OUTPUT });
}

async function trainLocked(config: TrainConfig, options: TrainOptions, t0: number): Promise<TrainResult> {
  const { outDir } = options;
  let paths = runPaths(outDir);
  const hasRun = await exists(paths.config);

  // ---- data, split, and where to start from
  let index: CheckpointInfo[] = [];
  let storedSplit: SplitFile | undefined;
  let createdAt = new Date().toISOString();
  if (hasRun) {
    const storedFile = await readJsonFile<RunConfigFile>(paths.config);
    assertResumable(resolveTrainConfig(stripRunMetadata(storedFile)), config, paths.config);
    createdAt = storedFile.createdAt ?? createdAt;
    index = await readCheckpointIndex(outDir);
    if (await exists(paths.split)) storedSplit = await readJsonFile<SplitFile>(paths.split);
  }
  const data = await prepareRunData(config, storedSplit, paths.split);
  const { train: trainSet, test: testSet } = data;
  const n = trainSet.y.length;
  const V = data.split.classNames.length;
  const plan = planSteps(config, n);
  const last = index[index.length - 1];
  if (last && last.step > plan.totalSteps) {
    throw new InvalidArgumentError(
      config.steps != null ? 'config.steps' : 'config.epochs',
      config.steps ?? config.epochs,
      `a length of at least ${last.step} steps, the run's last checkpoint (${plan.totalSteps} given)`,
    );
  }
  // Verify and load the checkpoint to resume from before anything of the run is rewritten.
  if (last && !(await isDirectory(paths.checkpoint(last.id)))) {
    throw new CorruptFileError(
      paths.checkpoint(last.id),
      `missing (the last checkpoint listed in ${paths.index})`,
    );
  }
  const restored = last ? await loadCheckpointModel(outDir, last) : null;
  const configFile: RunConfigFile = {
    ...config,
    entkVersion: ENTK_VERSION,
    backend: backendInfo()?.backend ?? tf.getBackend(),
    createdAt,
    updatedAt: new Date().toISOString(),
  };
  if (hasRun) {
    await writeJsonAtomic(paths.config, configFile);
    if (!storedSplit) await writeJsonAtomic(paths.split, data.split);
  }

  // ---- model and optimiser: fresh, or restored from the last checkpoint
  let model: tf.LayersModel;
  let optimizer: tf.Optimizer;
  let startStep = 0;
  let priorSeconds = 0;
  let metrics: Metrics | null = null;
  if (last) {
    const dir = paths.checkpoint(last.id);
    model = restored!;
    let state: CheckpointState;
    try {
      state = await readJsonFile<CheckpointState>(path.join(dir, STATE_JSON));
      optimizer = await loadOptimizer(config.optimizer, dir);
    } catch (error) {
      model.dispose();
      throw error;
    }
    startStep = state.step;
    priorSeconds = state.seconds;
    metrics = state.metrics;
    // Forget whatever was logged after the checkpoint (it will be recomputed identically).
    const log = (await readTrainLog(outDir)).filter((e) => e.step <= startStep);
    await writeFileAtomic(paths.trainLog, log.map((e) => `${JSON.stringify(e)}\n`).join(''));
  } else {
    model = buildModel(config.model, {
      inputShape: data.split.inputShape,
      numClasses: V,
      seed: config.seed,
      vocabSize: data.split.tokenizer?.vocabSize,
    });
    optimizer = createOptimizer(config.optimizer);
    index = [];
    if (hasRun) await fs.rm(paths.trainLog, { force: true });
  }

  const numParameters = countParameters(model);
  const xTrain = tf.tensor(trainSet.x, [n, ...trainSet.inputShape]);
  const yTrain = tf.tidy(() => tf.oneHot(tf.tensor1d(trainSet.y, 'int32'), V).toFloat());
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const weightNames = model.trainableWeights.map((w) => w.originalName);
  const evalSteps = new Set(plan.evalSteps);
  const ckptSteps = new Set(plan.checkpointSteps);
  const orderRng = new Rng(config.seed);
  const fullBatch = plan.batchSize >= n;
  let permutation: number[] = [];
  let permutationEpoch = -1;
  const seconds = () => priorSeconds + (performance.now() - t0) / 1000;

  if (hasRun) await fs.mkdir(paths.logs, { recursive: true });
  const evaluate = async (step: number): Promise<Metrics> => {
    const tr = await evaluateModel(model, trainSet);
    const te = await evaluateModel(model, testSet);
    const m: Metrics = {
      trainLoss: tr.loss,
      trainAccuracy: tr.accuracy,
      testLoss: te.loss,
      testAccuracy: te.accuracy,
    };
    if (!Number.isFinite(m.trainLoss)) throw divergence(step, `the training loss is ${m.trainLoss}`);
    const entry: LogEntry = { step, epoch: step / plan.stepsPerEpoch, ...m, seconds: seconds() };
    // One append per line; readTrainLog skips a torn last line, resume rewrites the log atomically.
    await fs.appendFile(paths.trainLog, `${JSON.stringify(entry)}\n`);
    return m;
  };

  const checkpoint = async (step: number, m: Metrics): Promise<void> => {
    const id = checkpointId(step);
    const epochIndex = Math.floor(step / plan.stepsPerEpoch);
    const state: CheckpointState = {
      step,
      epoch: step / plan.stepsPerEpoch,
      stepsPerEpoch: plan.stepsPerEpoch,
      batchSize: plan.batchSize,
      rng: {
        seed: config.seed,
        stream: 'minibatch-order/epoch-<e>',
        epoch: epochIndex,
        batch: step - epochIndex * plan.stepsPerEpoch,
      },
      metrics: m,
      seconds: seconds(),
    };
    assertFiniteWeights(model, step);
    let files: Record<string, string> = {};
    await writeDirAtomic(paths.checkpoint(id), async (tmp) => {
      await saveModel(model, tmp);
      await saveOptimizerState(optimizer, config.optimizer, tmp, weightNames);
      await writeJsonAtomic(path.join(tmp, STATE_JSON), state);
      files = await hashCheckpointFiles(tmp);
    });
    index = index.filter((c) => c.step !== step);
    index.push({ id, step, epoch: state.epoch, metrics: m, files });
    index.sort((a, b) => a.step - b.step);
    await writeJsonAtomic(paths.index, index);
  };

  const bar = progressBar(`train ${config.modelPreset ?? config.model.kind}`, plan.totalSteps - startStep);
  let step = startStep;
  let interrupted = false;
  let batchLoss = 0;
  try {
    if (!last) {
      const initial = async () => {
        metrics = await evaluate(0);
        await checkpoint(0, metrics);
      };
      if (hasRun) await initial();
      else {
        // A new run appears whole: config, split, step-0 checkpoint and log, renamed in together.
        await writeDirAtomic(
          outDir,
          async (tmp) => {
            paths = runPaths(tmp);
            await writeJsonAtomic(paths.config, configFile);
            await writeJsonAtomic(paths.split, data.split);
            await fs.mkdir(paths.logs, { recursive: true });
            await initial();
          },
          { replace: false },
        );
        paths = runPaths(outDir);
      }
      options.onProgress?.({ step: 0, totalSteps: plan.totalSteps, epoch: 0, metrics: metrics! });
    }
    while (step < plan.totalSteps) {
      if (options.signal?.aborted) {
        interrupted = true;
        break;
      }
      const s = step + 1;
      const epochIndex = Math.floor((s - 1) / plan.stepsPerEpoch);
      const batchIndex = (s - 1) % plan.stepsPerEpoch;
      if (!fullBatch && epochIndex !== permutationEpoch) {
        permutation = orderRng
          .fork(`minibatch-order/epoch-${epochIndex}`)
          .shuffle(Array.from({ length: n }, (_, i) => i));
        permutationEpoch = epochIndex;
      }
      tf.tidy(() => {
        let xb: tf.Tensor = xTrain;
        let yb: tf.Tensor = yTrain;
        if (!fullBatch) {
          const rows = permutation.slice(
            batchIndex * plan.batchSize,
            Math.min(n, (batchIndex + 1) * plan.batchSize),
          );
          const idx = tf.tensor1d(rows, 'int32');
          xb = tf.gather(xTrain, idx);
          yb = tf.gather(yTrain, idx);
        }
        const cost = optimizer.minimize(
          () => meanCrossEntropy(yb, model.apply(xb, { training: true }) as tf.Tensor),
          true,
          variables,
        );
        batchLoss = cost!.dataSync()[0]!;
      });
      // A NaN/Inf minibatch loss means the weights diverged (or will after this update): stop
      // before anything is evaluated or checkpointed from them.
      if (!Number.isFinite(batchLoss)) throw divergence(s, `the minibatch loss is ${batchLoss}`);
      step = s;
      let evaluated: Metrics | undefined;
      if (evalSteps.has(s)) {
        metrics = await evaluate(s);
        evaluated = metrics;
        bar.tick(1, `loss ${metrics.trainLoss.toFixed(4)} test acc ${metrics.testAccuracy.toFixed(4)}`);
      } else {
        bar.tick(1);
      }
      if (ckptSteps.has(s)) await checkpoint(s, metrics!);
      options.onProgress?.({
        step: s,
        totalSteps: plan.totalSteps,
        epoch: s / plan.stepsPerEpoch,
        metrics: evaluated,
      });
      // Yield to the event loop so that signals (Ctrl-C) and timers are delivered.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  } finally {
    bar.done();
    tf.dispose([xTrain, yTrain]);
    model.dispose();
    disposeOptimizer(optimizer);
  }

  return {
    dir: outDir,
    config,
    step,
    totalSteps: plan.totalSteps,
    stepsPerEpoch: plan.stepsPerEpoch,
    epoch: step / plan.stepsPerEpoch,
    metrics: metrics!,
    checkpoints: index,
    interrupted,
    resumedFrom: last ? last.step : null,
    seconds: (performance.now() - t0) / 1000,
    numParameters,
    numTrain: n,
    numTest: testSet.y.length,
  };
}
