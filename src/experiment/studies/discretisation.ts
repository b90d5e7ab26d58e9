/**
 * Study "discretisation vs step size": POP-MU (discrete steps of size η) against POP-ODE (the
 * continuous-time replicator flow) from the same frozen kernel, over a horizon t = n·η held fixed
 * while η shrinks. The note's theorem: ‖Z(t_n) − Z_n‖ ≤ C|η|, a log–log slope of 1 (docs/theory.md#check-6-pop-mu-converges-to-pop-ode).
 */

import { z } from 'zod';
import { discretisationGap, trajectoryErrors } from '../../compare/index.js';
import { popMu, popOde } from '../../dynamics/index.js';
import { InvalidArgumentError } from '../../errors.js';
import { operatorFromStore } from '../../finetune/index.js';
import {
  discretisationVsStepSizeFigure,
  errorOverStepsFigure,
  jsonNumber,
  type ReportSection,
} from '../../report/index.js';
import { fitLogLog } from '../../util/index.js';
import {
  checkpointOf,
  type ExperimentContext,
  kernelStage,
  readStore,
  type Staged,
  storeLogits,
  type TrackedPoints,
  type TrainedRun,
} from '../pipeline.js';
import { checkpointSelector, enabled, msg, positive } from '../schema.js';
import { defineStudy, type StudyDefaults, type StudyRun } from '../study.js';

/** One step size's result. */
interface StepSizeResult {
  learningRate: number;
  /** Steps n = round(time / η). */
  steps: number;
  /** max over steps, points and labels of |log π_MU − log π_ODE| (nats). */
  maxLogProb: number;
  /** max over steps of ‖Z_n − Z(t_n)‖ (stacked probabilities, the theorem's norm). */
  maxProbNorm: number;
  /** Time t = n·η of each recorded step, and the per-step max |Δ log π|. */
  times: number[];
  curve: number[];
}

/** zod schema of `studies.discretisation`. */
const schema = z
  .object({
    enabled,
    /** Step sizes η (> 0), at least two, e.g. [0.4, 0.2, 0.1, 0.05, 0.025]. */
    learningRates: z
      .array(positive(), msg('a list of positive numbers'))
      .min(2, msg('at least two step sizes')),
    /** Horizon t = n·η at which POP-MU and POP-ODE are compared (steps n = t/η). Default: the finetune's steps × its η. */
    time: positive().optional(),
    /** Checkpoint whose kernel is used. Default 'last'. */
    checkpoint: checkpointSelector.default('last'),
    /** POP-ODE tolerances (tight, so that solver error stays far below the O(η) gap). Defaults 1e-10, 1e-12. */
    rtol: positive().default(1e-10),
    atol: positive().default(1e-12),
  })
  .strict();

/** The resolved `studies.discretisation` block. */
export type DiscretisationStudyConfig = ReturnType<typeof resolve>;

function resolve(s: z.output<typeof schema>, { finetune }: StudyDefaults) {
  if (new Set(s.learningRates).size !== s.learningRates.length) {
    throw new InvalidArgumentError(
      'studies.discretisation.learningRates',
      s.learningRates,
      'distinct step sizes',
    );
  }
  return {
    learningRates: [...s.learningRates].sort((a, b) => b - a),
    time: s.time ?? finetune.steps * Math.abs(finetune.learningRate),
    checkpoint: s.checkpoint,
    rtol: s.rtol,
    atol: s.atol,
  };
}

