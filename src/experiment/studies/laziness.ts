/**
 * Study "laziness vs width": the same finetune (same data, points, η, steps) on MLPs of growing
 * hidden width under the NTK parameterisation; the gap between the real network and POP-MU (kernel
 * frozen at the start) against the width on log–log axes. Lazy-training theory (Lee et al. 2019)
 * bounds the gap by O(width^−1/2) (docs/theory.md#check-7-laziness-gap-shrinks-with-width).
 */

import { z } from 'zod';
import { lazinessGap } from '../../compare/index.js';
import { InvalidArgumentError } from '../../errors.js';
import { ACTIVATIONS } from '../../model/index.js';
import {
  errorOverStepsFigure,
  jsonNumber,
  lazinessVsWidthFigure,
  type ReportSection,
} from '../../report/index.js';
import { resolveTrainConfig, type TrainConfig, toConfigInput } from '../../train/index.js';
import { fitLogLog } from '../../util/index.js';
import {
  abs,
  checkpointOf,
  type ExperimentContext,
  finetuneStage,
  type Staged,
  type TrackedPoints,
  trainStage,
} from '../pipeline.js';
import { loadPredictions, scoreRecording, writePredictions } from '../predict.js';
import { enabled, type FinetuneSettings, finetuneOverride, finetuneWith, msg, posInt } from '../schema.js';
import { defineStudy, type StudyDefaults, type StudyRun } from '../study.js';

/** Result of one width's analysis stage. */
interface WidthAnalysis {
  width: number;
  parameters: number;
  steps: number[];
  /** RMS log π difference network vs POP-MU per recorded step, and at the end / its maximum. */
  gapCurve: number[];
  gapFinal: number;
  gapMax: number;
  /** ‖Z − Z′‖ (probabilities) at the end. */
  probNormFinal: number;
  popMuR: number | null;
  popOdeRmse: number;
  loss: { start: number; end: number };
  paramDistance: number;
  /** Kernel drift over the finetune (last refresh vs start), when refreshed. */
  finetuneDrift: number | null;
}

/** The training configuration of one width: the base run's data, split and seed, an NTK-parameterised MLP. */
export function widthTrainConfig(base: TrainConfig, cfg: LazinessStudyConfig, width: number): TrainConfig {
  const input = toConfigInput(base) as Record<string, unknown>;
  delete input.epochs;
  delete input.evalEvery;
  return resolveTrainConfig({
    ...input,
    model: {
      kind: 'mlp',
      widths: Array.from({ length: cfg.depth }, () => width),
      activation: cfg.activation,
      parameterization: 'ntk',
    },
    // SGD at the NTK-parameterisation default rate (the base run's rate is for its own model).
    optimizer: { name: 'sgd' },
    steps: cfg.trainSteps,
    checkpoints: { every: cfg.trainSteps },
  } as never);
}

/** zod schema of `studies.laziness`. */
const schema = z
  .object({
    enabled,
    /** Hidden widths (units per layer), e.g. [64, 256, 1024, 4096]: at least two. */
    widths: z.array(posInt(), msg('a list of positive integers')).min(2, msg('at least two widths')),
    /** Hidden layers per network. Default 2. */
    depth: posInt().max(8, msg('an integer between 1 and 8')).default(2),
    /** Hidden non-linearity. Default 'relu'. */
    activation: z.enum(ACTIVATIONS, msg(`one of ${ACTIVATIONS.join(', ')}`)).default('relu'),
    /** Finetune from the initial weights ('first', default: the lazy-training setting) or after `trainSteps` of training ('last'). */
    checkpoint: z.enum(['first', 'last'], msg("'first' or 'last'")).default('first'),
    /** Training steps of each width's run before finetuning (used with checkpoint 'last'). Default 1. */
    trainSteps: posInt().default(1),
    /** Finetune settings overriding the top-level `finetune` (η in NTK parameterisation is typically ~10× the standard one). */
    finetune: finetuneOverride.default({}),
  })
  .strict();

/** The resolved `studies.laziness` block. */
export type LazinessStudyConfig = ReturnType<typeof resolve>;

function resolve(s: z.output<typeof schema>, { finetune }: StudyDefaults) {
  const widths = [...s.widths].sort((a, b) => a - b);
  if (new Set(widths).size !== widths.length) {
    throw new InvalidArgumentError('studies.laziness.widths', s.widths, 'distinct widths');
  }
  return {
    widths,
    depth: s.depth,
    activation: s.activation,
    checkpoint: s.checkpoint,
    trainSteps: s.trainSteps,
    finetune: finetuneWith(finetune, s.finetune as Partial<FinetuneSettings>),
  };
}

