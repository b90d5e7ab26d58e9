/**
 * Experiment configuration: a zod schema validated up front (errors name the offending key, e.g.
 * `studies.laziness.widths[2]: expected a positive integer, received -4`), its defaults, loading
 * from JSON or YAML, and `extends` (a config may start from a shipped preset or another file and
 * override keys).
 *
 * An experiment is one base training run (`train`), the points tracked during finetuning
 * (`points`), default finetune settings (`finetune`), and the studies to run (`studies`), each a
 * section of the report. A study is enabled by being present (and not `enabled: false`).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { z } from 'zod';
import { CorruptFileError, DataFormatError, EntkError, InvalidArgumentError } from '../errors.js';
import { ACTIVATIONS } from '../model/index.js';
import { formatPath, valueAt } from '../model/spec.js';
import { resolveTrainConfig, type TrainConfig, type TrainConfigInput } from '../train/index.js';

/** Directory of the shipped example configs (`src/experiment/configs/*.yaml`). */
export const CONFIGS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'configs');

/** The study kinds, in report order. */
export const STUDY_NAMES = [
  'checkpoints',
  'laziness',
  'discretisation',
  'negativeGradients',
  'replicator',
] as const;
export type StudyName = (typeof STUDY_NAMES)[number];

// ---- building blocks (each with the phrase shown after "expected") -------------------------

const EXPECT = '§'; // marks our own messages, used verbatim after "expected"
const msg = (text: string) => ({ message: EXPECT + text });

const posInt = (what = 'a positive integer') =>
  z.number(msg(what)).int(msg(what)).positive(msg(what)).max(Number.MAX_SAFE_INTEGER, msg(what));
const nonNegInt = (what = 'a non-negative integer') =>
  z.number(msg(what)).int(msg(what)).nonnegative(msg(what)).max(Number.MAX_SAFE_INTEGER, msg(what));
const positive = (what = 'a positive finite number') =>
  z.number(msg(what)).finite(msg(what)).positive(msg(what));
const nonZero = (what = 'a finite non-zero number (η < 0 is gradient ascent)') =>
  z
    .number(msg(what))
    .finite(msg(what))
    .refine((v) => v !== 0, msg(what));
const negative = (what = 'a negative finite number (gradient ascent)') =>
  z.number(msg(what)).finite(msg(what)).negative(msg(what));
const pointSpec = z
  .string(msg('a point spec such as train:20, test:20 or train:per-class=2'))
  .regex(/^\s*(train|test|ids|file):/, msg('a point spec such as train:20, test:20 or train:per-class=2'));
/** A union whose "no option matched" issue carries `text` (inner issues are not reported). */
function oneOf<T extends readonly [z.ZodTypeAny, z.ZodTypeAny, ...z.ZodTypeAny[]]>(text: string, options: T) {
  return z.union(options, {
    errorMap: (issue, ctx) => ({
      message: issue.code === 'invalid_union' ? EXPECT + text : ctx.defaultError,
    }),
  });
}
const checkpointSelector = oneOf("a checkpoint: 'first', 'last', an id such as step-000100, or a step", [
  z.string().min(1),
  nonNegInt(),
]).transform((v) => String(v));
const trainBlock = z.record(
  z.unknown(),
  msg('a training configuration object (data, model, optimizer, ...)'),
);
const batch = oneOf("'full' or a positive integer (minibatch size)", [z.literal('full'), posInt()]);

/** Finetune settings: the defaults (top-level `finetune`) and per-study overrides. */
const finetuneFields = {
  /** Learning rate η of the finetune SGD (η < 0: gradient ascent). Default 0.05. */
  eta: nonZero(),
  /** Number of SGD steps. Default 100. */
  steps: posInt(),
  /** 'full' (full-batch gradient descent on the finetune points) or a minibatch size. Default 'full'. */
  batch,
  /** Record log-probabilities every k steps (and at the last step). Default 1. */
  recordEvery: posInt(),
  /** Recompute the kernel every k steps during finetuning (refreshed-kernel predictions, drift); null: never. Default null. */
  refreshEvery: posInt().nullable(),
};
const finetuneOverride = z.object(finetuneFields).partial().strict();

