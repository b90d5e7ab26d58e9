/**
 * The experiment runner: train → checkpoints → kernels → finetune → predictions → metrics →
 * report, every stage resumable (./stages.ts). Layout of an experiment directory:
 *
 * ```
 * <out>/experiment.json          the resolved configuration (+ entkVersion)
 * <out>/stages.json              finished stages: name → { key (hash of inputs), seconds, result }
 * <out>/runs/<run>/              training runs (base, width-64, ..., replicator), each a run
 *                                directory (src/train/run.ts) with its kernel stores in kernels/
 *                                and its finetune recordings in finetune/<name>/ — each with the
 *                                predictions (predictions/*.npy) and comparison.json of src/compare
 * <out>/report.html              the report (self-contained), results.json, figures/
 * ```
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { backendInfo, ENTK_VERSION } from '../backend/index.js';
import { InvalidArgumentError } from '../errors.js';
import {
  formatTableText,
  type Report,
  type ReportSection,
  type ReportTable,
  writeReport,
} from '../report/index.js';
import { checkOutputDir, type OutputKind, withOutputLock, writeJsonAtomic } from '../util/index.js';
import { type ExperimentConfig, type ExperimentConfigInput, resolveExperimentConfig } from './config.js';
import { describeModel, type ExperimentContext, modelStage, pointsStage, trainStage } from './pipeline.js';
import { type StageEvent, StageRunner } from './stages.js';
import { STUDIES } from './studies/index.js';
import type { BaseRun, Study, StudyRun, SummaryRow } from './study.js';

/** The registered studies, as the runner loops over them (each with its own resolved configuration). */
const REGISTRY = STUDIES as readonly Study[];

/** Options of {@link runExperiment}. */
export interface RunExperimentOptions {
  /** The experiment directory (created if missing; an earlier run there is resumed). */
  outDir: string;
  /** Called for every stage: started, done (with seconds) or cached (skipped). */
  onEvent?: (event: StageEvent) => void;
  /** Progress lines for humans (what a stage is doing). Default: none. */
  log?: (line: string) => void;
  /**
   * Redo every stage: delete the earlier stages.json and the runs it records first (nothing the
   * experiment did not make). Default false.
   */
  force?: boolean;
}

/** What {@link runExperiment} returns. */
export interface ExperimentResult {
  /** The experiment directory (absolute). */
  outDir: string;
  /** <out>/report.html */
  html: string;
  /** <out>/results.json */
  resultsFile: string;
  /** The summary table (printed by the CLI with formatTableText). */
  summary: ReportTable;
  /** The resolved configuration. */
  config: ExperimentConfig;
  /** Every stage of this session: done or cached. */
  events: StageEvent[];
  /** Wall-clock seconds of this session. */
  seconds: number;
}

function isResolved(config: unknown): config is ExperimentConfig {
  return config != null && typeof config === 'object' && (config as ExperimentConfig).resolved === true;
}

/** The summary table: one row per headline number, measured next to theory. */
export function summaryTable(rows: SummaryRow[]): ReportTable {
  return {
    id: 'summary',
    title: 'Theory vs measurement',
    caption: 'Headline number of each study, next to what the theory (or a perfect predictor) gives.',
    rowHeader: 'check',
    columns: [
      { key: 'measured', label: 'measured' },
      { key: 'theory', label: 'theory' },
    ],
    rows: rows.map((r) => ({
      key: r.key,
      label: r.label,
      values: { measured: r.measured, theory: r.theory },
    })),
  };
}

/** The file that marks an experiment directory: the resolved configuration. */
export const EXPERIMENT_JSON = 'experiment.json';

/** Experiment directories as outputs (src/util/output.ts): marked by experiment.json. */
export const EXPERIMENT_OUTPUT: OutputKind = { name: 'experiment', marker: EXPERIMENT_JSON };

/** The resolved configuration of a study (null when it is not enabled). */
function studyConfig(config: ExperimentConfig, study: Study): unknown {
  return (config.studies as Record<string, unknown>)[study.name] ?? null;
}

