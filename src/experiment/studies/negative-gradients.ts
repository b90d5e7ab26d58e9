/**
 * Study "negative gradients": gradient ascent (η < 0) on one example's own label — unlearning it —
 * and where its probability mass goes. The replicator update moves mass in proportion to the
 * current probabilities (π_i (φ_i − ⟨π, φ⟩)), so the mass taken from the ascended label is
 * "squeezed" mostly into the label that was already the most likely of the rest. Predicted
 * (POP-MU, POP-ODE, equation (1) step by step) vs the real network.
 */
import * as path from 'node:path';
import { z } from 'zod';
import type { Trajectory } from '../../dynamics/index.js';
import { InvalidArgumentError } from '../../errors.js';
import {
  jsonNumber,
  predictedVsActualFigure,
  type ReportSection,
  trajectoriesFigure,
} from '../../report/index.js';
import { signAgreement } from '../../util/index.js';
import {
  abs,
  checkpointOf,
  type ExperimentContext,
  finetuneStage,
  type Staged,
  type TrackedPoints,
  type TrainedRun,
} from '../pipeline.js';
import {
  loadPredictions,
  SIGN_THRESHOLD,
  scoreRecording,
  totalChange,
  writePredictions,
} from '../predict.js';
import { checkpointSelector, enabled, negative, nonNegInt, oneOf, posInt } from '../schema.js';
import { defineStudy, pointProbabilities, type StudyDefaults, type StudyRun } from '../study.js';

/** Where the mass went, for one trajectory (actual or predicted). */
export interface Squeeze {
  /** π(y | x) of the ascended example at the start and at the end. */
  labelStart: number;
  labelEnd: number;
  /** The most likely label other than y at the start. */
  top: number;
  /** π(top | x) at the start and end. */
  topStart: number;
  topEnd: number;
  /** (π_end(top) − π_start(top)) / (π_start(y) − π_end(y)): share of the lost mass that went to top. */
  shareToTop: number | null;
  /** Over the other tracked points: mean change of the probability of their most likely label. */
  meanTopGainOthers: number;
  /** Over the other tracked points: fraction whose most likely label gained probability. */
  fractionSqueezedOthers: number;
}

/** Squeezing numbers of a trajectory whose point 0 is the ascended example with label y. */
export function squeeze(tr: Trajectory, y: number): Squeeze {
  const { numPoints: P, numClasses: V } = tr;
  const last = (tr.steps.length - 1) * P * V;
  const p0 = (i: number, p = 0) => Math.exp(tr.logProbs[p * V + i]!);
  const pT = (i: number, p = 0) => Math.exp(tr.logProbs[last + p * V + i]!);
  let top = -1;
  for (let i = 0; i < V; i++) if (i !== y && (top < 0 || p0(i) > p0(top))) top = i;
  const lost = p0(y) - pT(y);
  let gain = 0;
  let squeezed = 0;
  for (let p = 1; p < P; p++) {
    let best = 0;
    for (let i = 1; i < V; i++) if (p0(i, p) > p0(best, p)) best = i;
    const d = pT(best, p) - p0(best, p);
    gain += d;
    if (d > 0) squeezed++;
  }
  return {
    labelStart: p0(y),
    labelEnd: pT(y),
    top,
    topStart: p0(top),
    topEnd: pT(top),
    shareToTop: lost > 0 ? (pT(top) - p0(top)) / lost : null,
    meanTopGainOthers: P > 1 ? gain / (P - 1) : 0,
    fractionSqueezedOthers: P > 1 ? squeezed / (P - 1) : 0,
  };
}

interface Analysis {
  /** The recording (with its predictions), relative to the experiment. */
  dir: string;
  example: string;
  label: number;
  top: number;
  /**
   * Not computed for the cumulative one-step path: its rows are not distributions (see
   * Predictions.oneStepPath), so probability shares on it mean nothing.
   */
  squeeze: Record<'actual' | 'POP-MU' | 'POP-ODE', Squeeze>;
  rTotal: { 'POP-MU': number | null; 'POP-ODE': number | null; 'one-step': number | null };
  /** Sign agreement of predicted vs actual Δ log π(y_example | x) over the other tracked points (POP-MU). */
  signAgreementOthers: number | null;
}

/** zod schema of `studies.negativeGradients`. */
const schema = z
  .object({
    enabled,
    /** Checkpoint to start from. Default 'last'. */
    checkpoint: checkpointSelector.default('last'),
    /** The example whose label is unlearned: an index into the finetune points or an id. Default 0. */
    example: oneOf('an index into the finetune points or an example id', [
      nonNegInt(),
      z.string().min(1),
    ]).default(0),
    /**
     * Learning rate (< 0: gradient ascent). Default −0.001. Ascent on one example feeds on itself
     * (the loss is unbounded): keep |η|·steps small, or the network's logits blow up.
     */
    learningRate: negative().optional(),
    /** Ascent steps. Default: the finetune steps. */
    steps: posInt().optional(),
    /** Record every k steps. Default: the finetune's recordEvery. */
    recordEvery: posInt().optional(),
  })
  .strict();

