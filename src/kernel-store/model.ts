/**
 * Kernel stores of a user-supplied tfjs layers model (`entk kernel --model model.json`): the eNTK of
 * any model the engine supports over points from a CSV/JSONL file or an array file, written as a
 * store with the same layout as run stores (./store.ts) and a manifest whose `source` is
 * `{kind: 'model', sha256 of model.json + weights}` (`run` and `checkpoint` null; ./manifest.ts).
 *
 * Point specs for a model (one term):
 * - `file:points.csv` / `file:points.jsonl` (optionally .gz): the numeric feature columns, in file
 *   order (JSONL array cells expand), reshaped to the model's input shape; their count must equal
 *   prod(inputShape). An `id` column gives the point ids; a label column (default `label`) is
 *   optional and, when present, must hold class indices in [0, V). Without labels, labels are -1.
 *   Inputs are used as they are (no standardisation: the model sees what the file holds).
 * - `npy:inputs.npy` (also .npz with one array, .safetensors with one tensor, .json): an array of
 *   shape [N, ...inputShape] (or [N, prod(inputShape)]), any numeric dtype (stored as float32).
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import {
  DATA_FILE_EXTENSIONS,
  type Dataset,
  dataFileFormat,
  datasetNameFromPath,
  decodeDataBytes,
  parseCsvTable,
  parseJsonlTable,
  resolveDataPath,
  rowId,
  tableToDataset,
} from '../data/index.js';
import { loadUserModel, type ModelSupportReport, unsupportedLines } from '../embed/index.js';
import { InvalidArgumentError, UnsupportedError } from '../errors.js';
import { readArray, sha256File } from '../io/index.js';
import { analyzeModel, checkTokenIds } from '../kernel/index.js';
import { disposeModel } from '../model/index.js';
import { resolveInside } from '../util/index.js';
import {
  type ComputedStore,
  checkShard,
  computeStore,
  type StoreDescription,
  type StoreKernelOptions,
  shardDir,
  summarizeModel,
} from './compute.js';
import type { KernelStoreSource } from './manifest.js';
import { defaultPointSetName } from './points.js';
import { checkStoreOutput } from './store.js';

const MODEL_POINTS_HELP =
  'file:<points.csv|.jsonl> (numeric feature columns, optional label column) or npy:<inputs.npy> ([N, ...inputShape])';

/** The one term of a model point spec. */
export interface ModelPointTerm {
  kind: 'file' | 'npy';
  path: string;
}

/** Parse `file:<path>` or `npy:<path>` (see the module comment); InvalidArgumentError otherwise. */
export function parseModelPointSpec(spec: string): ModelPointTerm {
  const m = typeof spec === 'string' ? /^(file|npy):(.+)$/s.exec(spec.trim()) : null;
  if (!m) {
    const runTerm = typeof spec === 'string' && /^(train|test|ids):/.test(spec.trim());
    throw new InvalidArgumentError(
      'points',
      spec,
      `${MODEL_POINTS_HELP}${runTerm ? ' (train:/test:/ids: terms need --run)' : ''}`,
    );
  }
  return { kind: m[1] as 'file' | 'npy', path: m[2]!.trim() };
}

/** Points for a model store: inputs as fed to the model, labels (-1 = none), ids. */
export interface ModelPoints {
  /** Default point-set name (from the file name). */
  name: string;
  /** The file the points were read from (resolved). */
  file: string;
  ids: string[];
  /** Inputs, row-major [N, ...inputShape]. */
  x: Float32Array;
  /** Class indices in [0, V), or -1 where the file has no label. */
  y: Int32Array;
  inputShape: number[];
  /** True when the file had a label column. */
  labelled: boolean;
}

/** Options of {@link loadModelPoints}. */
export interface LoadModelPointsOptions {
  /** Label column of CSV/JSONL files (optional in the file). Default 'label'. */
  labelColumn?: string;
}

const NO_LABEL_COLUMN = '\u0000entk-no-label';

