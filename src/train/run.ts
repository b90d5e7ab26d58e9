/**
 * The run directory: what `entk train` writes and every later command (kernels, finetune, report)
 * reads. Layout:
 *
 * ```
 * <run>/config.json                 the resolved TrainConfig (every default filled in) +
 *                                   { entkVersion, backend, createdAt, updatedAt }
 * <run>/split.json                  { data, dataSha256, dataOptions, seed, testFraction, trainIds, testIds,
 *                                     standardization (null if off), classNames, inputShape,
 *                                     featureNames }
 * <run>/checkpoints/index.json      [{ id: 'step-000100', step, epoch, metrics, files }], ascending
 *                                   step; files: { 'weights.bin': '<sha256>', ... } of every file
 *                                   of the checkpoint, checked before a checkpoint is used
 * <run>/checkpoints/step-000100/    one checkpoint, written atomically as a whole directory:
 *     model.json, weights.bin         the model in the standard tfjs layers format (tf.loadLayersModel)
 *     optimizer.json, optimizer.bin   optimiser state (iterations, slot variables; see optimizer.ts)
 *     state.json                      { step, epoch, stepsPerEpoch, batchSize, rng, metrics, ... }
 * <run>/logs/train.jsonl            one JSON object per evaluation (every epoch by default, and at
 *                                   every checkpoint): { step, epoch, trainLoss, trainAccuracy,
 *                                   testLoss, testAccuracy, seconds }
 * <run>/kernels/                    kernel store (src/kernel, src/io)
 * <run>/finetune/                   finetune recordings, predictions, comparisons (src/dynamics)
 * ```
 *
 * Conventions: a checkpoint id is `step-` + the step zero-padded to 6 digits; step 0 holds the
 * initial weights; `epoch` = step / stepsPerEpoch (fractional mid-epoch); losses are the mean
 * softmax cross-entropy (natural log) over the whole split, accuracies in [0, 1]. The train/test
 * Datasets of {@link openRun} are rebuilt from the data spec and split.json's ids, standardised
 * with the stored training-split statistics and reshaped to the model's input shape.
 *
 * Integrity: `dataSha256` is the sha256 of the data file's bytes (for a built-in dataset, of the
 * shipped file; null for synthetic data); reopening or resuming a run whose data file now hashes
 * differently is refused. A checkpoint's files are hashed into its index entry when written and
 * checked whenever it is loaded; NaN/Inf weights are refused. Runs written before these fields
 * existed are accepted with a warning on stderr (their data and checkpoints cannot be checked).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import {
  applyStandardization,
  type Dataset,
  dataSourceFile,
  featureSize,
  fitStandardization,
  loadDataset,
  type Standardization,
  selectByIds,
  stratifiedSplit,
  withInputShape,
} from '../data/index.js';
import { embedDataset, tokenizeDataset } from '../embed/index.js';
import { CorruptFileError, InvalidArgumentError } from '../errors.js';
import { sha256File } from '../io/index.js';
import { loadModel as loadModelFrom, type ModelSpec, squareImageShape } from '../model/index.js';
import { exists, isDirectory, readJsonFile, resolveInside } from '../util/index.js';
import { type DataOptions, resolveTrainConfig, type TrainConfig } from './config.js';

export const CONFIG_JSON = 'config.json';
export const SPLIT_JSON = 'split.json';
export const CHECKPOINTS_DIR = 'checkpoints';
export const CHECKPOINT_INDEX = 'index.json';
export const STATE_JSON = 'state.json';
export const LOGS_DIR = 'logs';
export const TRAIN_LOG = 'train.jsonl';
export const KERNELS_DIR = 'kernels';
export const FINETUNE_DIR = 'finetune';

/** Loss and accuracy on both splits (mean cross-entropy in nats; accuracy in [0, 1]). */
export interface Metrics {
  trainLoss: number;
  trainAccuracy: number;
  testLoss: number;
  testAccuracy: number;
}

/** One entry of `checkpoints/index.json`. */
export interface CheckpointInfo {
  /** 'step-000100'. */
  id: string;
  step: number;
  /** step / stepsPerEpoch. */
  epoch: number;
  metrics: Metrics;
  /**
   * sha256 of every file of the checkpoint directory by name (model.json, weights.bin,
   * optimizer.json, optimizer.bin, state.json). Absent in runs written by older versions.
   */
  files?: Record<string, string>;
}

/** One line of `logs/train.jsonl`. */
export interface LogEntry extends Metrics {
  step: number;
  epoch: number;
  /** Wall-clock seconds of training so far (across resumes). */
  seconds: number;
}

