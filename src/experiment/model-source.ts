/**
 * Experiments on a user's tfjs layers model (`model:` instead of `train:`). The model takes the
 * place of the base run: a `source/model` stage (keyed by the sha256 of model.json and its weight
 * files, so a changed model redoes every stage after it) stands for `train/base`, its weights are
 * the one "checkpoint" ({@link MODEL_CHECKPOINT}), the tracked points come from `file:` points
 * files, and kernels and finetune recordings are made by src/kernel-store's and src/finetune's
 * model paths in `<out>/runs/model/`. The model's files are only read.
 *
 * The kernel and finetune stages take subsets of the tracked points (e.g. negative gradients: one
 * example, observing the others); they are written as CSV files (`id`, features, `label`) under
 * `<out>/runs/model/points/` from the tracked points stored by the points stage (`tracked.json`).
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { loadUserModel, resolveModelJson } from '../embed/index.js';
import { InvalidArgumentError } from '../errors.js';
import { analyzeModel, checkTokenIds, type TokenIdInput } from '../kernel/index.js';
import { hashModelFiles, loadModelPoints } from '../kernel-store/index.js';
import { disposeModel } from '../model/index.js';
import type { CheckpointInfo } from '../train/index.js';
import { readJsonFile, writeFileAtomic, writeJsonAtomic } from '../util/index.js';
import { filePointsPath, type ModelSourceConfig, type PointSpecs } from './schema.js';

/** The one checkpoint of a user's model: its weights as given. */
export const MODEL_CHECKPOINT: CheckpointInfo = {
  id: 'model',
  step: 0,
  epoch: 0,
  metrics: {
    trainLoss: Number.NaN,
    trainAccuracy: Number.NaN,
    testLoss: Number.NaN,
    testAccuracy: Number.NaN,
  },
};

/** The run name (directory under `<out>/runs/`) of a user's model. */
export const MODEL_RUN = 'model';

/** What the source stage records about the model (its path is read from the configuration). */
export interface ModelFacts {
  sha256: string;
  inputShape: number[];
  numClasses: number;
  labelColumn: string;
  /** The model inputs Embeddings look up (checked in the points files); absent in older runs. */
  tokenIds?: TokenIdInput[];
}

/** model.json of a model path (a model.json file or its directory). */
export function modelJsonOf(target: string): Promise<string> {
  return resolveModelJson(target, 'model.path');
}

/** sha256 of the model's files (model.json and its weights), as kernel stores and recordings record it. */
export async function modelSha256(model: ModelSourceConfig): Promise<string> {
  return (await hashModelFiles(await modelJsonOf(model.path))).sha256;
}

/** Load the model once to read its input shape and number of classes. */
export async function modelFacts(model: ModelSourceConfig, sha256: string): Promise<ModelFacts> {
  const { model: m } = await loadUserModel(model.path);
  try {
    const { inputShape, numOutputs, tokenIds } = analyzeModel(m, 'all');
    return {
      sha256,
      inputShape: [...inputShape],
      numClasses: numOutputs,
      labelColumn: model.labelColumn,
      tokenIds: tokenIds.map((t) => ({ ...t })),
    };
  } finally {
    disposeModel(m); // (with a shared layer's weights)
  }
}

/** sha256 of the points files of `specs` (`file:` specs), so edited points redo the points stage. */
export async function pointsSha256(specs: PointSpecs): Promise<Record<string, string | null>> {
  const out: Record<string, string | null> = {};
  for (const [which, spec] of Object.entries(specs)) {
    const file = filePointsPath(spec);
    const bytes = file ? await fs.readFile(file).catch(() => null) : null;
    out[which] = bytes ? createHash('sha256').update(bytes).digest('hex') : null;
  }
  return out;
}

/** The tracked points as stored by the points stage: ids, inputs and labels (−1: none). */
export interface StoredPoints {
  ids: string[];
  inputShape: number[];
  x: number[];
  y: number[];
}

const trackedFile = (runDir: string) => path.join(runDir, 'tracked.json');

/** The tracked points the points stage stored in `<runDir>/tracked.json` (read once per stage). */
export function readTrackedPoints(runDir: string): Promise<StoredPoints> {
  return readJsonFile<StoredPoints>(trackedFile(runDir));
}