function featureMismatch(file: string, inputShape: number[], found: number | string): InvalidArgumentError {
  const d = inputShape.reduce((a, b) => a * b, 1);
  return new InvalidArgumentError(
    'points',
    file,
    `points with the model's ${d} input features (input shape [${inputShape.join(', ')}]); the file has ${found}`,
  );
}

async function loadTablePoints(
  spec: string,
  inputShape: number[],
  numOutputs: number,
  labelColumn: string,
): Promise<ModelPoints> {
  const format = dataFileFormat(spec);
  if (format === null) {
    throw new InvalidArgumentError(
      'points',
      `file:${spec}`,
      `a file ending in ${DATA_FILE_EXTENSIONS.join(', ')}`,
    );
  }
  const file = await resolveDataPath(spec);
  if (file === null) throw new InvalidArgumentError('points', `file:${spec}`, 'an existing file');
  const text = decodeDataBytes(await fs.readFile(file), file);
  const table = format === 'csv' ? parseCsvTable(text, file) : parseJsonlTable(text, file);
  const labelled = table.columns.includes(labelColumn);
  if (!labelled) {
    table.columns.push(NO_LABEL_COLUMN);
    for (const r of table.records) r.cells.push('0');
  }
  const classNames = labelled ? Array.from({ length: numOutputs }, (_, i) => String(i)) : ['0'];
  const ds: Dataset = tableToDataset(table, datasetNameFromPath(file), {
    labelColumn: labelled ? labelColumn : NO_LABEL_COLUMN,
    classNames,
  });
  const d = inputShape.reduce((a, b) => a * b, 1);
  const fd = ds.featureNames.length;
  if (fd !== d) {
    throw featureMismatch(
      file,
      inputShape,
      `${fd} (${ds.featureNames.slice(0, 6).join(', ')}${fd > 6 ? ', ...' : ''})`,
    );
  }
  return {
    name: defaultPointSetName(datasetNameFromPath(file)),
    file,
    ids: ds.ids,
    x: ds.x,
    y: labelled ? ds.y : new Int32Array(ds.ids.length).fill(-1),
    inputShape: [...inputShape],
    labelled,
  };
}

async function loadArrayPoints(spec: string, inputShape: number[]): Promise<ModelPoints> {
  const file = path.resolve(spec);
  if (!(await fs.stat(file).catch(() => null))?.isFile()) {
    throw new InvalidArgumentError(
      'points',
      `npy:${spec}`,
      'an existing array file (.npy, .npz, .safetensors, .json)',
    );
  }
  const array = await readArray(file);
  const d = inputShape.reduce((a, b) => a * b, 1);
  const [n, ...rest] = array.shape;
  const restSize = rest.reduce((a, b) => a * b, 1);
  const fits =
    n !== undefined &&
    (rest.length === inputShape.length
      ? rest.every((s, k) => s === inputShape[k])
      : rest.length === 1 && rest[0] === d);
  if (!fits)
    throw featureMismatch(file, inputShape, `shape [${array.shape.join(', ')}] (${restSize} per point)`);
  if (array.dtype === 'bool') {
    throw new InvalidArgumentError('points', file, 'a numeric array (float or integer dtype)');
  }
  const x = new Float32Array(array.data.length);
  const data = array.data as ArrayLike<number | bigint>;
  for (let k = 0; k < x.length; k++) x[k] = Number(data[k]);
  const base = path.basename(file).replace(/\.(npy|npz|safetensors|json)$/i, '');
  return {
    name: defaultPointSetName(base),
    file,
    ids: Array.from({ length: n! }, (_, i) => rowId(base, i, n!)),
    x,
    y: new Int32Array(n!).fill(-1),
    inputShape: [...inputShape],
    labelled: false,
  };
}

/**
 * Read the points of a model point spec (`file:` or `npy:`, see the module comment) for a model
 * with input shape `inputShape` and `numOutputs` logits. InvalidArgumentError when the file is
 * missing or its feature count does not match the model's input; DataFormatError for bad content.
 */