/** Contents of `config.json`. */
export interface RunConfigFile extends TrainConfig {
  entkVersion: string;
  backend: string;
  createdAt: string;
  updatedAt: string;
}

/** Contents of `split.json`. */
export interface SplitFile {
  data: string;
  /** sha256 of the data file's bytes (null: synthetic data; absent in older runs). */
  dataSha256?: string | null;
  dataOptions: DataOptions;
  seed: number;
  testFraction: number;
  trainIds: string[];
  testIds: string[];
  /** Fitted on the training split; null when standardisation is off. */
  standardization: Standardization | null;
  classNames: string[];
  /** Input shape of one example as fed to the model (e.g. [64], or [8, 8, 1] for the CNN). */
  inputShape: number[];
  featureNames: string[];
  /** The tokenizer of a transformer trained on text (absent otherwise and in older runs). */
  tokenizer?: TokenizerRecord;
}

/** What split.json records of the tokenizer of a text transformer run. */
export interface TokenizerRecord {
  /** `sha256:<hex>` of tokenizer.json and tokenizer_config.json (checked when the run is reopened). */
  revision: string;
  /** Vocabulary size (the model's embedding rows, unless the spec gives more). */
  vocabSize: number;
  padId: number;
  maxLength: number;
  /** Texts longer than maxLength tokens (cut to their first maxLength tokens). */
  truncated: number;
}

/** Contents of a checkpoint's `state.json`: everything needed to resume exactly. */
export interface CheckpointState {
  step: number;
  epoch: number;
  stepsPerEpoch: number;
  batchSize: number;
  /**
   * Position of the minibatch-order stream: the permutation of epoch e is
   * `new Rng(seed).fork('minibatch-order/epoch-' + e)`; the next step uses batch `batch` of epoch `epoch`.
   */
  rng: { seed: number; stream: string; epoch: number; batch: number };
  metrics: Metrics;
  seconds: number;
}

/** What a checkpoint id looks like: 'step-' and the step, zero-padded to at least 6 digits. */
export const CHECKPOINT_ID = /^step-\d{6,}$/;

/** The id of the checkpoint at `step`: 'step-000100'. */
export function checkpointId(step: number): string {
  return `step-${String(step).padStart(6, '0')}`;
}

/** Path helpers of a run directory. */
export function runPaths(dir: string) {
  const checkpoints = path.join(dir, CHECKPOINTS_DIR);
  return {
    config: path.join(dir, CONFIG_JSON),
    split: path.join(dir, SPLIT_JSON),
    checkpoints,
    index: path.join(checkpoints, CHECKPOINT_INDEX),
    checkpoint: (id: string) => path.join(checkpoints, id),
    logs: path.join(dir, LOGS_DIR),
    trainLog: path.join(dir, LOGS_DIR, TRAIN_LOG),
    kernels: path.join(dir, KERNELS_DIR),
    finetune: path.join(dir, FINETUNE_DIR),
  };
}

/** `checkpoints/index.json` of a run ([] if there is none yet). */
export async function readCheckpointIndex(dir: string): Promise<CheckpointInfo[]> {
  const file = runPaths(dir).index;
  if (!(await exists(file))) return [];
  const index = await readJsonFile<CheckpointInfo[]>(file);
  if (!Array.isArray(index)) throw new CorruptFileError(file, 'expected an array of checkpoints');
  let previous = -1;
  index.forEach((entry, k) => {
    const bad = (what: string): never => {
      throw new CorruptFileError(file, `entry ${k}: ${what}`);
    };
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) bad('not an object');
    const { id, step, epoch, metrics, files } = entry;
    if (!Number.isSafeInteger(step) || step < 0)
      bad(`step ${JSON.stringify(step)} is not a non-negative integer`);
    // The id names a directory under checkpoints/: only 'step-NNNNNN' of this very step.
    if (typeof id !== 'string' || !CHECKPOINT_ID.test(id) || id !== checkpointId(step)) {
      bad(
        `id ${JSON.stringify(id)} is not ${JSON.stringify(checkpointId(step))} (checkpoint ids are step-NNNNNN)`,
      );
    }
    if (step <= previous) bad(`steps are not strictly ascending (${step} after ${previous})`);
    previous = step;
    if (typeof epoch !== 'number' || !Number.isFinite(epoch)) bad('epoch is not a number');
    if (metrics === null || typeof metrics !== 'object') bad('metrics is not an object');
    if (files !== undefined) {
      if (files === null || typeof files !== 'object' || Array.isArray(files)) bad('files is not an object');
      for (const [name, hash] of Object.entries(files)) {
        resolveInside(path.join(path.dirname(file), id), name, `entry ${k}: files`, file);
        if (typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash)) bad(`files.${name} is not a sha256`);
      }
    }
  });
  return index;
}