/** Fail fast on what can be checked before any training (each study's `preflight`). */
async function preflight(config: ExperimentConfig): Promise<void> {
  for (const study of REGISTRY) {
    const cfg = studyConfig(config, study);
    if (cfg !== null) await study.preflight?.(cfg);
  }
}

/**
 * Run an experiment: every enabled study, then the report (report.html, results.json, figures/)
 * in `options.outDir`. Stages whose inputs did not change since an earlier run in the same
 * directory are skipped (see ./stages.ts), so an interrupted experiment resumes and a changed
 * configuration redoes only what it changes.
 *
 * @example
 *   const result = await runExperiment(await loadExperimentConfig('demo'), { outDir: 'runs/demo' });
 *   console.log(formatTableText(result.summary));
 */
export async function runExperiment(
  input: ExperimentConfig | ExperimentConfigInput,
  options: RunExperimentOptions,
): Promise<ExperimentResult> {
  const started = performance.now();
  if (options == null || typeof options.outDir !== 'string' || options.outDir === '') {
    throw new InvalidArgumentError('outDir', options?.outDir, 'a directory for the experiment');
  }
  const config = isResolved(input) ? input : resolveExperimentConfig(input as ExperimentConfigInput);
  await preflight(config);
  const outDir = path.resolve(options.outDir);
  const existing = await fs.stat(outDir).catch(() => null);
  if (existing && !existing.isDirectory()) {
    throw new InvalidArgumentError(
      'outDir',
      options.outDir,
      'a directory for the experiment (this is a file)',
    );
  }
  // New, empty, or an experiment (resumed; not an overwrite). Anything else is refused.
  const output = { argument: 'outDir', kind: EXPERIMENT_OUTPUT, overwrite: true, whole: false };
  await checkOutputDir(options.outDir, output);
  return withOutputLock(outDir, 'outDir', 'experiment', async () => {
    await checkOutputDir(options.outDir, output);
    await fs.mkdir(outDir, { recursive: true });
    if (options.force) await forget(outDir);
    await writeJsonAtomic(path.join(outDir, EXPERIMENT_JSON), { entkVersion: ENTK_VERSION, ...config });
    const stages = await StageRunner.open(outDir, options.onEvent);
    return runStages(config, outDir, stages, options, started);
  });
}

/**
 * For --force: delete the runs the recorded stages trained (kernels, recordings and predictions
 * live inside them) and the stage record, so that nothing is resumed. Nothing else is touched: a
 * directory under runs/ the experiment did not record stays.
 */
async function forget(outDir: string): Promise<void> {
  let stages: StageRunner | null = null;
  try {
    stages = await StageRunner.open(outDir);
  } catch {
    stages = null; // damaged record: nothing is known to be ours
  }
  for (const name of stages?.recorded() ?? []) {
    if (!name.startsWith('train/') && !name.startsWith('source/')) continue;
    const dir = (stages!.resultOf(name) as { dir?: unknown } | undefined)?.dir;
    const runs = path.join(outDir, 'runs');
    const abs = typeof dir === 'string' ? path.resolve(outDir, dir) : null;
    if (abs?.startsWith(`${runs}${path.sep}`)) await fs.rm(abs, { recursive: true, force: true });
  }
  await fs.rm(path.join(outDir, 'stages.json'), { force: true });
}

