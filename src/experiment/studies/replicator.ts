/**
 * Study "replicator picture": a three-class problem, so every distribution π(·|x) is a point of
 * the 2-simplex and learning moves it along a path — the population state of the polymatrix game
 * (docs/theory.md#the-polymatrix-game). The real network's paths and the paths POP-MU and POP-ODE predict, on a ternary plot.
 */
import * as path from 'node:path';
import { z } from 'zod';
import { loadDataset } from '../../data/index.js';
import type { Trajectory } from '../../dynamics/index.js';
import { InvalidArgumentError } from '../../errors.js';
import { jsonNumber, type ReportSection, type TernaryTrajectory, ternaryFigure } from '../../report/index.js';
import {
  abs,
  checkpointOf,
  type ExperimentContext,
  finetuneStage,
  pointsStage,
  trainStage,
} from '../pipeline.js';
import { loadPredictions, type MethodScore, scoreRecording, writePredictions } from '../predict.js';
import {
  checkpointSelector,
  enabled,
  type FinetuneSettings,
  finetuneOverride,
  finetuneWith,
  msg,
  pointsSchema,
  posInt,
  resolveTrainBlock,
  trainBlock,
} from '../schema.js';
import { defineStudy, pointProbabilities, type StudyDefaults, type StudyRun } from '../study.js';

interface Analysis {
  dir: string;
  methods: { 'POP-MU': MethodScore; 'POP-ODE': MethodScore };
  /** Mean over tracked points of the total-variation distance to the network at the last step. */
  finalTv: { 'POP-MU': number; 'POP-ODE': number };
}

function meanFinalTv(a: Trajectory, b: Trajectory): number {
  const { numPoints: P, numClasses: V } = a;
  const la = (a.steps.length - 1) * P * V;
  const lb = (b.steps.length - 1) * P * V;
  let sum = 0;
  for (let p = 0; p < P; p++) {
    let tv = 0;
    for (let i = 0; i < V; i++)
      tv += Math.abs(Math.exp(a.logProbs[la + p * V + i]!) - Math.exp(b.logProbs[lb + p * V + i]!));
    sum += tv / 2;
  }
  return sum / P;
}

/** zod schema of `studies.replicator`. */
const schema = z
  .object({
    enabled,
    /** Training run of the three-class problem. Default: iris, mlp-small, 1 epoch. */
    train: trainBlock.default({ data: 'iris', model: 'mlp-small', epochs: 1 }),
    /** Checkpoint to finetune from. Default 'first' (near-uniform distributions: long paths). */
    checkpoint: checkpointSelector.default('first'),
    /** Finetune and observation points of the three-class run. */
    points: pointsSchema.default({ finetune: 'train:per-class=10', observe: 'test:per-class=2' }),
    /** Observation points drawn on the simplex. Default 6. */
    show: posInt().max(24, msg('an integer between 1 and 24')).default(6),
    /** Finetune settings (defaults: top-level finetune with η 0.1). */
    finetune: finetuneOverride.default({}),
  })
  .strict();

/** The resolved `studies.replicator` block. */
export type ReplicatorStudyConfig = ReturnType<typeof resolve>;

function resolve(s: z.output<typeof schema>, { finetune }: StudyDefaults) {
  return {
    train: resolveTrainBlock(s.train, 'studies.replicator.train'),
    checkpoint: s.checkpoint,
    points: { finetune: s.points.finetune.trim(), observe: s.points.observe.trim() },
    show: s.show,
    finetune: finetuneWith({ ...finetune, learningRate: 0.1 }, s.finetune as Partial<FinetuneSettings>),
  };
}