/** The resolved `studies.negativeGradients` block. */
export type NegativeGradientsStudyConfig = ReturnType<typeof resolve>;

function resolve(s: z.output<typeof schema>, { finetune }: StudyDefaults) {
  return {
    checkpoint: s.checkpoint,
    example: s.example,
    learningRate: s.learningRate ?? -0.001,
    steps: s.steps ?? finetune.steps,
    recordEvery: s.recordEvery ?? finetune.recordEvery,
  };
}

export async function runNegativeGradientsStudy(
  ctx: ExperimentContext,
  base: Staged<TrainedRun>,
  points: Staged<TrackedPoints>,
  cfg: NegativeGradientsStudyConfig,
): Promise<StudyRun> {
  const checkpoint = checkpointOf(base.result, cfg.checkpoint, 'studies.negativeGradients.checkpoint');
  const { finetuneIds, observeIds } = points.result;
  let example: string;
  if (typeof cfg.example === 'number') {
    if (cfg.example >= finetuneIds.length) {
      throw new InvalidArgumentError(
        'studies.negativeGradients.example',
        cfg.example,
        `an index into the ${finetuneIds.length} finetune points (0..${finetuneIds.length - 1}) or an example id`,
      );
    }
    example = finetuneIds[cfg.example]!;
  } else {
    example = cfg.example;
  }
  const others = [...finetuneIds, ...observeIds].filter((id) => id !== example);
  const settings = {
    learningRate: cfg.learningRate,
    steps: cfg.steps,
    batch: 'full' as const,
    recordEvery: cfg.recordEvery,
    refreshEvery: null,
  };
  const ft = await finetuneStage(
    ctx,
    'negative-gradients',
    base,
    checkpoint,
    { finetune: [example], observe: others },
    settings,
  );
  const analysis = await ctx.stages.run(
    'negative-gradients/analyse',
    { finetune: ft.key },
    async () => {
      await writePredictions(abs(ctx, ft.result.dir));
      const { recording, predictions } = await loadPredictions(abs(ctx, ft.result.dir));
      const actual = recording.trajectory;
      const y = recording.labels[0]!;
      const scores = scoreRecording(actual, predictions);
      // Sign agreement of the change of log π(y | x) at the other points.
      const V = actual.numClasses;
      const atLabel = (change: Float64Array) =>
        Array.from({ length: actual.numPoints - 1 }, (_, k) => change[(k + 1) * V + y]!);
      const agreement = signAgreement(
        atLabel(totalChange(predictions.trajectories['pop-mu']!)),
        atLabel(totalChange(actual)),
        SIGN_THRESHOLD,
      );
      const sq = squeeze(actual, y);
      return {
        dir: ft.result.dir,
        example,
        label: y,
        top: sq.top,
        squeeze: {
          actual: sq,
          'POP-MU': squeeze(predictions.trajectories['pop-mu']!, y),
          'POP-ODE': squeeze(predictions.trajectories['pop-ode']!, y),
        },
        rTotal: {
          'POP-MU': scores.methods['POP-MU']!.rTotal,
          'POP-ODE': scores.methods['POP-ODE']!.rTotal,
          'one-step': scores.methods['one-step']!.rTotal,
        },
        signAgreementOthers: jsonNumber(agreement),
      } satisfies Analysis;
    },
    { outputs: (r) => [path.join(abs(ctx, r.dir), 'comparison.json')] },
  );
  const r = analysis.result;
  const classNames = base.result.classNames;

  const section = async (): Promise<ReportSection> => {
    const { recording, predictions } = await loadPredictions(abs(ctx, r.dir));
    const actual = recording.trajectory;
    const mu = predictions.trajectories['pop-mu']!;
    const ode = predictions.trajectories['pop-ode']!;
    const V = actual.numClasses;
    const P = actual.numPoints;
    const N = 1;
    // The example and the two other points whose ascended-label probability moved most.
    const last = (actual.steps.length - 1) * P * V;
    const move = (p: number) =>
      Math.abs(
        Math.exp(actual.logProbs[last + p * V + r.label]!) - Math.exp(actual.logProbs[p * V + r.label]!),
      );
    const chosen = [
      0,
      ...Array.from({ length: P - N }, (_, k) => k + N)
        .sort((a, b) => move(b) - move(a))
        .slice(0, 2),
    ];
    const labelOfPoint = (p: number): number | undefined => {
      if (p === 0) return r.label;
      const id = others[p - 1]!;
      const fi = finetuneIds.indexOf(id);
      const y =
        fi >= 0 ? points.result.finetuneLabels[fi] : points.result.observeLabels[observeIds.indexOf(id)];
      return y !== undefined && y >= 0 ? y : undefined; // −1: an unlabelled point (a user's model)
    };
    const pointName = (p: number): string => {
      const y = labelOfPoint(p);
      return y === undefined ? others[p - 1]! : `${others[p - 1]} (label ${classNames[y]})`;
    };
    const trajectories = await trajectoriesFigure({
      id: 'negative-gradients-trajectories',
      steps: Float64Array.from(actual.steps),
      numLabels: V,
      labelNames: classNames,
      points: chosen.map((p) => ({
        name: p === 0 ? `ascended ${example} (label ${classNames[r.label]})` : pointName(p),
        trueLabel: labelOfPoint(p),
        labels: p === 0 ? [r.label, r.top] : undefined,
        series: [
          { method: 'actual', probabilities: pointProbabilities(actual, p) },
          { method: 'POP-MU', probabilities: pointProbabilities(mu, p) },
          { method: 'POP-ODE', probabilities: pointProbabilities(ode, p) },
        ],
      })),
      value: 'logProbability',
      title: `Gradient ascent on ${example}'s label ${classNames[r.label]}: where the mass goes`,
      note: `First panel: the ascended example, its label ${classNames[r.label]} and the most likely other label ${classNames[r.top]} at the start. Other panels: the tracked points whose probability of ${classNames[r.label]} moved most.`,
    });
    const scatter = await predictedVsActualFigure({
      id: 'negative-gradients-scatter',
      series: [
        { name: 'POP-MU', predicted: totalChange(mu), actual: totalChange(actual) },
        { name: 'POP-ODE', predicted: totalChange(ode), actual: totalChange(actual) },
      ],
      quantity: 'Δ log π under gradient ascent',
      itemDescription: `one (tracked point, label) pair: the change of log π over the ${cfg.steps} ascent steps`,
      title: 'Predicted vs actual Δ log π under gradient ascent',
    });
    const rows = (['actual', 'POP-MU', 'POP-ODE'] as const).map((m) => {
      const s = r.squeeze[m];
      return {
        key: m,
        label: m === 'actual' ? 'network' : m,
        values: {
          labelEnd: s.labelEnd,
          topEnd: s.topEnd,
          share: s.shareToTop,
          squeezed: s.fractionSqueezedOthers,
        },
      };
    });
    const a = r.squeeze.actual;
    const proportional = a.topStart / (1 - a.labelStart);
    return {
      id: 'negative-gradients',
      title: 'Negative gradients: unlearning one label',
      text: [
        `Gradient ascent (η = ${cfg.learningRate}, ${cfg.steps} steps) on the label ${classNames[r.label]} of ${example}, from ${checkpoint.id}, with the ${others.length} other tracked points watched. π(${classNames[r.label]}) fell from {labelStart} to {labelEnd}; of the mass it lost, a share of {shareActual} went to ${classNames[r.top]}, the most likely other label at the start (start probability {topStart}) — POP-MU predicts {shareMu}. Spreading the lost mass in proportion to the other labels' probabilities would give it only {proportional}.`,
        `This is the squeezing effect (docs/theory.md#the-polymatrix-game): the replicator update moves mass in proportion to the current probabilities, so an already likely label takes most of what the ascended label loses. On the other tracked points, POP-MU gets the sign of the change of log π(${classNames[r.label]} | x) right for a fraction {signAgreement} of them.`,
      ].join('\n\n'),
      numbers: {
        labelStart: a.labelStart,
        labelEnd: a.labelEnd,
        topStart: a.topStart,
        shareActual: jsonNumber(a.shareToTop),
        shareMu: jsonNumber(r.squeeze['POP-MU'].shareToTop),
        proportional: jsonNumber(proportional),
        signAgreement: jsonNumber(r.signAgreementOthers),
      },
      tables: [
        {
          id: 'squeezing',
          title: 'Where the mass goes, actual vs predicted',
          caption: `π(y): probability of the ascended label ${classNames[r.label]} of ${example} at the end (start ${a.labelStart.toPrecision(4)}); π(top): of ${classNames[r.top]} (start ${a.topStart.toPrecision(4)}). Share: part of the lost π(y) gained by top (spreading the mass in proportion to the other labels' probabilities would give ${proportional.toPrecision(3)}). Other points: the fraction of the other tracked points whose most likely label gained probability.`,
          rowHeader: 'trajectory',
          columns: [
            { key: 'labelEnd', label: 'π(y), end' },
            { key: 'topEnd', label: 'π(top), end' },
            { key: 'share', label: 'share of lost mass to top' },
            { key: 'squeezed', label: 'other points: fraction whose top label gained' },
          ],
          rows,
        },
      ],
      figures: [trajectories, scatter],
    };
  };

  return {
    name: 'negativeGradients',
    keys: [analysis.key],
    summary: [
      {
        key: 'negative-gradients-share',
        label: 'negative gradients: lost mass to top label (theory: POP-MU)',
        measured: jsonNumber(r.squeeze.actual.shareToTop),
        theory: jsonNumber(r.squeeze['POP-MU'].shareToTop),
      },
    ],
    section,
  };
}

/** The study module (registered in ./index.ts). */
export const negativeGradientsStudy = defineStudy({
  name: 'negativeGradients',
  title: 'negative gradients',
  schema,
  usesBase: true,
  runsOnModel: true,
  resolve,
  run: (ctx, config, base) => runNegativeGradientsStudy(ctx, base!.trained, base!.points, config),
});
