/**
 * Kernel analysis of a run: for every checkpoint's kernel store of one point set, the spectrum,
 * the alignment with the labels, how far the kernel moved (CKA and the drift measures of
 * src/compare), and how good a classifier the kernel is (kernel regression, and the linearised
 * network trained by cross-entropy flow from the checkpoint: with the full kernel of a full store,
 * with tr K/V ⊗ I_V of a trace store) next to the network itself. Writes
 *
 *     <run>/analysis/<point-set>/analysis.json    every number, per checkpoint (AnalysisResults)
 *     <run>/analysis/<point-set>/report.html      spectrum / alignment over training, accuracy table, per-layer contributions (option layers)
 *     <run>/analysis/<point-set>/results.json     the numbers shown in the report
 *     <run>/analysis/<point-set>/figures/         SVG, PNG, Vega-Lite spec of each figure
 *
 * Which matrix each measure uses: the spectrum and the kernel–target alignment use the stored
 * kernel (full [N·V, N·V] with the targets Y ⊗ I_V [N·V, V·V], target Gram YYᵀ ⊗ I_V, or trace
 * [N, N] with the one-hot targets Y [N, V]); a full kernel.npy is streamed
 * in row panels from the file on every pass (npyKernelMatrix's residency 'auto'). CKA, drift and kernel regression use the per-point scalar kernel tr K(x, x′)/V
 * ([N, N], in memory) — the trace kernel neural-tangents uses by default.
 */
import * as path from 'node:path';
import { EntkError, InvalidArgumentError, UnsupportedError } from '../errors.js';
import type { NtkLogits, NtkParameters } from '../kernel/index.js';
import {
  type KernelManifest,
  type KernelStoreEntry,
  listKernelStores,
  readStoreArray,
  verifyKernelStore,
} from '../kernel-store/index.js';
import { type Report, type ReportTable, writeReport } from '../report/index.js';
import { openRun, type Run } from '../train/index.js';
import { formatBytes, kernelDrift, memoryBudget, writeJsonAtomic } from '../util/index.js';
import {
  centeredAlignment,
  fullKernelTargetAlignment,
  kernelTargetAlignment,
  kernelTargetAlignmentDense,
} from './alignment.js';
import { overTrainingFigure } from './figures.js';
import { type LayerContribution, layerContributions } from './layers.js';
import {
  denseKernelMatrix,
  type KernelMatrix,
  kernelMatrixStats,
  npyKernelMatrix,
  usingKernelMatrix,
} from './matrix.js';
import {
  accuracy,
  crossEntropyFlow,
  crossEntropyLoss,
  type FlowOutputs,
  mseFlow,
  mseLoss,
  oneHot,
  oneHotKron,
} from './predict.js';
import { type KernelSpectrum, kernelSpectrum } from './spectrum.js';

/** Options of {@link analyzeRun}. */
export interface AnalyzeRunOptions {
  /** Point-set name (`<run>/kernels/<name>/`). Default: the run's only point set. */
  points?: string;
  /** Eigenvalues per checkpoint. Default 20. */
  k?: number;
  /** 'auto' | 'full' | 'lanczos' (see kernelSpectrum). Default 'auto'. */
  method?: 'auto' | 'full' | 'lanczos';
  /** Ridge of the kernel regression, relative to the mean diagonal of K(X, X). Default 1e-3. */
  ridge?: number;
  /** Time t = n·η of the linearised cross-entropy flow from the checkpoint. Default 10. */
  time?: number;
  /** Output directory. Default `<run>/analysis/<points>`. */
  out?: string;
  /** Check every kernel file's sha256 before reading it. Default true. */
  verify?: boolean;
  /** Bytes per row panel when streaming a kernel.npy. Default 4 MiB (npyKernelMatrix). */
  panelBytes?: number;
  /** Write report.html and figures (else only analysis.json). Default true. */
  report?: boolean;
  /**
   * Per-layer contributions (trace share and target alignment of every layer's scalar kernel, from
   * one computation of the structured factors at each checkpoint: needs the run's checkpoints and
   * the store's inputs). Default false.
   */
  layers?: boolean;
  /** Logits of the per-layer kernels (as the stores were computed with). Default 'output'. */
  logits?: NtkLogits;
  /** Progress messages. */
  log?: (message: string) => void;
}