export async function runLazinessStudy(
  ctx: ExperimentContext,
  points: Staged<TrackedPoints>,
  cfg: LazinessStudyConfig,
): Promise<StudyRun> {
  const ids = { finetune: points.result.finetuneIds, observe: points.result.observeIds };
  const analyses: Staged<WidthAnalysis>[] = [];
  for (const width of cfg.widths) {
    const trained = await trainStage(ctx, `width-${width}`, widthTrainConfig(ctx.config.train!, cfg, width));
    const checkpoint = checkpointOf(trained.result, cfg.checkpoint, 'studies.laziness.checkpoint');
    const ft = await finetuneStage(ctx, `laziness-${checkpoint.id}`, trained, checkpoint, ids, cfg.finetune);
    analyses.push(
      await ctx.stages.run(`laziness/analyse/width-${width}`, { finetune: ft.key }, async () => {
        await writePredictions(abs(ctx, ft.result.dir));
        const { recording, predictions } = await loadPredictions(abs(ctx, ft.result.dir));
        const gap = lazinessGap(recording.trajectory, predictions.trajectories['pop-mu']!);
        const scores = scoreRecording(recording.trajectory, predictions);
        const kernels = recording.manifest.kernels;
        return {
          width,
          parameters: recording.manifest.ntk.parameterCount,
          steps: gap.steps,
          gapCurve: gap.logProbRmse,
          gapFinal: gap.final.logProbRmse,
          gapMax: gap.max.logProbRmse,
          probNormFinal: gap.final.probNorm,
          popMuR: scores.methods['POP-MU']!.rTotal,
          popOdeRmse: scores.methods['POP-ODE']!.rmseLogProb,
          loss: { start: recording.loss[0]!, end: recording.loss[recording.loss.length - 1]! },
          paramDistance: recording.paramDistance[recording.paramDistance.length - 1]!,
          finetuneDrift: kernels[kernels.length - 1]!.drift?.all.relativeChange ?? null,
        } satisfies WidthAnalysis;
      }),
    );
  }
  const results = analyses.map((a) => a.result);
  const widths = results.map((r) => r.width);
  const gaps = results.map((r) => r.gapFinal);
  let slope: number | null = null;
  try {
    slope = fitLogLog(widths, gaps).slope;
  } catch {
    slope = null; // fewer than two positive gaps
  }
  const anyDrift = results.some((r) => r.finetuneDrift !== null);

  const section = async (): Promise<ReportSection> => {
    const ft = cfg.finetune;
    const widthFigure = await lazinessVsWidthFigure({
      id: 'laziness-vs-width',
      widths,
      gaps,
      yTitle: 'gap: network vs POP-MU, RMS log π at the last step (nats)',
      note: `Each point is an MLP with ${cfg.depth} hidden layer(s) of that width (NTK parameterisation, ${cfg.activation}), finetuned from ${cfg.checkpoint === 'first' ? 'its initial weights' : `step ${cfg.trainSteps} of training`} for ${ft.steps} SGD steps at η = ${ft.learningRate}.`,
    });
    const overSteps = await errorOverStepsFigure({
      id: 'laziness-gap-over-steps',
      // Step 0 is left out: the gap is 0 there by construction (log axis).
      steps: Float64Array.from(results[0]!.steps.slice(1)),
      series: results.map((r) => ({
        name: `width ${r.width}`,
        values: r.gapCurve.slice(1),
        steps: r.steps.slice(1),
      })),
      yTitle: 'RMS of network − POP-MU log π (nats)',
      errorDescription:
        'the root-mean-square log π difference between the network and POP-MU (frozen kernel), one line per width',
      title: 'Laziness gap over the finetune, by width',
      logY: true,
    });
    return {
      id: 'laziness',
      title: 'Laziness vs width',
      text: [
        `The same finetune (${ft.steps} steps, η = ${ft.learningRate}, ${ids.finetune.length} finetune and ${ids.observe.length} observation points) was run on networks of ${widths.length} widths from ${widths[0]} to ${widths[widths.length - 1]} units per hidden layer in the NTK parameterisation, and predicted by POP-MU from each network's own kernel at the start.`,
        'The gap between network and POP-MU at the last step falls with width as width^{slope} (fitted on log–log axes); lazy-training theory bounds it by O(width^−1/2) (Lee et al. 2019; docs/theory.md#laziness-gap), so a slope near or below −0.5 means wider networks train lazily, as the kernel view assumes.',
      ].join('\n\n'),
      numbers: { slope: jsonNumber(slope) },
      tables: [
        {
          id: 'by-width',
          title: 'Network vs POP-MU by width',
          caption:
            'Gap: RMS over tracked points and labels of the log π difference between network and POP-MU, at the last step and the largest over the run. r: Pearson correlation of POP-MU and network total Δ log π. Parameter distance: ‖θ − θ₀‖ at the end of the finetune.' +
            (anyDrift ? ' Kernel drift: ‖K_end − K₀‖/‖K₀‖ over the finetune.' : ''),
          rowHeader: 'width',
          columns: [
            { key: 'parameters', label: 'parameters' },
            { key: 'lossStart', label: 'loss, start', unit: 'nats' },
            { key: 'lossEnd', label: 'loss, end', unit: 'nats' },
            { key: 'gapFinal', label: 'gap, last step', unit: 'nats' },
            { key: 'gapMax', label: 'gap, max', unit: 'nats' },
            { key: 'popMuR', label: 'POP-MU r' },
            { key: 'paramDistance', label: 'parameter distance' },
            ...(anyDrift ? [{ key: 'drift', label: 'kernel drift' }] : []),
          ],
          rows: results.map((r) => ({
            key: `width-${r.width}`,
            label: String(r.width),
            values: {
              parameters: r.parameters,
              lossStart: r.loss.start,
              lossEnd: r.loss.end,
              gapFinal: r.gapFinal,
              gapMax: r.gapMax,
              popMuR: r.popMuR,
              paramDistance: r.paramDistance,
              ...(anyDrift ? { drift: r.finetuneDrift } : {}),
            },
          })),
        },
      ],
      figures: [widthFigure, overSteps],
    };
  };

  return {
    name: 'laziness',
    keys: analyses.map((a) => a.key),
    summary: [
      {
        key: 'laziness-slope',
        label: `laziness: slope of gap vs width ${widths[0]}–${widths[widths.length - 1]}`,
        measured: jsonNumber(slope),
        theory: -0.5,
      },
    ],
    section,
  };
}

/** The study module (registered in ./index.ts). */
export const lazinessStudy = defineStudy({
  name: 'laziness',
  title: 'laziness vs width',
  schema,
  usesBase: true,
  resolve,
  run: (ctx, config, base) => runLazinessStudy(ctx, base!.points, config),
});