const FINETUNE_DEFAULTS = {
  eta: 0.05,
  steps: 100,
  batch: 'full' as const,
  recordEvery: 1,
  refreshEvery: null,
};

const pointsSchema = z
  .object({
    /** Finetune ("training") points of the finetune runs. Default 'train:20'. */
    finetune: pointSpec.default('train:20'),
    /** Observation points, tracked but never trained on. Default 'test:20'. */
    observe: pointSpec.default('test:20'),
  })
  .strict();

const enabled = z.boolean(msg('true or false')).default(true);

const checkpointsStudy = z
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

const lazinessStudy = z
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

const discretisationStudy = z
  .object({
    enabled,
    /** Step sizes η (> 0), at least two, e.g. [0.4, 0.2, 0.1, 0.05, 0.025]. */
    etas: z.array(positive(), msg('a list of positive numbers')).min(2, msg('at least two step sizes')),
    /** Horizon t = n·η at which POP-MU and POP-ODE are compared (steps n = t/η). Default: the finetune's steps × its η. */
    time: positive().optional(),
    /** Checkpoint whose kernel is used. Default 'last'. */
    checkpoint: checkpointSelector.default('last'),
    /** POP-ODE tolerances (tight, so that solver error stays far below the O(η) gap). Defaults 1e-10, 1e-12. */
    rtol: positive().default(1e-10),
    atol: positive().default(1e-12),
  })
  .strict();

const negativeGradientsStudy = z
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
    eta: negative().optional(),
    /** Ascent steps. Default: the finetune steps. */
    steps: posInt().optional(),
    /** Record every k steps. Default: the finetune's recordEvery. */
    recordEvery: posInt().optional(),
  })
  .strict();

const replicatorStudy = z
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

/** zod schema of an experiment config (the input form, with defaults). */
export const experimentConfigSchema = z
  .object({
    /** Another config to start from: a shipped preset name ('demo') or a path (relative to this file). */
    extends: z.string().min(1).optional(),
    /** Report title. Default 'entk experiment: <data>'. */
    title: z.string().min(1).optional(),
    /** One paragraph shown under the title. */
    description: z.string().optional(),
    /** Seed of point sampling and minibatch order during finetuning. Default 0. */
    seed: nonNegInt().default(0),
    /** The base training run (a training config, as for `entk train`); required unless only the replicator study runs. */
    train: trainBlock.optional(),
    /** Points tracked during finetuning. */
    points: pointsSchema.default({}),
    /** Default finetune settings of every study. */
    finetune: z.object(finetuneFields).partial().strict().default({}),
    /** The studies (each one a report section). At least one. */
    studies: z
      .object({
        checkpoints: checkpointsStudy.optional(),
        laziness: lazinessStudy.optional(),
        discretisation: discretisationStudy.optional(),
        negativeGradients: negativeGradientsStudy.optional(),
        replicator: replicatorStudy.optional(),
      })
      .strict(),
    /** Report options. */
    report: z
      .object({
        /** Write PNG copies of every figure. Default true. */
        png: z.boolean(msg('true or false')).default(true),
      })
      .strict()
      .default({}),
  })
  .strict();

/** The configuration as written (defaults optional). */
export type ExperimentConfigInput = z.input<typeof experimentConfigSchema>;

/** Resolved finetune settings. */
export interface FinetuneSettings {
  eta: number;
  steps: number;
  batch: 'full' | number;
  recordEvery: number;
  refreshEvery: number | null;
}

/** Resolved point specs. */
export interface PointSpecs {
  finetune: string;
  observe: string;
}

export interface CheckpointsStudyConfig {
  checkpoints: 'all' | string[];
  focus: string;
  heatmapPoints: string;
  trajectoryPoints: number;
  finetune: FinetuneSettings;
}

export interface LazinessStudyConfig {
  widths: number[];
  depth: number;
  activation: (typeof ACTIVATIONS)[number];
  checkpoint: 'first' | 'last';
  trainSteps: number;
  finetune: FinetuneSettings;
}

