/**
 * What a study is: one module (./studies/<name>.ts) exporting a {@link Study} — its key under
 * `studies:` in the configuration, its report title, the zod schema of its block, how the parsed
 * block resolves (defaults taken from the experiment-wide settings), and how it runs. The registry
 * (./studies/index.ts) lists them in report order; the configuration schema, its resolution and the
 * runner loop over it, so a new study is one new file plus its line in the registry.
 */
import type { z } from 'zod';
import type { Trajectory } from '../dynamics/index.js';
import type { ReportSection } from '../report/index.js';
import type { TrainConfig } from '../train/index.js';
import type { ExperimentContext, Staged, TrackedPoints, TrainedRun } from './pipeline.js';
import type { FinetuneSettings } from './schema.js';

/** The experiment-wide settings a study's defaults come from. */
export interface StudyDefaults {
  /** The resolved top-level `finetune` settings. */
  finetune: FinetuneSettings;
}

/** The experiment's base run and its tracked points (for studies with `usesBase`). */
export interface BaseRun {
  trained: Staged<TrainedRun>;
  points: Staged<TrackedPoints>;
}

/** A study module. `S` is the zod schema of its configuration block, `C` its resolved configuration. */
export interface Study<N extends string = string, S extends z.ZodTypeAny = z.ZodTypeAny, C = unknown> {
  /** Key under `studies:` (and in results.json). */
  name: N;
  /** Report section title, as listed in the summary. */
  title: string;
  /** zod schema of its block (with `enabled`); errors name `studies.<name>.<key>`. */
  schema: S;
  /** Whether it uses the experiment's base run (`train`, `points`). */
  usesBase: boolean;
  /**
   * Whether it also runs on a user's model (`model:` instead of `train:`): it needs one set of
   * weights and the tracked points, no training checkpoints or runs of its own. Default false.
   */
  runsOnModel?: boolean;
  /** The resolved configuration of a parsed, enabled block (InvalidArgumentError naming the key). */
  resolve(block: z.output<S>, defaults: StudyDefaults): C;
  /** The training run of its own, if any (names the data in the title when there is no base run). */
  ownTrain?(config: C): TrainConfig;
  /** Checks that can fail before any training. */
  preflight?(config: C): Promise<void>;
  /** Run its stages (base is null unless `usesBase`). */
  run(ctx: ExperimentContext, config: C, base: BaseRun | null): Promise<StudyRun>;
}

/** Declare a study module (infers its name, schema and resolved-configuration types). */
export function defineStudy<const N extends string, S extends z.ZodTypeAny, C>(
  study: Study<N, S, C>,
): Study<N, S, C> {
  return study;
}

/** One row of the summary table: a measured number next to what theory says. */
export interface SummaryRow {
  /** Key in results.json (unique in the table). */
  key: string;
  /** Row label. */
  label: string;
  /** The measured value (null when not measurable). */
  measured: number | null;
  /** The theoretical / ideal value (null when there is none). */
  theory: number | null;
}

/** A study after its stages ran. */
export interface StudyRun {
  /** The study's name ({@link Study.name}). */
  name: string;
  /** Keys of the stages whose outputs the section reads (inputs of the report stage). */
  keys: string[];
  /** Rows of the summary table. */
  summary: SummaryRow[];
  /** Draw the report section from the stored outputs. */
  section: () => Promise<ReportSection>;
}

/** Rows [T, V] of one tracked point `p` of a trajectory, as probabilities. */
export function pointProbabilities(tr: Trajectory, p: number): Float64Array {
  const { numPoints: P, numClasses: V } = tr;
  const T = tr.steps.length;
  const out = new Float64Array(T * V);
  for (let t = 0; t < T; t++)
    for (let i = 0; i < V; i++) out[t * V + i] = Math.exp(tr.logProbs[(t * P + p) * V + i]!);
  return out;
}