/** Accuracy and loss of the network and the kernel predictors on the store's test points. */
export interface PredictorComparison {
  /** The network at the checkpoint (its logits in the store). */
  network: { testAccuracy: number; testLoss: number; trainAccuracy: number };
  /** Kernel ridge regression on one-hot targets from f₀ = 0 (MSE flow at t = ∞). */
  kernelRegression: { testAccuracy: number; testMse: number; trainAccuracy: number; ridge: number };
  /**
   * The linearised network from the checkpoint, cross-entropy flow on the training points for time t,
   * with the stored full kernel (`kernel: 'full'`, the network linearised at the checkpoint) or, for a
   * trace store, the scalar kernel tr K/V ⊗ I_V (`kernel: 'scalar'`, an approximation of it).
   */
  linearized: {
    time: number;
    testAccuracy: number;
    testLoss: number;
    trainAccuracy: number;
    kernel: 'full' | 'scalar';
  };
}

/** The analysis of one checkpoint's kernel. */
export interface CheckpointAnalysis {
  id: string;
  step: number;
  spectrum: KernelSpectrum;
  /** Centred kernel–target alignment of the stored kernel. */
  targetAlignment: number;
  /** Centred kernel–target alignment of the scalar kernel. */
  scalarTargetAlignment: number;
  /** CKA of the scalar kernel with the first checkpoint's, and with the previous one's. */
  ckaFirst: number;
  ckaPrevious: number | null;
  /** kernelDrift (src/compare) of the scalar kernel from the first checkpoint. */
  driftFromFirst: { relativeChange: number; distance: number };
  /** Relative change from the previous checkpoint per training step (kernel velocity). */
  velocity: number | null;
  /** Null when the point set lacks training or test points. */
  predictors: PredictorComparison | null;
  /** Per-layer contributions to the scalar kernel (option `layers`), else absent. */
  layers?: { layers: LayerContribution[]; total: { trace: number; targetAlignment: number } };
}

/** analysis.json */
export interface AnalysisResults {
  format: 'entk-kernel-analysis';
  run: string;
  pointSet: string;
  kernelKind: 'full' | 'trace';
  numPoints: number;
  numClasses: number;
  numTrain: number;
  numTest: number;
  options: { k: number; method: string; ridge: number; time: number };
  checkpoints: CheckpointAnalysis[];
}

/** The stored kernel of a store as a {@link KernelMatrix} (.npy: streamed in row panels, npyKernelMatrix's default). */
export async function storeKernelMatrix(
  dir: string,
  manifest: KernelManifest,
  options: { panelBytes?: number } = {},
): Promise<Required<KernelMatrix>> {
  const kind = manifest.kernel.kind;
  if (kind !== 'full' && kind !== 'trace') {
    throw new UnsupportedError(`${dir}: a '${kind}' kernel store (analysis needs a full or trace kernel)`);
  }
  if (manifest.shard)
    throw new UnsupportedError(`${dir}: a shard (merge the shards first: entk kernel merge)`);
  const entry = manifest.arrays.kernel!;
  if (entry.format === 'npy') {
    return npyKernelMatrix(path.join(dir, entry.file), { panelBytes: options.panelBytes });
  }
  const k = await readStoreArray(dir, manifest, 'kernel');
  return denseKernelMatrix(k.data as Float32Array | Float64Array, k.shape[0]!);
}

/** The scalar kernel tr K(x, x′)/V [N, N] of a full or trace kernel (one pass). */
export async function scalarKernel(
  matrix: KernelMatrix,
  V: number,
  kind: 'full' | 'trace',
): Promise<Float64Array> {
  if (kind === 'trace') {
    const out = new Float64Array(matrix.size * matrix.size);
    const n = matrix.size;
    await matrix.forEachPanel((start, rows, panel) => {
      for (let i = 0; i < rows * n; i++) out[start * n + i] = panel[i]!;
    });
    return out;
  }
  const nv = matrix.size;
  const N = nv / V;
  const out = new Float64Array(N * N);
  await matrix.forEachPanel((start, rows, panel) => {
    for (let r = 0; r < rows; r++) {
      const row = start + r;
      const a = Math.floor(row / V);
      const i = row % V;
      for (let b = 0; b < N; b++) out[a * N + b] = out[a * N + b]! + panel[r * nv + b * V + i]! / V;
    }
  });
  return out;
}