export async function loadModelPoints(
  spec: string,
  inputShape: number[],
  numOutputs: number,
  options: LoadModelPointsOptions = {},
): Promise<ModelPoints> {
  const term = parseModelPointSpec(spec);
  const points =
    term.kind === 'file'
      ? await loadTablePoints(term.path, inputShape, numOutputs, options.labelColumn ?? 'label')
      : await loadArrayPoints(term.path, inputShape);
  if (points.ids.length === 0) throw new InvalidArgumentError('points', spec, 'at least one point');
  return points;
}

/** The manifest source of a store computed from a user's model: its files' identity and support report. */
export async function modelStoreSource(report: ModelSupportReport): Promise<KernelStoreSource> {
  const hashes = await hashModelFiles(report.file);
  return {
    kind: 'model',
    path: report.file,
    sha256: hashes.sha256,
    files: hashes.files,
    modelClass: report.modelClass,
    unsupported: unsupportedLines(report),
  };
}

/**
 * A store's description of a user's model, all but its points: no run or checkpoint, the model's
 * layers and parameter count, classes named by their index.
 */
export function userModelDescription(
  source: KernelStoreSource,
  model: tf.LayersModel,
  report: ModelSupportReport,
  inputShape: readonly number[],
  numOutputs: number,
): Omit<StoreDescription, 'points'> {
  return {
    source,
    run: null,
    checkpoint: null,
    model: {
      spec: null,
      preset: null,
      layers: summarizeModel(model),
      parameterCount: report.parameters,
      inputShape: [...inputShape],
      numOutputs,
      classNames: Array.from({ length: numOutputs }, (_, i) => String(i)),
    },
  };
}

/**
 * The sha256 identity of a layers model on disk: every file (model.json, then the weight files
 * of its weightsManifest in order, names relative to model.json's directory) with its size and
 * sha256, and the sha256 of their `sha256sum` lines ("<hex>  <file>\n"). InvalidArgumentError
 * if a weight file is missing.
 */
export async function hashModelFiles(
  modelJson: string,
): Promise<{ sha256: string; files: Array<{ file: string; bytes: number; sha256: string }> }> {
  const dir = path.dirname(modelJson);
  const json = JSON.parse(await fs.readFile(modelJson, 'utf8')) as {
    weightsManifest?: Array<{ paths?: string[] }>;
  };
  const names = [path.basename(modelJson), ...(json.weightsManifest ?? []).flatMap((g) => g.paths ?? [])];
  const files: Array<{ file: string; bytes: number; sha256: string }> = [];
  for (const name of names) {
    const file = resolveInside(dir, name, 'weightsManifest paths', modelJson, { basename: false });
    const stat = await fs.stat(file).catch(() => null);
    if (!stat?.isFile()) {
      throw new InvalidArgumentError(
        'model',
        modelJson,
        `a model whose weight file ${name} exists (missing)`,
      );
    }
    files.push({ file: name, bytes: stat.size, sha256: await sha256File(file) });
  }
  const listing = files.map((f) => `${f.sha256}  ${f.file}\n`).join('');
  return { sha256: createHash('sha256').update(listing).digest('hex'), files };
}

/**
 * What keeps the selected layers off the structured path, one line each: the engine's entries
 * (src/kernel analyzeModel for the chosen parameters) explained with the report's per-layer
 * reasons, plus selected trainable layers the report marks outside that the engine did not reach
 * (it stops at a graph it cannot run call by call). Per-layer lines first, then topology problems.
 */
function explain(entries: string[], selected: ReadonlySet<string>, report: ModelSupportReport): string[] {
  const lines = unsupportedLines(report);
  const prefix = (l: { name: string; className: string }) => `${l.name} (${l.className})`;
  const layerLines = report.layers
    .filter(
      (l) =>
        selected.has(l.name) &&
        (l.role === 'outside' || entries.some((entry) => entry.startsWith(prefix(l)))),
    )
    .map(
      (l) =>
        lines.find((line) => line.startsWith(prefix(l))) ??
        entries.find((entry) => entry.startsWith(prefix(l)))!,
    );
  const other = entries.filter((entry) => !report.layers.some((l) => entry.startsWith(prefix(l))));
  return [...layerLines, ...other];
}