export interface DiscretisationStudyConfig {
  etas: number[];
  time: number;
  checkpoint: string;
  rtol: number;
  atol: number;
}

export interface NegativeGradientsStudyConfig {
  checkpoint: string;
  example: number | string;
  eta: number;
  steps: number;
  recordEvery: number;
}

export interface ReplicatorStudyConfig {
  train: TrainConfig;
  checkpoint: string;
  points: PointSpecs;
  show: number;
  finetune: FinetuneSettings;
}

/** A validated experiment with every default filled in (what `runExperiment` runs). */
export interface ExperimentConfig {
  /** Marks a resolved configuration (inputs cannot have this key). */
  resolved: true;
  title: string;
  description: string | null;
  seed: number;
  /** The base run (null when only the replicator study, which has its own run, is enabled). */
  train: TrainConfig | null;
  points: PointSpecs;
  finetune: FinetuneSettings;
  studies: {
    checkpoints: CheckpointsStudyConfig | null;
    laziness: LazinessStudyConfig | null;
    discretisation: DiscretisationStudyConfig | null;
    negativeGradients: NegativeGradientsStudyConfig | null;
    replicator: ReplicatorStudyConfig | null;
  };
  report: { png: boolean };
}

// ---- errors ------------------------------------------------------------------------------

function formatKey(keyPath: (string | number)[]): string {
  return formatPath('', keyPath) || 'config';
}

function expectation(issue: z.ZodIssue): string {
  if (issue.message.startsWith(EXPECT)) return issue.message.slice(EXPECT.length);
  switch (issue.code) {
    case 'invalid_type':
      return issue.received === 'undefined' ? `a value (required; ${issue.expected})` : `a ${issue.expected}`;
    case 'invalid_enum_value':
      return `one of ${issue.options.join(', ')}`;
    case 'invalid_literal':
      return JSON.stringify(issue.expected);
    case 'too_small':
      return issue.type === 'string' ? 'a non-empty string' : issue.message.toLowerCase();
    default:
      return issue.message.charAt(0).toLowerCase() + issue.message.slice(1);
  }
}

/** The first zod issue as an InvalidArgumentError naming the key path (`studies.laziness.widths[2]`). */
export function configError(
  error: z.ZodError,
  input: unknown,
  prefix: (string | number)[] = [],
): InvalidArgumentError {
  const issue = error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!;
    const where = [...prefix, ...issue.path, key];
    return new InvalidArgumentError(
      formatKey(where),
      valueAt(input, [...issue.path, key]),
      'a known key (this one is not recognised)',
    );
  }
  if (issue.code === 'invalid_union') {
    // A deeper issue inside one of the options (e.g. one bad item of a list) is more precise than
    // the union's own "expected A or B".
    const inner = issue.unionErrors
      .flatMap((e) => e.issues)
      .filter((i) => i.path.length > issue.path.length)
      .sort((a, b) => b.path.length - a.path.length)[0];
    if (inner) return configError(new z.ZodError([inner]), input, prefix);
  }
  return new InvalidArgumentError(
    formatKey([...prefix, ...issue.path]),
    valueAt(input, issue.path),
    expectation(issue),
  );
}

/** Validate a training block with the training schema, re-prefixing its errors with `key`. */
function resolveTrainBlock(raw: unknown, key: string): TrainConfig {
  try {
    return resolveTrainConfig(raw as TrainConfigInput);
  } catch (error) {
    if (error instanceof InvalidArgumentError) {
      throw new InvalidArgumentError(
        error.argument.replace(/^config\b/, key),
        error.received,
        error.expected,
      );
    }
    throw error;
  }
}