async function runStages(
  config: ExperimentConfig,
  outDir: string,
  stages: StageRunner,
  options: RunExperimentOptions,
  started: number,
): Promise<ExperimentResult> {
  const ctx: ExperimentContext = {
    config,
    outDir,
    stages,
    log: options.log ?? (() => undefined),
    runs: new Map(),
  };
  ctx.log(`experiment "${config.title}" in ${path.relative(process.cwd(), outDir) || '.'}`);

  const needsBase = REGISTRY.some((study) => study.usesBase && studyConfig(config, study) !== null);
  const base = !needsBase
    ? null
    : config.model
      ? await modelStage(ctx, config.model, config.points)
      : config.train
        ? await trainStage(ctx, 'base', config.train)
        : null;
  const points = base ? await pointsStage(ctx, base, config.points, 'points') : null;
  const baseRun: BaseRun | null = base && points ? { trained: base, points } : null;
  const studies: StudyRun[] = [];
  for (const study of REGISTRY) {
    const cfg = studyConfig(config, study);
    if (cfg !== null) studies.push(await study.run(ctx, cfg, study.usesBase ? baseRun : null));
  }
  const summary = summaryTable(studies.flatMap((st) => st.summary));
  const meta = reportMeta(config, base?.result.checkpoints.length ?? null);

  const report = await stages.run(
    'report',
    {
      studies: studies.map((st) => st.keys),
      summary,
      meta,
      title: config.title,
      description: config.description,
      png: config.report.png,
    },
    async () => {
      ctx.log('writing the report');
      const sections: ReportSection[] = [summarySection(config, summary, studies)];
      for (const st of studies) sections.push(await st.section());
      const doc: Report = {
        title: config.title,
        ...(config.description ? { subtitle: config.description } : {}),
        meta,
        sections,
      };
      const written = await writeReport(outDir, doc, { png: config.report.png });
      return { figures: written.figures.length };
    },
    { outputs: () => [path.join(outDir, 'report.html'), path.join(outDir, 'results.json')] },
  );
  void report;
  return {
    outDir,
    html: path.join(outDir, 'report.html'),
    resultsFile: path.join(outDir, 'results.json'),
    summary,
    config,
    events: [...stages.events],
    seconds: (performance.now() - started) / 1000,
  };
}

function reportMeta(config: ExperimentConfig, checkpoints: number | null): Record<string, string | number> {
  const meta: Record<string, string | number> = {};
  const t = config.train;
  if (t) {
    meta.data = t.data;
    meta.model = describeModel(t);
    meta['training steps'] = t.steps ?? `${t.epochs} epochs`;
    meta.optimizer = `${t.optimizer.name}, η = ${t.optimizer.learningRate}`;
    meta['finetune points'] = config.points.finetune;
    meta['observation points'] = config.points.observe;
    if (checkpoints !== null) meta.checkpoints = checkpoints;
  }
  if (config.model) {
    meta.model = config.model.path;
    meta['finetune points'] = config.points.finetune;
    meta['observation points'] = config.points.observe;
  }
  meta.seed = config.seed;
  meta.backend = backendInfo()?.backend ?? 'unknown';
  meta.entk = ENTK_VERSION;
  return meta;
}

const studyTitle = (name: string) => REGISTRY.find((study) => study.name === name)?.title ?? name;

function summarySection(config: ExperimentConfig, summary: ReportTable, studies: StudyRun[]): ReportSection {
  return {
    id: 'summary',
    title: 'Summary',
    text: [
      `This report compares what real TensorFlow.js networks do when finetuned with what lazy-training theory predicts from their empirical neural tangent kernel (eNTK): equation (1) for one SGD step, POP-MU (the multiplicative update, equal to gradient descent on the linearised network) and POP-ODE (the replicator flow), as defined in docs/theory.md#lazy-training. Studies: ${studies.map((st) => studyTitle(st.name)).join('; ')}.`,
      `${config.train ? `Base run: ${describeModel(config.train)} on ${config.train.data}. ` : ''}${config.model ? `Model: ${config.model.path} (a user's tfjs layers model, its weights as given; nothing trained). ` : ''}Every number on this page is in results.json; every figure is in figures/ as SVG${config.report.png ? ', PNG' : ''} and Vega-Lite spec.`,
    ].join('\n\n'),
    tables: [summary],
  };
}

/** The summary table as terminal text. */
export function formatSummary(result: Pick<ExperimentResult, 'summary'>): string {
  return formatTableText(result.summary);
}