function subMatrix(k: Float64Array, n: number, rows: number[], cols: number[]): Float64Array {
  const out = new Float64Array(rows.length * cols.length);
  rows.forEach((r, a) => {
    cols.forEach((c, b) => {
      out[a * cols.length + b] = k[r * n + c]!;
    });
  });
  return out;
}

function pick(a: Float64Array | Float32Array, rows: number[], V: number): Float64Array {
  const out = new Float64Array(rows.length * V);
  rows.forEach((r, i) => {
    for (let j = 0; j < V; j++) out[i * V + j] = a[r * V + j]!;
  });
  return out;
}

/** Train and test point indices of a store (by source). */
function splitIndices(sources: string[]): { train: number[]; test: number[] } {
  return {
    train: sources.flatMap((s, i) => (s === 'train' ? [i] : [])),
    test: sources.flatMap((s, i) => (s === 'test' ? [i] : [])),
  };
}

/**
 * The blocks K(X, X) [N_tr·V, N_tr·V] and K(x, X) [M·V, N_tr·V] (point-major) of a full kernel, in one
 * pass over its row panels.
 */
async function fullBlocks(
  matrix: KernelMatrix,
  V: number,
  train: number[],
  test: number[],
): Promise<{ trainTrain: Float64Array; testTrain: Float64Array }> {
  const nv = matrix.size;
  const width = train.length * V;
  const trainTrain = new Float64Array(width * width);
  const testTrain = new Float64Array(test.length * V * width);
  const slot = new Map<number, { out: Float64Array; row: number }>();
  for (const [a, p] of train.entries()) slot.set(p, { out: trainTrain, row: a });
  for (const [a, p] of test.entries()) slot.set(p, { out: testTrain, row: a });
  await matrix.forEachPanel((start, rows, panel) => {
    for (let r = 0; r < rows; r++) {
      const target = slot.get(Math.floor((start + r) / V));
      if (!target) continue;
      const i = (start + r) % V;
      const base = (target.row * V + i) * width;
      train.forEach((q, b) => {
        for (let j = 0; j < V; j++) target.out[base + b * V + j] = panel[r * nv + q * V + j]!;
      });
    }
  });
  return { trainTrain, testTrain };
}

