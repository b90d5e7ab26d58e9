/**
 * Study "kernel analysis": a run of its own with several checkpoints, its eNTK over a point set at
 * every checkpoint, and the analysis of src/analysis (analyzeRun): spectrum and alignment over
 * training, CKA / kernel movement, kernel regression and the linearised network vs the network, and
 * the per-layer contributions (trace share and alignment of every layer's kernel).
 */
import * as path from 'node:path';
import { z } from 'zod';
import { type AnalysisResults, analysisReport, analyzeRun } from '../../analysis/index.js';
import { computeKernelStores } from '../../kernel-store/index.js';
import { jsonNumber, type ReportSection } from '../../report/index.js';
import { readJsonFile } from '../../util/index.js';
import { abs, type ExperimentContext, openRunCached, trainStage } from '../pipeline.js';
import { enabled, msg, posInt, resolveTrainBlock, trainBlock } from '../schema.js';
import { defineStudy, type StudyRun } from '../study.js';

/** zod schema of `studies.analysis`. */
const schema = z
  .object({
    enabled,
    /** Training run with checkpoints. Default: iris, mlp-small, 60 steps, checkpoints at 0, 10, 30, 60. */
    train: trainBlock.default({
      data: 'iris',
      model: 'mlp-small',
      steps: 60,
      batchSize: 16,
      checkpoints: { steps: [0, 10, 30, 60] },
    }),
    /** Point spec of the analysed kernel (training points for the kernel predictors, test points to score them). */
    points: z
      .string(msg('a point spec'))
      .min(1, msg('a point spec'))
      .default('train:per-class=10,test:per-class=10'),
    /** Stored kernel: 'trace' (tr K/V, [N, N]) or 'full' ([N·V, N·V]). Default 'trace'. */
    kind: z.enum(['trace', 'full'], msg("'trace' or 'full'")).default('trace'),
    /** Eigenvalues per checkpoint. Default 10. */
    k: posInt().default(10),
    /** Per-layer contributions. Default true. */
    layers: z.boolean(msg('true or false')).default(true),
  })
  .strict();

/** The resolved `studies.analysis` block. */
export type AnalysisStudyConfig = ReturnType<typeof resolve>;

function resolve(s: z.output<typeof schema>) {
  return {
    train: resolveTrainBlock(s.train, 'studies.analysis.train'),
    points: s.points.trim(),
    kind: s.kind,
    k: s.k,
    layers: s.layers,
  };
}

async function runAnalysisStudy(ctx: ExperimentContext, cfg: AnalysisStudyConfig): Promise<StudyRun> {
  const trained = await trainStage(ctx, 'analysis', cfg.train);
  const kernels = await ctx.stages.run(
    'analysis/kernels',
    { train: trained.key, points: cfg.points, kind: cfg.kind, seed: ctx.config.seed },
    async () => {
      const run = await openRunCached(ctx, abs(ctx, trained.result.dir));
      ctx.log(`analysis: ${cfg.kind} kernels over ${cfg.points} at every checkpoint`);
      const stores = await computeKernelStores({
        run,
        points: cfg.points,
        checkpoint: 'all',
        name: 'analysis',
        kind: cfg.kind,
        seed: ctx.config.seed,
        progress: false,
        overwrite: true, // the experiment's own stores (this stage's inputs changed)
      });
      return { stores: stores.length };
    },
  );
  const analysed = await ctx.stages.run(
    'analysis/analyse',
    { kernels: kernels.key, k: cfg.k, layers: cfg.layers },
    async () => {
      const runDir = abs(ctx, trained.result.dir);
      const out = path.join(ctx.outDir, 'analysis');
      const { results } = await analyzeRun(runDir, {
        points: 'analysis',
        k: cfg.k,
        layers: cfg.layers,
        report: false,
        out,
        log: ctx.log,
      });
      const last = results.checkpoints[results.checkpoints.length - 1]!;
      return {
        file: path.relative(ctx.outDir, path.join(out, 'analysis.json')),
        lastTargetAlignment: last.targetAlignment,
        lastKernelAccuracy: last.predictors?.kernelRegression.testAccuracy ?? null,
        lastNetworkAccuracy: last.predictors?.network.testAccuracy ?? null,
      };
    },
    { outputs: (r) => [abs(ctx, r.file)] },
  );
  const r = analysed.result;
  const section = async (): Promise<ReportSection> => {
    const results = await readJsonFile<AnalysisResults>(abs(ctx, r.file));
    const report = await analysisReport(results);
    return {
      id: 'analysis',
      title: 'Kernel analysis',
      text: [
        `The eNTK of a ${cfg.train.data} run over ${results.numPoints} points (${results.numTrain} train, ${results.numTest} test) at ${results.checkpoints.length} checkpoints: its spectrum, its alignment with the labels, how far it moves, and how good a classifier it is next to the network${cfg.layers ? ', and how much each layer contributes' : ''}.`,
        'At the last checkpoint the centred kernel–target alignment is {alignment}; kernel regression reaches a test accuracy of {kernelAccuracy} against the network’s {networkAccuracy}.',
      ].join('\n\n'),
      numbers: {
        alignment: jsonNumber(r.lastTargetAlignment),
        kernelAccuracy: jsonNumber(r.lastKernelAccuracy),
        networkAccuracy: jsonNumber(r.lastNetworkAccuracy),
      },
      tables: report.sections.flatMap((s) => s.tables ?? []),
      figures: report.sections.flatMap((s) => s.figures ?? []),
    };
  };
  return {
    name: 'analysis',
    keys: [analysed.key],
    summary: [
      {
        key: 'analysis-kernel-accuracy',
        label: 'kernel analysis: kernel-regression test accuracy minus the network’s (last checkpoint)',
        measured:
          r.lastKernelAccuracy !== null && r.lastNetworkAccuracy !== null
            ? jsonNumber(r.lastKernelAccuracy - r.lastNetworkAccuracy)
            : null,
        theory: null,
      },
    ],
    section,
  };
}

/** The study module (registered in ./index.ts). */
export const analysisStudy = defineStudy({
  name: 'analysis',
  title: 'kernel analysis',
  schema,
  usesBase: false,
  resolve,
  ownTrain: (config) => config.train,
  run: (ctx, config) => runAnalysisStudy(ctx, config),
});
