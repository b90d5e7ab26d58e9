/**
 * Study "theory vs reality at checkpoints": for several training checkpoints, finetune the real
 * network from the checkpoint and predict the same run from the kernel frozen there (one-step,
 * POP-MU, POP-ODE) and from kernels refreshed along the run; compare
 * (docs/theory.md#where-reality-departs), and follow how the kernel itself moves over training.
 */
import * as path from 'node:path';
import { z } from 'zod';
import { intervalChanges, predictorLabel } from '../../compare/index.js';
import { readFinetuneManifest, readRecordingKernel, storeBlocks } from '../../finetune/index.js';
import {
  errorOverStepsFigure,
  type Figure,
  jsonNumber,
  kernelDriftFigure,
  kernelHeatmapFigure,
  predictedVsActualFigure,
  type ReportSection,
  type ReportTable,
  type ScatterSeries,
  trajectoriesFigure,
} from '../../report/index.js';
import type { CheckpointInfo } from '../../train/index.js';
import { kernelDrift } from '../../util/index.js';
import {
  abs,
  checkpointOf,
  type ExperimentContext,
  type FinetuneResult,
  finetuneStage,
  heatmapStage,
  readStore,
  type Staged,
  type TrackedPoints,
  type TrainedRun,
} from '../pipeline.js';
import {
  loadPredictions,
  METHODS,
  type Method,
  ONE_STEP_PATH_LABEL,
  type RecordingScores,
  scoreRecording,
  totalChange,
  writePredictions,
} from '../predict.js';
import {
  checkpointSelector,
  enabled,
  type FinetuneSettings,
  finetuneOverride,
  finetuneWith,
  msg,
  oneOf,
  pointSpec,
  posInt,
} from '../schema.js';
import { defineStudy, pointProbabilities, type StudyDefaults, type StudyRun } from '../study.js';

/**
 * The report's sentence on refreshed kernels at the focus checkpoint, from the numbers: whether
 * POP-MU with K refreshed along the run (RMS log π error `refreshed`) beats POP-MU with K frozen at
 * the checkpoint (`popMu`). `refreshed` undefined: not refreshed at the focus checkpoint.
 */
export function refreshSentence(popMu: number, refreshed: number | undefined, anyRefreshed: boolean): string {
  if (refreshed === undefined) {
    return anyRefreshed
      ? 'The kernel was not refreshed along the run from this checkpoint.'
      : 'Set finetune.refreshEvery to also predict with kernels refreshed along the run.';
  }
  if (!(Number.isFinite(refreshed) && Number.isFinite(popMu)))
    return 'Refreshing the kernel along the run (piecewise-constant K_t): RMS {refreshedRmse} nats against POP-MU {popMuRmse} nats.';
  if (refreshed < popMu)
    return `Refreshing the kernel along the run (piecewise-constant K_t) closes ${popMu > 0 ? `${Math.round((100 * (popMu - refreshed)) / popMu)}% of ` : ''}the gap between POP-MU and the network: RMS {refreshedRmse} nats against {popMuRmse} nats with K frozen.`;
  return 'Refreshing the kernel along the run (piecewise-constant K_t) does not close the gap between POP-MU and the network here: RMS {refreshedRmse} nats against {popMuRmse} nats with K frozen.';
}

/** A method's trajectory as named in figure legends (the known labels keep their fixed colours). */
function seriesName(m: Method): string {
  return m === 'one-step' ? ONE_STEP_PATH_LABEL : predictorLabel(m);
}

/** A method's trajectory as labelled in tables. */
function methodLabel(m: Method): string {
  return m === 'pop-mu-refreshed' ? 'POP-MU, refreshed K' : seriesName(m);
}

/** Result of the analysis stage of one checkpoint. */
interface Analysis {
  /** The recording (with its predictions/ and comparison.json), relative to the experiment. */
  dir: string;
  scores: RecordingScores;
  hasRefreshed: boolean;
  loss: { start: number; end: number };
  paramDistance: number;
  /** Drift of the kernel over the finetune itself (last refresh vs step 0), when refreshed. */
  finetuneDrift: { step: number; relativeChange: number; distance: number } | null;
}

/** Result of the drift stage. */
interface DriftResult {
  reference: string;
  points: { id: string; step: number; relativeChange: number; kernelDistance: number }[];
}