/** Compare the network with the kernel predictors on a store's train/test points. */
function comparePredictors(
  scalar: Float64Array,
  N: number,
  V: number,
  labels: Int32Array,
  logits: Float32Array | Float64Array,
  sources: string[],
  ridgeRelative: number,
  time: number,
  full: { trainTrain: Float64Array; testTrain: Float64Array } | null,
): PredictorComparison | null {
  const { train, test } = splitIndices(sources);
  if (train.length === 0 || test.length === 0) return null;
  const yTrain = train.map((i) => labels[i]!);
  const yTest = test.map((i) => labels[i]!);
  const trainTrain = subMatrix(scalar, N, train, train);
  const testTrain = subMatrix(scalar, N, test, train);
  let meanDiag = 0;
  for (let i = 0; i < train.length; i++) meanDiag += trainTrain[i * train.length + i]! / train.length;
  const ridge = ridgeRelative * meanDiag;
  const flow = mseFlow({ numClasses: V, trainTrain, testTrain, labels: yTrain }, { ridge });
  let kr: FlowOutputs;
  try {
    kr = flow.at(Number.POSITIVE_INFINITY);
  } finally {
    flow.dispose();
  }
  const f0Train = pick(logits, train, V);
  const f0Test = pick(logits, test, V);
  const netTest = new Float64Array(f0Test);
  const logSoftmaxRows = (z: Float64Array) => {
    const out = new Float64Array(z.length);
    for (let p = 0; p < z.length / V; p++) {
      let m = Number.NEGATIVE_INFINITY;
      for (let i = 0; i < V; i++) m = Math.max(m, z[p * V + i]!);
      let s = 0;
      for (let i = 0; i < V; i++) s += Math.exp(z[p * V + i]! - m);
      const l = m + Math.log(s);
      for (let i = 0; i < V; i++) out[p * V + i] = z[p * V + i]! - l;
    }
    return out;
  };
  // The linearised network: the full kernel when the store has it (docs/theory.md §POP-ODE), else
  // the scalar kernel ⊗ I_V.
  const ce = crossEntropyFlow(
    {
      numClasses: V,
      trainTrain: full?.trainTrain ?? trainTrain,
      testTrain: full?.testTrain ?? testTrain,
      labels: yTrain,
      initialTrain: f0Train,
      initialTest: f0Test,
    },
    { times: [time] },
  );
  return {
    network: {
      testAccuracy: accuracy(netTest, yTest, V),
      testLoss: crossEntropyLoss(logSoftmaxRows(netTest), yTest, V),
      trainAccuracy: accuracy(f0Train, yTrain, V),
    },
    kernelRegression: {
      testAccuracy: accuracy(kr.test, yTest, V),
      testMse: mseLoss(kr.test, oneHot(yTest, V), V),
      trainAccuracy: accuracy(kr.train, yTrain, V),
      ridge,
    },
    linearized: {
      time,
      testAccuracy: accuracy(ce.test, yTest, V),
      testLoss: crossEntropyLoss(ce.test, yTest, V),
      trainAccuracy: accuracy(ce.train, yTrain, V),
      kernel: full ? 'full' : 'scalar',
    },
  };
}

/**
 * Analyse every checkpoint's kernel of one point set of a run (module comment), write
 * analysis.json (and the report), and return the results.
 *
 * @example
 *   const { results } = await analyzeRun('runs/digits', { points: 'train-per-class-10-test-50' });
 *   results.checkpoints.map((c) => c.spectrum.top[0]);
 */