export async function runDiscretisationStudy(
  ctx: ExperimentContext,
  base: Staged<TrainedRun>,
  points: Staged<TrackedPoints>,
  cfg: DiscretisationStudyConfig,
): Promise<StudyRun> {
  const checkpoint = checkpointOf(base.result, cfg.checkpoint, 'studies.discretisation.checkpoint');
  const kernel = await kernelStage(ctx, base, points, checkpoint);
  const analysis = await ctx.stages.run(
    'discretisation/analyse',
    { kernel: kernel.key, learningRates: cfg.learningRates, time: cfg.time, rtol: cfg.rtol, atol: cfg.atol },
    async () => {
      const store = await readStore(ctx, kernel.result);
      const { finetuneIds, observeIds, finetuneLabels } = points.result;
      const op = operatorFromStore(store, finetuneIds, observeIds);
      const problem = {
        numClasses: store.manifest.model.numOutputs,
        labels: finetuneLabels,
        initialLogits: storeLogits(store, [...finetuneIds, ...observeIds]),
      };
      ctx.log(
        `discretisation: POP-MU vs POP-ODE at ${cfg.learningRates.length} step sizes, horizon t = ${cfg.time}`,
      );
      const out: StepSizeResult[] = [];
      try {
        for (const eta of cfg.learningRates) {
          const n = Math.max(1, Math.round(cfg.time / eta));
          const record = Array.from({ length: n + 1 }, (_, k) => k);
          const steps = { learningRate: eta, steps: n, record };
          const mu = popMu(op, problem, steps);
          const ode = popOde(op, problem, { ...steps, rtol: cfg.rtol, atol: cfg.atol }).trajectory;
          const errors = trajectoryErrors(mu, ode);
          const gap = discretisationGap(mu, ode);
          out.push({
            learningRate: eta,
            steps: n,
            maxLogProb: errors.logProb.overall.max,
            maxProbNorm: gap.max.probNorm,
            times: record.map((k) => k * eta),
            curve: errors.logProb.perStep.map((e) => e.max),
          });
        }
      } finally {
        op.dispose();
      }
      return out;
    },
  );
  const results = analysis.result;
  const etas = results.map((r) => r.learningRate);
  const errors = results.map((r) => r.maxLogProb);
  let slope: number | null = null;
  let probSlope: number | null = null;
  try {
    slope = fitLogLog(etas, errors).slope;
    probSlope = fitLogLog(
      etas,
      results.map((r) => r.maxProbNorm),
    ).slope;
  } catch {
    // fewer than two positive errors
  }

  const section = async (): Promise<ReportSection> => {
    const slopeFigure = await discretisationVsStepSizeFigure({
      id: 'discretisation-vs-step-size',
      etas,
      errors,
      yTitle: 'POP-MU vs POP-ODE, max |Δ log π| up to t (nats)',
      note: `Same kernel (${checkpoint.id}) and start for every η; the horizon t = n·η ≈ ${cfg.time} is fixed, so smaller steps take more of them.`,
    });
    const overTime = await errorOverStepsFigure({
      id: 'discretisation-over-time',
      // t = 0 is left out: both start from the same state (log axis).
      steps: Float64Array.from(results[results.length - 1]!.times.slice(1)),
      series: results.map((r) => ({
        name: `η = ${r.learningRate}`,
        values: r.curve.slice(1),
        steps: r.times.slice(1),
      })),
      yTitle: 'max |log π_MU − log π_ODE| (nats)',
      stepTitle: 'time t = n·η',
      xName: 'time t = n·η',
      subject:
        'Gap between the two predictors POP-MU and POP-ODE from the same frozen kernel (no network in this figure)',
      errorDescription:
        'the largest log π difference between POP-MU and POP-ODE over the tracked points and labels up to each time, one line per step size η',
      reading:
        'Lower is better; theory (docs/theory.md#from-pop-mu-to-pop-ode) bounds the gap by C|η|, so halving η should halve a line.',
      title: 'Discretisation gap along the run, by step size',
      logY: true,
    });
    return {
      id: 'discretisation',
      title: 'Discretisation vs step size',
      text: [
        `POP-MU (the discrete multiplicative update) and POP-ODE (the replicator flow it discretises) were run from the same kernel frozen at ${checkpoint.id}, on ${points.result.finetuneIds.length} finetune and ${points.result.observeIds.length} observation points, for ${etas.length} step sizes with the horizon t = n·η fixed at ${cfg.time}.`,
        "Their largest log π difference scales as η^{slope} (the stacked-probability norm of the theorem as η^{probSlope}); the note's theorem (docs/theory.md#from-pop-mu-to-pop-ode), ‖Z(t_n) − Z_n‖ ≤ C|η|, predicts slope 1: halving the step halves the gap.",
      ].join('\n\n'),
      numbers: { slope: jsonNumber(slope), probSlope: jsonNumber(probSlope) },
      tables: [
        {
          id: 'by-step-size',
          title: 'POP-MU vs POP-ODE by step size',
          caption: `Steps n = t/η; errors are maxima over the steps 0..n, the ${points.result.finetuneIds.length + points.result.observeIds.length} tracked points and the labels. Ratio: the error at the previous (larger) η divided by this one (2 for a halving η under O(η)).`,
          rowHeader: 'η',
          columns: [
            { key: 'steps', label: 'steps n' },
            { key: 'maxLogProb', label: 'max |Δ log π|', unit: 'nats' },
            { key: 'maxProbNorm', label: 'max ‖Z_n − Z(t_n)‖' },
            { key: 'ratio', label: 'ratio to previous' },
          ],
          rows: results.map((r, i) => ({
            key: `eta-${i}`,
            label: String(r.learningRate),
            values: {
              steps: r.steps,
              maxLogProb: r.maxLogProb,
              maxProbNorm: r.maxProbNorm,
              ratio: i > 0 ? results[i - 1]!.maxLogProb / r.maxLogProb : null,
            },
          })),
        },
      ],
      figures: [slopeFigure, overTime],
    };
  };

  return {
    name: 'discretisation',
    keys: [analysis.key],
    summary: [
      {
        key: 'discretisation-slope',
        label: 'discretisation: slope of MU–ODE gap vs η',
        measured: jsonNumber(slope),
        theory: 1,
      },
    ],
    section,
  };
}

/** The study module (registered in ./index.ts). */
export const discretisationStudy = defineStudy({
  name: 'discretisation',
  title: 'discretisation vs step size',
  schema,
  usesBase: true,
  runsOnModel: true,
  resolve,
  run: (ctx, config, base) => runDiscretisationStudy(ctx, base!.trained, base!.points, config),
});