/** Print a warning on stderr once per message (integrity checks that old runs cannot have). */
const warned = new Set<string>();
function warnOnce(message: string): void {
  if (warned.has(message)) return;
  warned.add(message);
  console.warn(`entk: warning: ${message}`);
}

/** sha256 of every file of a checkpoint directory, by name (for {@link CheckpointInfo.files}). */
export async function hashCheckpointFiles(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const name of (await fs.readdir(dir)).sort()) files[name] = await sha256File(path.join(dir, name));
  return files;
}

/**
 * Check the files of checkpoint `info` of the run in `runDir` against the sha256 recorded in the
 * index: CorruptFileError naming a file that is missing or changed. A checkpoint written before
 * hashes were recorded passes with a warning.
 */
export async function verifyCheckpoint(runDir: string, info: CheckpointInfo): Promise<void> {
  const paths = runPaths(runDir);
  const dir = paths.checkpoint(info.id);
  if (!(await isDirectory(dir))) throw new CorruptFileError(dir, `missing (listed in ${paths.index})`);
  if (!info.files) {
    warnOnce(
      `${dir}: no sha256 recorded for this checkpoint (written by an older entk); its files are not verified`,
    );
    return;
  }
  for (const [name, expected] of Object.entries(info.files)) {
    const file = resolveInside(dir, name, 'files', paths.index);
    const actual = await sha256File(file).catch((error) => {
      if (error instanceof InvalidArgumentError)
        throw new CorruptFileError(file, `missing (listed in ${paths.index})`);
      throw error;
    });
    if (actual !== expected) {
      throw new CorruptFileError(
        file,
        `changed since checkpoint ${info.id} was written: sha256 ${actual}, ${paths.index} records ${expected}`,
      );
    }
  }
}

/**
 * Load the model of checkpoint `info` (files verified by {@link verifyCheckpoint}); CorruptFileError
 * naming the checkpoint if a weight is NaN or infinite. The caller disposes the model.
 */
export async function loadCheckpointModel(runDir: string, info: CheckpointInfo): Promise<tf.LayersModel> {
  await verifyCheckpoint(runDir, info);
  const dir = runPaths(runDir).checkpoint(info.id);
  const model = await loadModelFrom(dir);
  for (const w of model.weights) {
    const values = w.read().dataSync();
    for (let k = 0; k < values.length; k++) {
      if (!Number.isFinite(values[k])) {
        model.dispose();
        throw new CorruptFileError(
          dir,
          `checkpoint ${info.id} has a non-finite weight (${values[k]} in ${w.originalName}[${k}]); training diverged before it was written or the file is damaged`,
        );
      }
    }
  }
  return model;
}

/**
 * sha256 of the bytes data spec `spec` loads (the shipped file of a built-in dataset), or null
 * for synthetic data and for a file that does not exist (loading it reports the error).
 */
export async function dataSha256(spec: string): Promise<string | null> {
  const file = await dataSourceFile(spec);
  return file === null ? null : sha256File(file);
}

/**
 * Throw InvalidArgumentError naming the data file and both hashes unless the data `spec` loads
 * now (`current`) is what split.json recorded (`recorded`; absent in older runs: a warning).
 */
async function checkDataUnchanged(
  spec: string,
  recorded: string | null | undefined,
  current: string | null,
  splitFile: string,
): Promise<void> {
  if (recorded === undefined) {
    warnOnce(
      `${splitFile}: no dataSha256 recorded (written by an older entk); the data file is not verified`,
    );
    return;
  }
  if (recorded !== current) {
    const file = (await dataSourceFile(spec)) ?? spec;
    throw new InvalidArgumentError(
      'data',
      file,
      `the data the run was trained on (sha256 ${recorded} in ${splitFile}), but the file ${current === null ? 'is gone' : `changed (it now hashes to ${current})`}; train a new run on the new data`,
    );
  }
}