export async function analyzeRun(
  run: string,
  options: AnalyzeRunOptions = {},
): Promise<{ results: AnalysisResults; dir: string; report: string | null }> {
  const log = options.log ?? (() => undefined);
  const k = options.k ?? 20;
  const ridge = options.ridge ?? 1e-3;
  const time = options.time ?? 10;
  const method = options.method ?? 'auto';
  if (!(Number.isFinite(ridge) && ridge >= 0))
    throw new InvalidArgumentError('ridge', ridge, 'a finite number ≥ 0');
  if (!(Number.isFinite(time) && time >= 0))
    throw new InvalidArgumentError('time', time, 'a finite time ≥ 0');
  const all = await listKernelStores(run);
  const sets = [...new Set(all.map((e) => e.pointSet))];
  const pointSet = options.points ?? (sets.length === 1 ? sets[0] : undefined);
  if (pointSet === undefined || !sets.includes(pointSet)) {
    throw new InvalidArgumentError(
      'points',
      options.points,
      sets.length > 0
        ? `one of the run's point sets: ${sets.join(', ')}`
        : 'a run with kernel stores (entk kernel)',
    );
  }
  const entries: KernelStoreEntry[] = all.filter(
    (e) => e.pointSet === pointSet && (e.kind === 'full' || e.kind === 'trace'),
  );
  if (entries.length === 0) {
    throw new UnsupportedError(`point set ${pointSet}: no full or trace kernel stores to analyse`);
  }
  const first = entries[0]!.manifest;
  const kind = first.kernel.kind as 'full' | 'trace';
  const V = first.model.numOutputs;
  const N = first.points.count;
  for (const e of entries) {
    if (
      e.kind !== kind ||
      e.count !== N ||
      e.manifest.points.ids.join('\n') !== first.points.ids.join('\n')
    ) {
      throw new EntkError(
        `${e.dir}: the stores of point set ${pointSet} differ in kind or points; analyse them separately`,
      );
    }
  }
  const checkpoints: CheckpointAnalysis[] = [];
  const runHandle: Run | null = options.layers ? await openRun(run) : null;
  let scalarFirst: Float64Array | null = null;
  let scalarPrevious: Float64Array | null = null;
  let previousStep = 0;
  for (const entry of entries) {
    const { dir, manifest } = entry;
    log(`${entry.checkpointId}: reading ${dir}`);
    if (options.verify ?? true) await verifyKernelStore(dir);
    const labelsArray = await readStoreArray(dir, manifest, 'labels');
    const labels = labelsArray.data as Int32Array;
    const labelled = Array.from(labels).every((y) => y >= 0 && y < V);
    // Targets of the stored kernel (docs/theory.md §Kernel-target alignment): one-hot Y [N, V] for a
    // trace kernel; Y ⊗ I_V [N·V, V·V] for a full kernel (target Gram YYᵀ ⊗ I_V).
    const classes = labelled ? oneHot(labels, V) : undefined;
    const targets = labelled ? (kind === 'full' ? oneHotKron(labels, V) : classes) : undefined;
    const stored = await storeKernelMatrix(dir, manifest, options);
    const { train, test } = splitIndices(manifest.points.sources);
    const withPredictors = labelled && train.length > 0 && test.length > 0;
    const { spectrum, targetAlignment, scalar, full } = await usingKernelMatrix(stored, async (matrix) => {
      const stats = await kernelMatrixStats(matrix);
      const spectrum = await kernelSpectrum(matrix, { k, targets, method, stats });
      log(
        `${entry.checkpointId}: spectrum (${spectrum.method}, ${spectrum.passes} passes) λ₁ = ${spectrum.top[0]}`,
      );
      // A full kernel's class targets through their block structure (O(N²V²), not O(N²V⁴)).
      const targetAlignment = !targets
        ? Number.NaN
        : kind === 'full'
          ? await fullKernelTargetAlignment(matrix, labels, V, stats)
          : await kernelTargetAlignment(matrix, targets, stats);
      // The full blocks in float64 (and the flow operator's copy of them), when they fit in half the
      // memory budget; else the scalar kernel, and the results say so (linearized.kernel).
      const fullBytes = 2 * 8 * (train.length * V) * (train.length + test.length) * V;
      const useFull = kind === 'full' && withPredictors && fullBytes <= memoryBudget() / 2;
      if (kind === 'full' && withPredictors && !useFull)
        log(
          `${entry.checkpointId}: the full kernel blocks of the linearised network need ${formatBytes(fullBytes)}; using tr K/V ⊗ I_V`,
        );
      const full = useFull ? await fullBlocks(matrix, V, train, test) : null;
      return { spectrum, targetAlignment, scalar: await scalarKernel(matrix, V, kind), full };
    });
    const scalarTargetAlignment = classes ? await kernelTargetAlignmentDense(scalar, N, classes) : Number.NaN;
    scalarFirst ??= scalar;
    const drift = kernelDrift(scalarFirst, scalar);
    const velocity =
      scalarPrevious && entry.step > previousStep
        ? kernelDrift(scalarPrevious, scalar).relativeChange / (entry.step - previousStep)
        : null;
    const logits = labelled ? (await readStoreArray(dir, manifest, 'logits')).data : null;
    const predictors =
      labelled && logits
        ? comparePredictors(
            scalar,
            N,
            V,
            labels,
            logits as Float32Array,
            manifest.points.sources,
            ridge,
            time,
            full,
          )
        : null;
    let layers: CheckpointAnalysis['layers'];
    if (runHandle) {
      const inputs = await readStoreArray(dir, manifest, 'inputs');
      const model = await runHandle.loadModel(entry.checkpointId);
      try {
        layers = await layerContributions(
          model,
          { data: inputs.data as Float32Array, shape: inputs.shape },
          {
            output: 'trace',
            parameters: manifest.kernel.parameters as NtkParameters,
            logits: options.logits,
            targets: classes,
          },
        );
      } finally {
        model.dispose();
      }
      log(`${entry.checkpointId}: per-layer contributions of ${layers.layers.length} layers`);
    }
    checkpoints.push({
      id: entry.checkpointId,
      step: entry.step,
      spectrum,
      targetAlignment,
      scalarTargetAlignment,
      ckaFirst: centeredAlignment(scalarFirst, scalar, N),
      ckaPrevious: scalarPrevious ? centeredAlignment(scalarPrevious, scalar, N) : null,
      driftFromFirst: { relativeChange: drift.relativeChange, distance: drift.distance },
      velocity,
      predictors,
      ...(layers ? { layers } : {}),
    });
    scalarPrevious = scalar;
    previousStep = entry.step;
  }
  const sources = first.points.sources;
  const results: AnalysisResults = {
    format: 'entk-kernel-analysis',
    run,
    pointSet,
    kernelKind: kind,
    numPoints: N,
    numClasses: V,
    numTrain: sources.filter((s) => s === 'train').length,
    numTest: sources.filter((s) => s === 'test').length,
    options: { k, method, ridge, time },
    checkpoints,
  };
  const dir = options.out ?? path.join(run, 'analysis', pointSet);
  await writeJsonAtomic(path.join(dir, 'analysis.json'), results);
  let report: string | null = null;
  if (options.report ?? true) report = (await writeReport(dir, await analysisReport(results))).html;
  return { results, dir, report };
}