function finetuneWith(
  base: FinetuneSettings,
  override: Partial<FinetuneSettings> | undefined,
): FinetuneSettings {
  const out = { ...base };
  for (const [k, v] of Object.entries(override ?? {}))
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

/**
 * Validate and resolve an experiment configuration (an object, e.g. parsed YAML). `extends` must
 * already be applied (see {@link loadExperimentConfig}); here it is ignored. Throws
 * InvalidArgumentError naming the offending key.
 */
export function resolveExperimentConfig(
  input: ExperimentConfigInput | Record<string, unknown>,
): ExperimentConfig {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new InvalidArgumentError('config', input, 'an object with train, studies, ...');
  }
  const parsed = experimentConfigSchema.safeParse(input);
  if (!parsed.success) throw configError(parsed.error, input);
  const c = parsed.data;
  const finetune = finetuneWith(FINETUNE_DEFAULTS, c.finetune as Partial<FinetuneSettings>);
  const s = c.studies;
  const on = <T extends { enabled: boolean }>(study: T | undefined): T | null =>
    study?.enabled ? study : null;

  const checkpoints = on(s.checkpoints);
  const laziness = on(s.laziness);
  const discretisation = on(s.discretisation);
  const negative = on(s.negativeGradients);
  const replicator = on(s.replicator);
  if (!checkpoints && !laziness && !discretisation && !negative && !replicator) {
    throw new InvalidArgumentError(
      'studies',
      input.studies,
      `at least one enabled study (${STUDY_NAMES.join(', ')})`,
    );
  }
  if (laziness) {
    const sorted = [...laziness.widths].sort((a, b) => a - b);
    if (new Set(sorted).size !== sorted.length) {
      throw new InvalidArgumentError('studies.laziness.widths', laziness.widths, 'distinct widths');
    }
  }
  if (discretisation && new Set(discretisation.etas).size !== discretisation.etas.length) {
    throw new InvalidArgumentError('studies.discretisation.etas', discretisation.etas, 'distinct step sizes');
  }
  const needsBase = Boolean(checkpoints || laziness || discretisation || negative);
  if (needsBase && c.train === undefined) {
    const which = STUDY_NAMES.filter((n) => n !== 'replicator' && on(s[n]));
    throw new InvalidArgumentError(
      'train',
      undefined,
      `a training configuration (required by the ${which.join(', ')} stud${which.length > 1 ? 'ies' : 'y'})`,
    );
  }
  const train = needsBase ? resolveTrainBlock(c.train, 'train') : null;
  const replicatorTrain = replicator ? resolveTrainBlock(replicator.train, 'studies.replicator.train') : null;
  const dataName = (train ?? replicatorTrain)!.data.replace(/^.*[\\/]/, '');
  return {
    resolved: true,
    title: c.title ?? `entk experiment: ${dataName}`,
    description: c.description ?? null,
    seed: c.seed,
    train,
    points: { finetune: c.points.finetune.trim(), observe: c.points.observe.trim() },
    finetune,
    studies: {
      checkpoints: checkpoints
        ? {
            checkpoints: checkpoints.checkpoints,
            focus: checkpoints.focus,
            heatmapPoints: checkpoints.heatmapPoints.trim(),
            trajectoryPoints: checkpoints.trajectoryPoints,
            finetune: finetuneWith(finetune, checkpoints.finetune as Partial<FinetuneSettings>),
          }
        : null,
      laziness: laziness
        ? {
            widths: [...laziness.widths].sort((a, b) => a - b),
            depth: laziness.depth,
            activation: laziness.activation,
            checkpoint: laziness.checkpoint,
            trainSteps: laziness.trainSteps,
            finetune: finetuneWith(finetune, laziness.finetune as Partial<FinetuneSettings>),
          }
        : null,
      discretisation: discretisation
        ? {
            etas: [...discretisation.etas].sort((a, b) => b - a),
            time: discretisation.time ?? finetune.steps * Math.abs(finetune.eta),
            checkpoint: discretisation.checkpoint,
            rtol: discretisation.rtol,
            atol: discretisation.atol,
          }
        : null,
      negativeGradients: negative
        ? {
            checkpoint: negative.checkpoint,
            example: negative.example,
            eta: negative.eta ?? -0.001,
            steps: negative.steps ?? finetune.steps,
            recordEvery: negative.recordEvery ?? finetune.recordEvery,
          }
        : null,
      replicator:
        replicator && replicatorTrain
          ? {
              train: replicatorTrain,
              checkpoint: replicator.checkpoint,
              points: {
                finetune: replicator.points.finetune.trim(),
                observe: replicator.points.observe.trim(),
              },
              show: replicator.show,
              finetune: finetuneWith(
                { ...finetune, eta: 0.1 },
                replicator.finetune as Partial<FinetuneSettings>,
              ),
            }
          : null,
    },
    report: { png: c.report.png },
  };
}