/**
 * Read the finetune (labelled) and observation points files for the model, check they are
 * disjoint, store them as `<runDir>/tracked.json`; returns ids and labels (finetune first).
 */
export async function readModelPoints(
  facts: ModelFacts,
  specs: PointSpecs,
  runDir: string,
): Promise<{
  finetuneIds: string[];
  observeIds: string[];
  finetuneLabels: number[];
  observeLabels: number[];
}> {
  const load = async (which: 'finetune' | 'observe') => {
    try {
      const points = await loadModelPoints(specs[which], facts.inputShape, facts.numClasses, {
        labelColumn: facts.labelColumn,
      });
      // Token ids the model's Embeddings cannot look up, named by the config key and file row.
      checkTokenIds(points.x, facts.inputShape, facts.tokenIds ?? [], `points.${which}`);
      return points;
    } catch (error) {
      if (error instanceof InvalidArgumentError && error.argument === 'points') {
        throw new InvalidArgumentError(`points.${which}`, specs[which], error.expected);
      }
      throw error;
    }
  };
  const finetune = await load('finetune');
  const observe = await load('observe');
  if (!finetune.labelled) {
    throw new InvalidArgumentError(
      'points.finetune',
      specs.finetune,
      `a labelled points file (a '${facts.labelColumn}' column of class indices in [0, ${facts.numClasses}))`,
    );
  }
  const ids = new Set(finetune.ids);
  const shared = observe.ids.filter((id) => ids.has(id));
  if (shared.length > 0) {
    throw new InvalidArgumentError(
      'points.observe',
      specs.observe,
      `points disjoint from points.finetune (${shared.length} shared ids, e.g. ${shared[0]})`,
    );
  }
  const stored: StoredPoints = {
    ids: [...finetune.ids, ...observe.ids],
    inputShape: facts.inputShape,
    x: [...finetune.x, ...observe.x],
    y: [...finetune.y, ...observe.y],
  };
  await fs.mkdir(runDir, { recursive: true });
  await writeJsonAtomic(trackedFile(runDir), stored);
  return {
    finetuneIds: finetune.ids,
    observeIds: observe.ids,
    finetuneLabels: Array.from(finetune.y),
    observeLabels: Array.from(observe.y),
  };
}

/** Ids of the labelled tracked points, sorted by label (stable): the class-sorted heatmap's points. */
export function labelledModelPoints(stored: StoredPoints): string[] {
  return stored.ids
    .map((id, k) => ({ id, y: stored.y[k]! }))
    .filter((p) => p.y >= 0)
    .sort((a, b) => a.y - b.y)
    .map((p) => p.id);
}

/** A CSV field, quoted when it has to be (src/data/csv.ts rules). */
function csvField(text: string): string {
  return /[",\r\n]/.test(text) || text.trim() !== text ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * Write the tracked points `ids` (in that order, from `stored`: {@link readTrackedPoints}) as a CSV
 * points file `<runDir>/points/<name>.csv` (columns id, x0..x(d−1), and label when every point has
 * one) and return its `file:` spec. The inputs are float32 values written exactly (shortest
 * round-trip decimal).
 */
export async function writeModelPoints(
  runDir: string,
  stored: StoredPoints,
  ids: readonly string[],
  name: string,
): Promise<string> {
  const d = stored.inputShape.reduce((a, b) => a * b, 1);
  const row = new Map(stored.ids.map((id, k) => [id, k]));
  const rows = ids.map((id) => {
    const k = row.get(id);
    if (k === undefined) throw new InvalidArgumentError('points', id, 'an id of the tracked points');
    return k;
  });
  const labelled = rows.every((k) => stored.y[k]! >= 0);
  const header = ['id', ...Array.from({ length: d }, (_, j) => `x${j}`), ...(labelled ? ['label'] : [])];
  const lines = [header.join(',')];
  for (const k of rows) {
    const x = stored.x.slice(k * d, (k + 1) * d).map(String);
    lines.push([csvField(stored.ids[k]!), ...x, ...(labelled ? [String(stored.y[k])] : [])].join(','));
  }
  const file = path.join(runDir, 'points', `${name}.csv`);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomic(file, `${lines.join('\n')}\n`);
  return `file:${file}`;
}