/** Options of {@link computeModelKernelStore}. */
export interface ComputeModelKernelStoreOptions extends StoreKernelOptions {
  /** The model: a model.json file or a directory holding one (with its weight files). */
  model: string;
  /** Points: `file:<csv|jsonl>` or `npy:<array file>` (see the module comment). */
  points: string;
  /** The store directory (a shard: `<out>.shards/shard-i-of-n/`). */
  out: string;
  /** Point-set name in the manifest; default from the points file's name. */
  name?: string;
  /** Label column of CSV/JSONL points (optional in the file). Default 'label'. */
  labelColumn?: string;
}

/** A model store written, with what kept the model off the structured path. */
export interface ComputedModelStore extends ComputedStore {
  /** The layer-by-layer support report of the model (all trainable parameters). */
  report: ModelSupportReport;
  /**
   * For the chosen parameter subset: what keeps the structured path from applying, one line per
   * layer ("name (ClassName): why") or topology problem; empty when 'structured' ran.
   */
  unsupported: string[];
}

/**
 * Load a user-supplied tfjs layers model, read the points, compute the eNTK and write the store at
 * `options.out` (kernel, inputs, labels, logits, probabilities, manifest with the model files'
 * sha256). Implementation 'auto' falls back to 'jacobian' when a selected layer or the topology is
 * outside the structured path; 'structured' then throws one UnsupportedError listing them.
 */
export async function computeModelKernelStore(
  options: ComputeModelKernelStoreOptions,
): Promise<ComputedModelStore> {
  const t0 = performance.now();
  if (typeof options.out !== 'string' || options.out === '') {
    throw new InvalidArgumentError('out', options.out, 'a directory for the kernel store');
  }
  const kind = options.kind ?? 'full';
  if (!['full', 'diagonal', 'trace'].includes(kind)) {
    throw new InvalidArgumentError('kind', kind, 'full, diagonal or trace');
  }
  parseModelPointSpec(options.points);
  const { model, report } = await loadUserModel(options.model);
  try {
    if (!report.supported) {
      const why = report.notes.filter((n) => n.startsWith('unsupported:')).map((n) => n.slice(13));
      throw new UnsupportedError(`${report.file}: no eNTK can be computed: ${why.join('; ')}`);
    }
    const analysis = analyzeModel(model, options.parameters ?? 'all', { logits: options.logits });
    const selected = new Set(analysis.selectedLayers.map((l) => l.name));
    const unsupported =
      analysis.unsupported.length === 0 ? [] : explain(analysis.unsupported, selected, report);
    if (options.implementation === 'structured' && unsupported.length > 0) {
      throw new UnsupportedError(
        `${report.file}: implementation 'structured' does not cover ${unsupported.join('; ')} (use --implementation auto or jacobian)`,
      );
    }
    const out = path.resolve(options.out);
    await checkStoreOutput(
      options.shard ? shardDir(out, options.shard.index, options.shard.count) : out,
      options,
    );
    const points = await loadModelPoints(options.points, analysis.inputShape, analysis.numOutputs, {
      labelColumn: options.labelColumn,
    });
    // Before any work (the logits of a streamed kernel are computed first).
    checkTokenIds(points.x, analysis.inputShape, analysis.tokenIds, 'points');
    const N = points.ids.length;
    checkShard(options.shard, N);
    const name = options.name ?? points.name;
    if (!/^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(name)) {
      throw new InvalidArgumentError('name', name, 'a name of letters, digits, ".", "_" and "-"');
    }
    const source = await modelStoreSource(report);
    const base: StoreDescription = {
      ...userModelDescription(source, model, report, analysis.inputShape, analysis.numOutputs),
      points: {
        name,
        spec: options.points,
        seed: null,
        count: N,
        ids: points.ids,
        sources: points.ids.map(() => 'file' as const),
      },
    };
    const store = await computeStore(
      model,
      points,
      base,
      path.resolve(options.out),
      { ...options, kind },
      t0,
    );
    return { ...store, report, unsupported };
  } finally {
    disposeModel(model); // with a shared layer's weights
  }
}