// ---- files and extends -------------------------------------------------------------------

/** Shipped preset names (the files in {@link CONFIGS_DIR}, without extension). */
export async function listPresetConfigs(): Promise<string[]> {
  const files = await fs.readdir(CONFIGS_DIR).catch(() => [] as string[]);
  return files
    .filter((f) => /\.ya?ml$|\.json$/.test(f))
    .map((f) => f.replace(/\.(ya?ml|json)$/, ''))
    .sort();
}

/** Where a config reference points: a path (absolute, or relative to `base`), or a shipped preset name. */
export async function resolveConfigPath(ref: string, base = process.cwd()): Promise<string> {
  const candidates = [path.resolve(base, ref)];
  if (!/[\\/]/.test(ref) && !/\.(ya?ml|json)$/i.test(ref)) {
    for (const ext of ['.yaml', '.yml', '.json']) candidates.push(path.join(CONFIGS_DIR, `${ref}${ext}`));
  }
  for (const file of candidates) {
    try {
      if ((await fs.stat(file)).isFile()) return file;
    } catch {
      // try the next candidate
    }
  }
  const presets = await listPresetConfigs();
  throw new InvalidArgumentError(
    'config',
    ref,
    `an existing .yaml/.json file or a shipped preset (${presets.join(', ') || 'none'})`,
  );
}

/** Parse a config file's text (JSON or YAML by extension); DataFormatError with line/column on syntax errors. */
export function parseConfigText(text: string, file: string): Record<string, unknown> {
  let value: unknown;
  if (/\.json$/i.test(file)) {
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new DataFormatError(file, `not valid JSON (${(error as Error).message})`);
    }
  } else {
    const doc = YAML.parseDocument(text, { prettyErrors: true });
    if (doc.errors.length > 0) {
      const e = doc.errors[0]!;
      const pos = e.linePos?.[0];
      const problem = e.message.split('\n')[0]!.replace(/\s*at line \d+, column \d+:?\s*$/, '');
      throw new DataFormatError(file, `not valid YAML (${problem})`, pos?.line, pos?.col);
    }
    value = doc.toJS();
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new DataFormatError(file, 'expected a mapping (train:, studies:, ...) at the top level');
  }
  return value as Record<string, unknown>;
}

/** Deep merge for `extends`: objects merge key by key, everything else (arrays too) replaces. */
export function mergeConfigs(
  base: Record<string, unknown>,
  override: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(override)) {
    const b = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)
        ? mergeConfigs(b as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

/** Read a config file and apply its `extends` chain (at most 8 deep); returns the merged raw object. */
export async function readConfigFile(
  ref: string,
  base = process.cwd(),
  depth = 0,
): Promise<Record<string, unknown>> {
  const file = await resolveConfigPath(ref, base);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    throw new CorruptFileError(
      file,
      `cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
    );
  }
  const raw = parseConfigText(text, file);
  if (raw.extends === undefined) return raw;
  if (typeof raw.extends !== 'string' || raw.extends.trim() === '') {
    throw new InvalidArgumentError('extends', raw.extends, 'a preset name or a config file path');
  }
  if (depth >= 8) throw new EntkError(`${file}: extends: chain deeper than 8 configs (a cycle?)`);
  const parent = await readConfigFile(raw.extends, path.dirname(file), depth + 1);
  const { extends: _drop, ...rest } = raw;
  const { extends: _parentDrop, ...parentRest } = parent;
  return mergeConfigs(parentRest, rest);
}

/**
 * Load and validate an experiment config: a .yaml/.yml/.json path or a shipped preset name
 * ('demo', ...). Errors name the file or the offending key.
 */
export async function loadExperimentConfig(ref: string): Promise<ExperimentConfig> {
  const raw = await readConfigFile(ref);
  return resolveExperimentConfig(raw);
}