/** The entries of `logs/train.jsonl` ([] if there is none). */
export async function readTrainLog(dir: string): Promise<LogEntry[]> {
  const file = runPaths(dir).trainLog;
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    return [];
  }
  const out: LogEntry[] = [];
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      out.push(JSON.parse(line) as LogEntry);
    } catch {
      // A torn last line (a crash mid-append) is skipped; anything else is corruption.
      if (i === lines.length - 1) return;
      throw new CorruptFileError(file, `line ${i + 1} is not valid JSON`);
    }
  });
  return out;
}

/** The input shape a model of `spec` is fed: images for a CNN on flat square data, else unchanged. */
export function modelInputShape(spec: ModelSpec, dataShape: number[]): number[] {
  return (spec.kind === 'cnn' && squareImageShape(dataShape)) || dataShape;
}

/** The datasets of a run, ready for the model. */
export interface PreparedData {
  train: Dataset;
  test: Dataset;
  standardization: Standardization | null;
  split: SplitFile;
}

/**
 * Load the data of `config`, split it (or, given `stored`, re-select the stored split by id),
 * standardise with training-split statistics and reshape for the model.
 */
export async function prepareRunData(
  config: TrainConfig,
  stored?: SplitFile,
  splitFile?: string,
): Promise<PreparedData> {
  const dataHash = await dataSha256(config.data);
  if (stored) await checkDataUnchanged(config.data, stored.dataSha256, dataHash, splitFile ?? SPLIT_JSON);
  let ds = await loadDataset(config.data, config.dataOptions);
  // A text dataset becomes a feature dataset through the frozen backbone (cached on disk), or
  // token ids + attention mask for a transformer.
  let tokenizer: TokenizerRecord | undefined;
  if (config.backbone) ds = (await embedDataset(ds, config.backbone)).dataset;
  else if (config.tokenizer && config.model.kind === 'transformer') {
    const spec = config.model;
    const result = await tokenizeDataset(ds, { tokenizer: config.tokenizer, maxLength: spec.maxLength });
    ds = result.dataset;
    const t = result.tokenized;
    tokenizer = {
      revision: t.revision,
      vocabSize: t.vocabSize,
      padId: t.padId,
      maxLength: t.maxLength,
      truncated: t.truncated,
    };
    if (stored?.tokenizer && stored.tokenizer.revision !== t.revision) {
      throw new InvalidArgumentError(
        'tokenizer',
        t.dir,
        `the tokenizer the run was trained with (${stored.tokenizer.revision} in ${splitFile ?? SPLIT_JSON}), but its files changed (they now hash to ${t.revision}); train a new run`,
      );
    }
    if (spec.vocabSize !== undefined && spec.vocabSize < t.vocabSize) {
      throw new InvalidArgumentError(
        'config.model.vocabSize',
        spec.vocabSize,
        `at least the tokenizer's vocabulary size ${t.vocabSize} (or omitted: taken from the tokenizer)`,
      );
    }
  } else if (ds.text && ds.x.length === 0) {
    throw new InvalidArgumentError(
      config.model.kind === 'transformer' ? 'tokenizer' : 'backbone',
      undefined,
      config.model.kind === 'transformer'
        ? `a tokenizer for the text dataset ${config.data} (e.g. --tokenizer models/tiny-bert)`
        : `a frozen backbone for the text dataset ${config.data}, which has no numeric features (e.g. --backbone models/tiny-bert), or a transformer model with --tokenizer`,
    );
  }
  let train: Dataset;
  let test: Dataset;
  if (stored) {
    if (JSON.stringify(stored.classNames) !== JSON.stringify(ds.classNames)) {
      throw new CorruptFileError(
        splitFile ?? SPLIT_JSON,
        `class names ${JSON.stringify(stored.classNames)} differ from the dataset's ${JSON.stringify(ds.classNames)}`,
      );
    }
    train = selectByIds(ds, stored.trainIds);
    test = selectByIds(ds, stored.testIds);
  } else {
    ({ train, test } = stratifiedSplit(ds, {
      testFraction: config.split.testFraction,
      seed: config.split.seed,
    }));
  }
  const standardization = config.standardize ? (stored?.standardization ?? fitStandardization(train)) : null;
  if (standardization) {
    train = applyStandardization(train, standardization);
    test = applyStandardization(test, standardization);
  }
  const shape = modelInputShape(config.model, train.inputShape);
  if (JSON.stringify(shape) !== JSON.stringify(train.inputShape)) {
    train = withInputShape(train, shape);
    test = withInputShape(test, shape);
  }
  return {
    train,
    test,
    standardization,
    split: {
      data: config.data,
      dataSha256: dataHash,
      dataOptions: config.dataOptions,
      seed: config.split.seed,
      testFraction: config.split.testFraction,
      trainIds: train.ids,
      testIds: test.ids,
      standardization,
      classNames: ds.classNames,
      inputShape: shape,
      featureNames: ds.featureNames,
      ...(tokenizer ? { tokenizer } : {}),
    },
  };
}