/** zod schema of `studies.checkpoints`. */
const schema = z
  .object({
    enabled,
    /** Training checkpoints to study: 'all' or a list of selectors. Default 'all'. */
    checkpoints: oneOf("'all' or a non-empty list of checkpoints", [
      z.literal('all'),
      z.array(checkpointSelector).min(1, msg('at least one checkpoint')),
    ]).default('all'),
    /** The checkpoint shown in detail (scatter, trajectories, heatmap). Default 'last'. */
    focus: checkpointSelector.default('last'),
    /** Points of the class-sorted kernel heatmap (a trace kernel). Default 'train:per-class=8'. */
    heatmapPoints: pointSpec.default('train:per-class=8'),
    /** Tracked points drawn in the per-label trajectories figure. Default 3. */
    trajectoryPoints: posInt().max(12, msg('an integer between 1 and 12')).default(3),
    /** Finetune settings overriding the top-level `finetune`. */
    finetune: finetuneOverride.default({}),
  })
  .strict();

/** The resolved `studies.checkpoints` block. */
export type CheckpointsStudyConfig = ReturnType<typeof resolve>;

function resolve(s: z.output<typeof schema>, { finetune }: StudyDefaults) {
  return {
    checkpoints: s.checkpoints,
    focus: s.focus,
    heatmapPoints: s.heatmapPoints.trim(),
    trajectoryPoints: s.trajectoryPoints,
    finetune: finetuneWith(finetune, s.finetune as Partial<FinetuneSettings>),
  };
}