/** The participation ratio of a spectrum (analysis.json written before the field: `effectiveRank`). */
const participationRatio = (s: KernelSpectrum) => s.participationRatio ?? s.effectiveRank;

const finite = (x: number | null | undefined) =>
  x !== null && x !== undefined && Number.isFinite(x) ? x : null;

/** The report of an analysis: spectrum and alignment over training, the predictor table. */
export async function analysisReport(results: AnalysisResults): Promise<Report> {
  const cps = results.checkpoints;
  const steps = cps.map((c) => c.step);
  const logX = steps.length > 2 && steps[0] === 0 && steps[steps.length - 1]! > 20 * (steps[1]! + 1);
  const K = Math.min(...cps.map((c) => c.spectrum.top.length));
  const shownEigen = [0, 1, 4, 9, 19].filter((j) => j < K);
  const spectrumFigure = await overTrainingFigure({
    id: 'spectrum-over-training',
    title: 'Top eigenvalues of the eNTK over training',
    steps,
    logX,
    logY: true,
    yTitle: 'eigenvalue λ_j',
    description: `Eigenvalues λ_1, λ_2, … of the ${results.kernelKind} kernel (${results.kernelKind === 'full' ? `${results.numPoints}·${results.numClasses}` : results.numPoints} rows)`,
    series: shownEigen.map((j) => ({
      name: `λ_${j + 1}`,
      values: cps.map((c) => finite(c.spectrum.top[j])),
    })),
  });
  const rankFigure = await overTrainingFigure({
    id: 'effective-rank-over-training',
    title: 'Participation ratio and effective rank over training',
    steps,
    logX,
    yTitle: 'number of directions',
    description:
      'Participation ratio (tr K)²/‖K‖²_F and, where the whole spectrum was computed, the entropy effective rank exp(−Σ p log p), p = λ/Σλ (docs/theory.md §Effective rank): how many directions the kernel spreads over',
    series: [
      { name: 'participation ratio', values: cps.map((c) => finite(participationRatio(c.spectrum))) },
      ...(cps.some((c) => finite(c.spectrum.entropyEffectiveRank) !== null)
        ? [
            {
              name: 'effective rank (entropy)',
              values: cps.map((c) => finite(c.spectrum.entropyEffectiveRank)),
            },
          ]
        : []),
    ],
  });
  const energyIndex = Math.min(K, 10) - 1;
  const energyFigure = await overTrainingFigure({
    id: 'label-energy-over-training',
    title: 'Label energy in the top eigenvectors',
    steps,
    logX,
    yTitle: 'fraction of centred label energy',
    description: `Fraction of the centred one-hot label signal in the span of the top eigenvectors`,
    series: [0, 2, energyIndex]
      .filter((j, i, a) => a.indexOf(j) === i && j < K)
      .map((j) => ({ name: `top ${j + 1}`, values: cps.map((c) => finite(c.spectrum.labelEnergy?.[j])) })),
  });
  const alignmentFigure = await overTrainingFigure({
    id: 'alignment-over-training',
    title: 'Alignment and movement of the kernel over training',
    steps,
    logX,
    yTitle: 'alignment / distance (dimensionless)',
    description:
      'Centred kernel–target alignment (Cortes et al. 2012), CKA with the first checkpoint, and kernel distance 1 − cos(K_0, K_t) of the scalar kernel',
    series: [
      { name: 'kernel–target alignment', values: cps.map((c) => finite(c.targetAlignment)) },
      { name: 'CKA with first checkpoint', values: cps.map((c) => finite(c.ckaFirst)) },
      { name: 'kernel distance from first', values: cps.map((c) => finite(c.driftFromFirst.distance)) },
    ],
  });
  const withPredictors = cps.filter((c) => c.predictors);
  // analysis.json written before the field existed always used the scalar kernel
  const linearizedKernel = withPredictors[0]?.predictors?.linearized.kernel ?? 'scalar';
  const linearizedText =
    linearizedKernel === 'full'
      ? 'the network linearised at the checkpoint (its full eNTK)'
      : 'the scalar-kernel approximation of the network linearised at the checkpoint (kernel tr K/V ⊗ I_V, the output coupling of the eNTK dropped)';
  const figures = [spectrumFigure, rankFigure, energyFigure];
  const accuracyFigure =
    withPredictors.length > 0
      ? await overTrainingFigure({
          id: 'accuracy-over-training',
          title: 'Kernel predictors vs the network: test accuracy',
          steps,
          logX,
          yTitle: 'test accuracy (store test points)',
          description: `Test accuracy on the ${results.numTest} test points of the network, of kernel ridge regression with the checkpoint's eNTK, and of ${linearizedText} trained from the checkpoint (cross-entropy flow to t = ${results.options.time})`,
          series: [
            { name: 'network', values: cps.map((c) => finite(c.predictors?.network.testAccuracy)) },
            {
              name: 'kernel regression',
              values: cps.map((c) => finite(c.predictors?.kernelRegression.testAccuracy)),
            },
            {
              name:
                linearizedKernel === 'full' ? 'linearised (CE flow)' : 'linearised, scalar kernel (CE flow)',
              values: cps.map((c) => finite(c.predictors?.linearized.testAccuracy)),
            },
          ],
        })
      : null;
  const table: ReportTable = {
    id: 'predictors',
    title: 'eNTK predictors vs the network at each checkpoint',
    caption: `Test points of the point set (${results.numTest}); kernel regression trained on its ${results.numTrain} training points (one-hot targets, ridge ${results.options.ridge} × mean diagonal, f₀ = 0); linearised: ${linearizedText}, cross-entropy gradient flow on the training points to t = ${results.options.time}.`,
    rowHeader: 'checkpoint',
    columns: [
      { key: 'networkAccuracy', label: 'network acc.' },
      { key: 'kernelAccuracy', label: 'kernel regr. acc.' },
      { key: 'linearizedAccuracy', label: 'linearised acc.' },
      { key: 'networkLoss', label: 'network CE', unit: 'nats' },
      { key: 'linearizedLoss', label: 'linearised CE', unit: 'nats' },
      { key: 'kernelMse', label: 'kernel regr. MSE' },
      { key: 'targetAlignment', label: 'target alignment' },
      { key: 'participationRatio', label: 'participation ratio' },
      { key: 'entropyEffectiveRank', label: 'effective rank (entropy)' },
    ],
    rows: cps.map((c) => ({
      key: c.id,
      label: `step ${c.step}`,
      values: {
        networkAccuracy: finite(c.predictors?.network.testAccuracy),
        kernelAccuracy: finite(c.predictors?.kernelRegression.testAccuracy),
        linearizedAccuracy: finite(c.predictors?.linearized.testAccuracy),
        networkLoss: finite(c.predictors?.network.testLoss),
        linearizedLoss: finite(c.predictors?.linearized.testLoss),
        kernelMse: finite(c.predictors?.kernelRegression.testMse),
        targetAlignment: finite(c.targetAlignment),
        participationRatio: finite(participationRatio(c.spectrum)),
        entropyEffectiveRank: finite(c.spectrum.entropyEffectiveRank),
      },
    })),
  };
  const layerSection = await layersSection(cps, steps, logX);
  return {
    title: `Kernel analysis: ${results.pointSet}`,
    subtitle: `${results.run} — ${cps.length} checkpoints, ${results.kernelKind} kernel, N = ${results.numPoints}, V = ${results.numClasses}`,
    meta: { run: results.run, pointSet: results.pointSet, kernelKind: results.kernelKind },
    sections: [
      {
        id: 'spectrum',
        title: 'Spectrum over training',
        text: 'Top eigenvalues (block Lanczos with full reorthogonalisation, or a full decomposition for small kernels), the participation ratio (tr K)²/‖K‖²_F and the entropy effective rank (docs/theory.md §Effective rank; with a full decomposition only), and the fraction of the centred label signal in the top eigenvectors.',
        figures,
      },
      {
        id: 'alignment',
        title: 'Alignment and kernel movement over training',
        text: 'Centred kernel–target alignment of the stored kernel; CKA and kernel distance of the scalar kernel tr K/V with respect to the first checkpoint.',
        figures: [alignmentFigure],
      },
      {
        id: 'predictors',
        title: 'Kernel predictors vs the network',
        tables: [table],
        figures: accuracyFigure ? [accuracyFigure] : [],
      },
      ...(layerSection ? [layerSection] : []),
    ],
  };
}