/** A trained (or training) run, opened for reading. */
export interface Run {
  /** The run directory. */
  dir: string;
  /** The resolved training configuration. */
  config: TrainConfig;
  /** Training split: standardised, shaped for the model (inputShape = split.inputShape). */
  train: Dataset;
  /** Test split, same treatment. */
  test: Dataset;
  /** The training-split standardisation (mean 0 / std 1 when standardisation is off). */
  standardization: Standardization;
  /** Contents of split.json. */
  split: SplitFile;
  /** Checkpoints, ascending by step. */
  checkpoints: CheckpointInfo[];
  /**
   * A checkpoint by 'last' | 'first' | an id ('step-000100') | a step ('100', 'step-100').
   * Throws InvalidArgumentError listing the available ids otherwise.
   */
  resolveCheckpoint(idOrLast: string): CheckpointInfo;
  /** The directory of a checkpoint (same selectors as resolveCheckpoint). */
  checkpointDir(idOrLast: string): string;
  /** Load a checkpoint's model (same selectors as resolveCheckpoint). The caller disposes it. */
  loadModel(checkpointId: string): Promise<tf.LayersModel>;
  /** The entries of logs/train.jsonl. */
  readLog(): Promise<LogEntry[]>;
}

/** Pick a checkpoint from `checkpoints` by selector (see {@link Run.resolveCheckpoint}). */
export function selectCheckpoint(checkpoints: CheckpointInfo[], selector: string): CheckpointInfo {
  const sel = String(selector).trim();
  let found: CheckpointInfo | undefined;
  if (sel === 'last' || sel === 'latest') found = checkpoints[checkpoints.length - 1];
  else if (sel === 'first' || sel === 'initial') found = checkpoints[0];
  else {
    const m = /^(?:step-)?(\d+)$/.exec(sel);
    found = m ? checkpoints.find((c) => c.step === Number(m[1])) : checkpoints.find((c) => c.id === sel);
  }
  if (!found) {
    const ids = checkpoints.map((c) => c.id);
    const shown = ids.length > 8 ? [...ids.slice(0, 4), '...', ...ids.slice(-3)] : ids;
    throw new InvalidArgumentError(
      'checkpoint',
      selector,
      ids.length === 0
        ? 'a checkpoint, but the run has none'
        : `last, first, a step or an id (${shown.join(', ')})`,
    );
  }
  return found;
}

/**
 * Open a run directory written by `train` / `entk train`.
 * Throws InvalidArgumentError if `dir` is not a run directory, CorruptFileError if its files are damaged.
 */
export async function openRun(dir: string): Promise<Run> {
  const paths = runPaths(dir);
  if (!(await exists(paths.config))) {
    throw new InvalidArgumentError('run', dir, `a run directory written by 'entk train' (no ${CONFIG_JSON})`);
  }
  const stored = await readJsonFile<RunConfigFile>(paths.config);
  let config: TrainConfig;
  try {
    config = resolveTrainConfig(stripRunMetadata(stored));
  } catch (error) {
    throw new CorruptFileError(paths.config, (error as Error).message);
  }
  const split = await readJsonFile<SplitFile>(paths.split).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') throw new CorruptFileError(paths.split, 'missing');
    throw error;
  });
  const data = await prepareRunData(config, split, paths.split);
  const checkpoints = await readCheckpointIndex(dir);
  const d = featureSize(data.train);
  return {
    dir,
    config,
    train: data.train,
    test: data.test,
    standardization: data.standardization ?? { mean: new Array(d).fill(0), std: new Array(d).fill(1) },
    split,
    checkpoints,
    resolveCheckpoint: (sel) => selectCheckpoint(checkpoints, sel),
    checkpointDir: (sel) => paths.checkpoint(selectCheckpoint(checkpoints, sel).id),
    loadModel: (sel) => loadCheckpointModel(dir, selectCheckpoint(checkpoints, sel)),
    readLog: () => readTrainLog(dir),
  };
}

/** The TrainConfig part of a config.json (without entkVersion, backend, timestamps). */
export function stripRunMetadata(file: RunConfigFile): TrainConfig {
  const { entkVersion: _v, backend: _b, createdAt: _c, updatedAt: _u, ...config } = file;
  return config;
}