export async function runReplicatorStudy(
  ctx: ExperimentContext,
  cfg: ReplicatorStudyConfig,
): Promise<StudyRun> {
  const trained = await trainStage(ctx, 'replicator', cfg.train);
  if (trained.result.classNames.length !== 3) {
    throw new InvalidArgumentError(
      'studies.replicator.train.data',
      cfg.train.data,
      `a three-class dataset (it has ${trained.result.classNames.length}); e.g. synthetic:classes=3,dim=2, iris or wine`,
    );
  }
  const points = await pointsStage(ctx, trained, cfg.points, 'studies.replicator.points');
  const checkpoint = checkpointOf(trained.result, cfg.checkpoint, 'studies.replicator.checkpoint');
  const ft = await finetuneStage(
    ctx,
    'replicator',
    trained,
    checkpoint,
    { finetune: points.result.finetuneIds, observe: points.result.observeIds },
    cfg.finetune,
  );
  const analysis = await ctx.stages.run(
    'replicator/analyse',
    { finetune: ft.key },
    async () => {
      await writePredictions(abs(ctx, ft.result.dir));
      const { recording, predictions } = await loadPredictions(abs(ctx, ft.result.dir));
      const scores = scoreRecording(recording.trajectory, predictions);
      return {
        dir: ft.result.dir,
        methods: { 'POP-MU': scores.methods['POP-MU']!, 'POP-ODE': scores.methods['POP-ODE']! },
        finalTv: {
          'POP-MU': meanFinalTv(recording.trajectory, predictions.trajectories['pop-mu']!),
          'POP-ODE': meanFinalTv(recording.trajectory, predictions.trajectories['pop-ode']!),
        },
      } satisfies Analysis;
    },
    { outputs: (r) => [path.join(abs(ctx, r.dir), 'comparison.json')] },
  );
  const r = analysis.result;
  const classNames = trained.result.classNames;

  const section = async (): Promise<ReportSection> => {
    const { recording, predictions } = await loadPredictions(abs(ctx, r.dir));
    const trajectories = {
      actual: recording.trajectory,
      'POP-MU': predictions.trajectories['pop-mu']!,
      'POP-ODE': predictions.trajectories['pop-ode']!,
    };
    const N = points.result.finetuneIds.length;
    const M = points.result.observeIds.length;
    // The observation points drawn; all of them when there are fewer than `show`.
    const shown = Array.from({ length: Math.min(cfg.show, M) }, (_, k) => N + k);
    const drawn = shown.length > 0 ? shown : Array.from({ length: Math.min(cfg.show, N) }, (_, k) => k);
    const paths: TernaryTrajectory[] = [];
    for (const p of drawn) {
      const id = p < N ? points.result.finetuneIds[p]! : points.result.observeIds[p - N]!;
      for (const method of ['actual', 'POP-MU', 'POP-ODE'] as const) {
        paths.push({ point: id, method, probabilities: pointProbabilities(trajectories[method], p) });
      }
    }
    const ft2 = cfg.finetune;
    const figure = await ternaryFigure({
      id: 'replicator-ternary',
      vertexLabels: [classNames[0]!, classNames[1]!, classNames[2]!],
      trajectories: paths,
      title: 'Distributions on the 2-simplex: network vs replicator dynamics',
      note: `${drawn.length} ${shown.length > 0 ? 'observation' : 'finetune'} points while the network is finetuned on ${N} points (${ft2.steps} steps, η = ${ft2.learningRate}) from ${checkpoint.id} of a ${cfg.train.data} run.`,
    });
    return {
      id: 'replicator',
      title: 'Replicator picture',
      text: [
        `On the three-class problem ${cfg.train.data}, each example's distribution over the labels is a point of the 2-simplex, and finetuning moves it: the population state of a polymatrix game whose payoff matrices are the kernel blocks (docs/theory.md#the-polymatrix-game). The network was finetuned from ${checkpoint.id} on ${N} points; POP-MU and POP-ODE predict the paths from the kernel frozen there.`,
        "At the last step the predicted distributions are, on average, a total-variation distance of {tvMu} (POP-MU) and {tvOde} (POP-ODE) from the network's (0 = identical, 1 = disjoint).",
      ].join('\n\n'),
      numbers: { tvMu: r.finalTv['POP-MU'], tvOde: r.finalTv['POP-ODE'] },
      tables: [
        {
          id: 'methods',
          title: 'Replicator predictions against the network',
          caption:
            'r: Pearson correlation of predicted and actual total Δ log π per (point, label). RMS: log π difference over steps, points and labels. TV: mean over tracked points of ½‖π_pred − π_net‖₁ at the last step.',
          rowHeader: 'predictor',
          columns: [
            { key: 'r', label: 'r (total Δ log π)' },
            { key: 'rmse', label: 'RMS log π', unit: 'nats' },
            { key: 'tv', label: 'final TV distance' },
          ],
          rows: (['POP-MU', 'POP-ODE'] as const).map((m) => ({
            key: m,
            label: m,
            values: { r: r.methods[m].rTotal, rmse: r.methods[m].rmseLogProb, tv: r.finalTv[m] },
          })),
        },
      ],
      figures: [figure],
    };
  };

  return {
    name: 'replicator',
    keys: [analysis.key],
    summary: [
      {
        key: 'replicator-tv',
        label: 'replicator: final TV distance, POP-MU vs network',
        measured: jsonNumber(r.finalTv['POP-MU']),
        theory: 0,
      },
    ],
    section,
  };
}

/** The study module (registered in ./index.ts). */
export const replicatorStudy = defineStudy({
  name: 'replicator',
  title: 'replicator picture',
  schema,
  usesBase: false,
  resolve,
  ownTrain: (config) => config.train,
  // the simplex picture needs three classes: fail before any training
  preflight: async (config) => {
    const ds = await loadDataset(config.train.data, config.train.dataOptions);
    if (ds.classNames.length !== 3) {
      throw new InvalidArgumentError(
        'studies.replicator.train.data',
        config.train.data,
        `a three-class dataset (it has ${ds.classNames.length} classes); e.g. synthetic:classes=3,dim=2, iris or wine`,
      );
    }
  },
  run: (ctx, config) => runReplicatorStudy(ctx, config),
});