/** Per-layer trace shares and alignments over training, and the last checkpoint's table. */
async function layersSection(cps: CheckpointAnalysis[], steps: number[], logX: boolean) {
  const last = [...cps].reverse().find((c) => c.layers);
  if (!last) return null;
  const names = last.layers!.layers.map((l) => l.name);
  const series = (value: (l: LayerContribution) => number) =>
    names.map((name) => ({
      name,
      values: cps.map((c) => {
        const layer = c.layers?.layers.find((l) => l.name === name);
        return layer ? finite(value(layer)) : null;
      }),
    }));
  const share = await overTrainingFigure({
    id: 'layer-trace-share-over-training',
    title: 'Per-layer share of the kernel over training',
    steps,
    logX,
    yTitle: 'tr K_ℓ / tr K',
    description:
      'Fraction of the trace of the scalar kernel tr K/V contributed by each layer ℓ (K = Σ_ℓ K_ℓ: the shares sum to 1)',
    series: series((l) => l.traceShare),
  });
  const alignment = await overTrainingFigure({
    id: 'layer-alignment-over-training',
    title: 'Per-layer kernel–target alignment over training',
    steps,
    logX,
    yTitle: 'centred alignment A(K_ℓ, YYᵀ)',
    description: "Centred kernel–target alignment of each layer's scalar kernel with the one-hot labels",
    series: series((l) => l.targetAlignment),
  });
  const table: ReportTable = {
    id: 'layers',
    title: `Per-layer contributions at step ${last.step}`,
    caption:
      "Each layer's kernel K_ℓ = J_ℓ J_ℓᵀ (its parameters only), from one computation of the structured factors; scalar kernel tr K/V on the point set.",
    rowHeader: 'layer',
    columns: [
      { key: 'parameters', label: 'parameters' },
      { key: 'traceShare', label: 'share of tr K' },
      { key: 'targetAlignment', label: 'target alignment' },
    ],
    rows: last.layers!.layers.map((l) => ({
      key: l.name,
      label: `${l.name} (${l.className}, ${l.rule})`,
      values: {
        parameters: l.parameters,
        traceShare: finite(l.traceShare),
        targetAlignment: finite(l.targetAlignment),
      },
    })),
  };
  return {
    id: 'layers',
    title: 'Per-layer contributions',
    text: "The kernel is a sum over layers, K = Σ_ℓ J_ℓ J_ℓᵀ: how much of it each layer carries (share of the trace) and how well each layer's kernel aligns with the labels.",
    tables: [table],
    figures: [share, alignment],
  };
}