export async function runCheckpointsStudy(
  ctx: ExperimentContext,
  base: Staged<TrainedRun>,
  points: Staged<TrackedPoints>,
  cfg: CheckpointsStudyConfig,
): Promise<StudyRun> {
  const selected: CheckpointInfo[] =
    cfg.checkpoints === 'all'
      ? [...base.result.checkpoints]
      : cfg.checkpoints.map((sel, i) =>
          checkpointOf(base.result, sel, `studies.checkpoints.checkpoints[${i}]`),
        );
  const focus = checkpointOf(base.result, cfg.focus, 'studies.checkpoints.focus');
  const all = [...new Map([...selected, focus].map((c) => [c.id, c])).values()].sort(
    (a, b) => a.step - b.step,
  );
  const ids = { finetune: points.result.finetuneIds, observe: points.result.observeIds };

  const per: { checkpoint: CheckpointInfo; finetune: Staged<FinetuneResult>; analysis: Staged<Analysis> }[] =
    [];
  for (const checkpoint of all) {
    const ft = await finetuneStage(ctx, `checkpoints-${checkpoint.id}`, base, checkpoint, ids, cfg.finetune);
    const analysis = await ctx.stages.run(
      `checkpoints/analyse/${checkpoint.id}`,
      { finetune: ft.key },
      async () => {
        const dir = abs(ctx, ft.result.dir);
        await writePredictions(dir);
        const { recording, predictions } = await loadPredictions(dir);
        const kernels = recording.manifest.kernels;
        const last = kernels[kernels.length - 1]!;
        return {
          dir: ft.result.dir,
          scores: scoreRecording(recording.trajectory, predictions),
          hasRefreshed: predictions.trajectories['pop-mu-refreshed'] !== undefined,
          loss: { start: recording.loss[0]!, end: recording.loss[recording.loss.length - 1]! },
          paramDistance: recording.paramDistance[recording.paramDistance.length - 1]!,
          finetuneDrift: last.drift ? { step: last.step, ...last.drift.all } : null,
        } satisfies Analysis;
      },
      { outputs: (r) => [path.join(abs(ctx, r.dir), 'comparison.json')] },
    );
    per.push({ checkpoint, finetune: ft, analysis });
  }

  // Kernel drift over training: each checkpoint's kernel (at its finetune's step 0) vs the first.
  const drift = await ctx.stages.run(
    'checkpoints/drift',
    { finetunes: per.map((p) => p.finetune.key) },
    async () => {
      const blocks = async (ft: FinetuneResult) => {
        const rec = { dir: abs(ctx, ft.dir), manifest: await readFinetuneManifest(abs(ctx, ft.dir)) };
        const k = storeBlocks(await readRecordingKernel(rec, 0), ft.finetuneIds, ft.observeIds);
        return k.observe ? [k.train, k.observe] : [k.train];
      };
      const k0 = await blocks(per[0]!.finetune.result);
      const out: DriftResult = { reference: per[0]!.checkpoint.id, points: [] };
      for (const p of per) {
        const d = kernelDrift(k0, await blocks(p.finetune.result));
        out.points.push({
          id: p.checkpoint.id,
          step: p.checkpoint.step,
          relativeChange: d.relativeChange,
          kernelDistance: d.distance,
        });
      }
      return out;
    },
  );

  const heatmap = await heatmapStage(ctx, base, cfg.heatmapPoints, focus);
  const focusRun = per.find((p) => p.checkpoint.id === focus.id)!;
  const focusScores = focusRun.analysis.result.scores;

  const section = async (): Promise<ReportSection> => {
    const { recording, predictions } = await loadPredictions(abs(ctx, focusRun.analysis.result.dir));
    const actual = recording.trajectory;
    const methods = METHODS.filter((m) => m !== 'pop-mu-refreshed' || focusRun.analysis.result.hasRefreshed);
    // 'one-step': the cumulative teacher-forced path, not a distribution (see Predictions)
    const predicted = new Map(methods.map((m) => [m, predictions.trajectories[m]!]));
    const classNames = base.result.classNames;
    const V = actual.numClasses;
    const N = ids.finetune.length;
    const steps = Float64Array.from(actual.steps);
    const figures: Figure[] = [];
    const prefix = 'checkpoints-';
    const focusLabel = `${focus.id} (training step ${focus.step})`;

    // Total change over the finetune: predicted vs actual.
    const actualTotal = totalChange(actual);
    figures.push(
      await predictedVsActualFigure({
        id: `${prefix}total-change`,
        series: methods.map<ScatterSeries>((m) => ({
          name: seriesName(m),
          predicted: totalChange(predicted.get(m)!),
          actual: actualTotal,
        })),
        quantity: 'Δ log π over the finetune',
        itemDescription: `one (tracked point, label) pair: the change of log π from the checkpoint to the last of ${actual.steps[actual.steps.length - 1]} steps`,
        title: `Predicted vs actual Δ log π over the finetune from ${focus.id}`,
        note: `'${ONE_STEP_PATH_LABEL}' sums equation (1) over the recorded intervals, each from the actual state; POP-MU and POP-ODE run on their own from the checkpoint.`,
      }),
    );
    // Per-interval changes: equation (1).
    const stepSeries: ScatterSeries[] = [
      { name: 'one-step', predicted: predictions.increments['one-step']!, actual: intervalChanges(actual) },
    ];
    const oneStepRefreshed = predictions.increments['one-step-refreshed'];
    if (oneStepRefreshed) {
      stepSeries.push({
        name: 'refreshed',
        predicted: oneStepRefreshed,
        actual: stepSeries[0]!.actual,
      });
    }
    figures.push(
      await predictedVsActualFigure({
        id: `${prefix}per-step-change`,
        series: stepSeries,
        quantity: 'Δ log π per recorded interval',
        itemDescription: 'one (recorded interval, tracked point, label) triple',
        title: 'Equation (1): predicted vs actual Δ log π of each recorded interval (r = {r_one-step})',
        note: "Equation (1) is applied at the actual state at the start of each interval, with K frozen at the checkpoint ('one-step') or refreshed along the run ('refreshed').",
      }),
    );
    // Trajectories of chosen points: the finetune point and observation points that moved most.
    const moved = (p: number) => {
      let m = 0;
      for (let i = 0; i < V; i++)
        m = Math.max(
          m,
          Math.abs(
            Math.exp(actual.logProbs[(actual.steps.length - 1) * actual.numPoints * V + p * V + i]!) -
              Math.exp(actual.logProbs[p * V + i]!),
          ),
        );
      return m;
    };
    const byMovement = (from: number, to: number) =>
      Array.from({ length: to - from }, (_, k) => from + k).sort((a, b) => moved(b) - moved(a));
    const chosen = [
      ...byMovement(0, N).slice(0, 1),
      ...byMovement(N, actual.numPoints).slice(0, Math.max(0, cfg.trajectoryPoints - 1)),
    ].slice(0, cfg.trajectoryPoints);
    const trajectoryMethods: Method[] = [
      'pop-mu',
      'pop-ode',
      ...(focusRun.analysis.result.hasRefreshed ? (['pop-mu-refreshed'] as const) : []),
    ];
    // undefined: an unlabelled observation point (label −1, a user's model)
    const labelOf = (p: number): number | undefined => {
      const y = p < N ? points.result.finetuneLabels[p]! : points.result.observeLabels[p - N]!;
      return y >= 0 ? y : undefined;
    };
    const labelText = (p: number) => {
      const y = labelOf(p);
      return y === undefined ? '' : ` (label ${classNames[y]})`;
    };
    figures.push(
      await trajectoriesFigure({
        id: `${prefix}trajectories`,
        steps,
        numLabels: V,
        labelNames: classNames,
        points: chosen.map((p) => ({
          name: `${p < N ? 'finetune' : 'observed'} ${p < N ? ids.finetune[p] : ids.observe[p - N]}${labelText(p)}`,
          trueLabel: labelOf(p),
          series: [
            { method: 'actual', probabilities: pointProbabilities(actual, p) },
            ...trajectoryMethods.map((m) => ({
              method: predictorLabel(m),
              probabilities: pointProbabilities(predicted.get(m)!, p),
            })),
          ],
        })),
        title: `Per-label trajectories, finetune from ${focus.id}`,
        note: 'Shown: the finetune point and the observation points whose probabilities moved most.',
      }),
    );
    figures.push(
      await errorOverStepsFigure({
        id: `${prefix}error-over-steps`,
        steps,
        series: methods.map((m) => ({
          name: seriesName(m),
          values: focusScores.methods[predictorLabel(m)]!.perStep,
        })),
        yTitle: 'RMS of predicted − actual log π (nats)',
        errorDescription:
          'the root-mean-square difference of log π between predictor and network over the tracked points and labels',
        title: `Prediction error over the finetune from ${focus.id}`,
      }),
    );
    if (drift.result.points.length > 1) {
      figures.push(
        await kernelDriftFigure({
          id: `${prefix}kernel-drift`,
          checkpoints: drift.result.points.map((d) => ({
            step: d.step,
            relativeChange: d.relativeChange,
            kernelDistance: d.kernelDistance,
          })),
          referenceName: `the kernel at ${drift.result.reference}`,
          note: `Kernels over the ${actual.numPoints} tracked points (full V×V blocks).`,
        }),
      );
    }
    const store = await readStore(ctx, heatmap.result);
    figures.push(
      await kernelHeatmapFigure({
        id: `${prefix}kernel-heatmap`,
        kernel: store.kernel.data as Float32Array,
        size: store.manifest.points.count,
        classes: store.labels!.data as Int32Array,
        classNames,
        kernelDescription: `The trace eNTK tr K(x, x′)/V at ${focus.id} over ${store.manifest.points.count} ${base.result.model ? 'labelled tracked points' : `training points (${cfg.heatmapPoints})`}`,
        title: `Class-sorted eNTK at ${focus.id}`,
      }),
    );

    const rows = per.map((p) => {
      const s = p.analysis.result.scores;
      const d = drift.result.points.find((x) => x.id === p.checkpoint.id);
      return {
        key: p.checkpoint.id,
        label: `step ${p.checkpoint.step}`,
        values: {
          testAccuracy: p.checkpoint.metrics?.testAccuracy ?? null,
          lossStart: p.analysis.result.loss.start,
          lossEnd: p.analysis.result.loss.end,
          oneStepR: s.oneStepChange.pearson,
          popMuR: s.methods['POP-MU']!.rTotal,
          popMuRmse: s.methods['POP-MU']!.rmseLogProb,
          popOdeRmse: s.methods['POP-ODE']!.rmseLogProb,
          ...(s.methods.refreshed ? { refreshedRmse: s.methods.refreshed.rmseLogProb } : {}),
          drift: d?.relativeChange ?? null,
        },
      };
    });
    const anyRefreshed = per.some((p) => p.analysis.result.hasRefreshed);
    const byCheckpoint: ReportTable = {
      id: 'by-checkpoint',
      title: 'Prediction quality by training checkpoint',
      caption: `Finetune: ${cfg.finetune.steps} SGD steps, η = ${cfg.finetune.learningRate}, ${cfg.finetune.batch === 'full' ? 'full batch' : `minibatches of ${cfg.finetune.batch}`} on ${N} points; ${ids.observe.length} observation points tracked. r: Pearson correlation of predicted and actual Δ log π (one-step: per recorded interval; POP-MU: over the whole finetune). RMS: log π difference over steps, points and labels (nats). Drift: ‖K − K₀‖/‖K₀‖ against the kernel at ${drift.result.reference}.`,
      rowHeader: 'checkpoint',
      columns: [
        { key: 'testAccuracy', label: 'test accuracy' },
        { key: 'lossStart', label: 'finetune loss, start', unit: 'nats' },
        { key: 'lossEnd', label: 'finetune loss, end', unit: 'nats' },
        { key: 'oneStepR', label: 'one-step r' },
        { key: 'popMuR', label: 'POP-MU r' },
        { key: 'popMuRmse', label: 'POP-MU RMS', unit: 'nats' },
        { key: 'popOdeRmse', label: 'POP-ODE RMS', unit: 'nats' },
        ...(anyRefreshed ? [{ key: 'refreshedRmse', label: 'refreshed RMS', unit: 'nats' }] : []),
        { key: 'drift', label: 'kernel drift' },
      ],
      rows,
    };
    const methodsTable: ReportTable = {
      id: 'methods',
      title: `Predictors against the network, finetune from ${focusLabel}`,
      caption: `r: Pearson correlation of predicted and actual total Δ log π per (point, label). RMS and max: log π difference over all recorded steps, points and labels. KL: mean over tracked points of KL(actual ‖ predicted) at the last step. The ${ONE_STEP_PATH_LABEL} path restarts every interval from the network's state and is not a distribution, so RMS π and KL are not given for it.`,
      rowHeader: 'predictor',
      columns: [
        { key: 'rTotal', label: 'r (total Δ log π)' },
        { key: 'rmse', label: 'RMS log π', unit: 'nats' },
        { key: 'max', label: 'max |Δ| log π', unit: 'nats' },
        { key: 'rmseProb', label: 'RMS π' },
        { key: 'kl', label: 'final KL', unit: 'nats' },
      ],
      rows: methods.map((m) => {
        const s = focusScores.methods[predictorLabel(m)]!;
        return {
          key: predictorLabel(m),
          label: methodLabel(m),
          values: {
            rTotal: s.rTotal,
            rmse: s.rmseLogProb,
            max: s.maxLogProb,
            rmseProb: s.rmseProb,
            kl: s.finalKl,
          },
        };
      }),
    };
    const mu = focusScores.methods['POP-MU']!;
    return {
      id: 'checkpoints',
      title: 'Theory vs reality at checkpoints',
      text: [
        `The network was finetuned from ${all.length} training checkpoint(s) and each run was predicted from the eNTK frozen at its checkpoint. From ${focus.id}, equation (1) predicts the per-interval changes of log π with r = {oneStepR} (signs agree for {oneStepSign} of the entries), and POP-MU follows the whole run with r = {popMuR} and an RMS log π error of {popMuRmse} nats (POP-ODE: {popOdeRmse}).`,
        refreshSentence(mu.rmseLogProb, focusScores.methods.refreshed?.rmseLogProb, anyRefreshed),
        'The gap between the network and POP-MU is the laziness gap (the kernel moves and the network is not linear); the gap between POP-MU and POP-ODE is the discretisation gap (docs/theory.md#where-reality-departs).',
      ].join('\n\n'),
      numbers: {
        oneStepR: jsonNumber(focusScores.oneStepChange.pearson),
        oneStepSign: jsonNumber(focusScores.oneStepChange.signAgreement),
        popMuR: jsonNumber(mu.rTotal),
        popMuRmse: mu.rmseLogProb,
        popOdeRmse: focusScores.methods['POP-ODE']!.rmseLogProb,
        ...(focusScores.methods.refreshed
          ? { refreshedRmse: focusScores.methods.refreshed.rmseLogProb }
          : {}),
      },
      tables: [methodsTable, byCheckpoint],
      figures,
    };
  };

  return {
    name: 'checkpoints',
    keys: [...per.map((p) => p.analysis.key), drift.key, heatmap.key],
    summary: [
      {
        key: 'checkpoints-one-step-r',
        label: `one-step (eq. 1): r of per-step Δ log π, ${focus.id}`,
        measured: jsonNumber(focusScores.oneStepChange.pearson),
        theory: 1,
      },
      {
        key: 'checkpoints-pop-mu-r',
        label: `POP-MU: r of total Δ log π, ${focus.id}`,
        measured: jsonNumber(focusScores.methods['POP-MU']!.rTotal),
        theory: 1,
      },
      {
        key: 'checkpoints-pop-mu-rmse',
        label: `POP-MU: RMS log π error (nats), ${focus.id}`,
        measured: focusScores.methods['POP-MU']!.rmseLogProb,
        theory: 0,
      },
    ],
    section,
  };
}

/** The study module (registered in ./index.ts). */
export const checkpointsStudy = defineStudy({
  name: 'checkpoints',
  title: 'theory vs reality at checkpoints',
  schema,
  usesBase: true,
  runsOnModel: true,
  resolve,
  run: (ctx, config, base) => runCheckpointsStudy(ctx, base!.trained, base!.points, config),
});
