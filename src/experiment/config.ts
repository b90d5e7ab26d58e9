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
import { z } from 'zod';
import { EntkError, InvalidArgumentError } from '../errors.js';
import { formatPath, valueAt } from '../model/index.js';
import type { TrainConfig } from '../train/index.js';
import { readConfigFile } from '../util/index.js';
import {
  EXPECT,
  FINETUNE_DEFAULTS,
  type FinetuneSettings,
  filePointsPath,
  finetuneFields,
  finetuneWith,
  type ModelSourceConfig,
  modelBlock,
  msg,
  nonNegInt,
  type PointSpecs,
  pointsSchema,
  resolveTrainBlock,
  trainBlock,
} from './schema.js';
import {
  type RegisteredStudy,
  STUDIES,
  STUDY_NAMES,
  type StudyConfigOf,
  type StudyName,
} from './studies/index.js';

/** Directory of the shipped example configs (`src/experiment/configs/*.yaml`). */
export const CONFIGS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'configs');

export { STUDY_NAMES, type StudyName };

/** zod schemas of the `studies:` blocks, one per registered study (./studies/index.ts). */
const studySchemas = Object.fromEntries(STUDIES.map((st) => [st.name, st.schema.optional()])) as {
  [N in StudyName]: z.ZodOptional<Extract<RegisteredStudy, { name: N }>['schema']>;
};

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
    /** Instead of `train`: a user's tfjs layers model (`path`, relative to the config file); `points` are then `file:` points files. */
    model: modelBlock.optional(),
    /** Points tracked during finetuning. */
    points: pointsSchema.default({}),
    /** Default finetune settings of every study. */
    finetune: z.object(finetuneFields).partial().strict().default({}),
    /** The studies (each one a report section). At least one. */
    studies: z.object(studySchemas).strict(),
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

export type { FinetuneSettings, PointSpecs };

/** A validated experiment with every default filled in (what `runExperiment` runs). */
export interface ExperimentConfig {
  /** Marks a resolved configuration (inputs cannot have this key). */
  resolved: true;
  title: string;
  description: string | null;
  seed: number;
  /** The base run (null when only the replicator study, which has its own run, is enabled). */
  train: TrainConfig | null;
  /** A user's model the studies run on instead of a base run (null: `train`). */
  model: ModelSourceConfig | null;
  points: PointSpecs;
  finetune: FinetuneSettings;
  /** Every registered study: its resolved configuration, or null when absent or disabled. */
  studies: { [N in StudyName]: StudyConfigOf<N> | null };
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

/**
 * Keys renamed so that one quantity has one name across the library, file formats and configs
 * (the learning rate η is `learningRate` everywhere): an old key is refused with its new name.
 */
export const RENAMED_KEYS: Readonly<Record<string, string>> = {
  eta: 'learningRate',
  etas: 'learningRates',
};

/** The first zod issue as an InvalidArgumentError naming the key path (`studies.laziness.widths[2]`). */
export function configError(
  error: z.ZodError,
  input: unknown,
  prefix: (string | number)[] = [],
): InvalidArgumentError {
  // a renamed key first: its new name is usually also reported missing
  const renamedIssue = error.issues.find(
    (i) => i.code === 'unrecognized_keys' && i.keys.some((k) => k in RENAMED_KEYS),
  );
  const issue = renamedIssue ?? error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys.find((k) => k in RENAMED_KEYS) ?? issue.keys[0]!;
    const where = [...prefix, ...issue.path, key];
    const renamed = RENAMED_KEYS[key];
    return new InvalidArgumentError(
      formatKey(where),
      valueAt(input, [...issue.path, key]),
      renamed === undefined
        ? 'a known key (this one is not recognised)'
        : `the key '${renamed}' instead ('${key}' was renamed '${renamed}')`,
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
  const blocks = c.studies as Record<string, { enabled: boolean } | undefined>;
  if (!STUDIES.some((st) => blocks[st.name]?.enabled)) {
    throw new InvalidArgumentError(
      'studies',
      input.studies,
      `at least one enabled study (${STUDY_NAMES.join(', ')})`,
    );
  }
  const studies: Record<string, unknown> = {};
  for (const st of STUDIES as readonly RegisteredStudy[]) {
    const block = blocks[st.name];
    studies[st.name] = block?.enabled ? resolveStudy(st, block, finetune) : null;
  }
  const usingBase = STUDIES.filter((st) => st.usesBase && studies[st.name]).map((st) => st.name);
  if (c.model !== undefined) checkModelConfig(input as Record<string, unknown>, c, studies);
  if (usingBase.length > 0 && c.train === undefined && c.model === undefined) {
    throw new InvalidArgumentError(
      'train',
      undefined,
      `a training configuration (required by the ${usingBase.join(', ')} stud${usingBase.length > 1 ? 'ies' : 'y'})`,
    );
  }
  const train = usingBase.length > 0 && c.model === undefined ? resolveTrainBlock(c.train, 'train') : null;
  const model = c.model ? { path: c.model.path, labelColumn: c.model.labelColumn } : null;
  const ownTrain = (STUDIES as readonly RegisteredStudy[])
    .map((st) => (studies[st.name] && 'ownTrain' in st ? ownTrainOf(st, studies[st.name]) : null))
    .find((t) => t !== null);
  const dataName = (model ? model.path.replace(/[\\/]model\.json$/, '') : (train ?? ownTrain)!.data).replace(
    /^.*[\\/]/,
    '',
  );
  return {
    resolved: true,
    title: c.title ?? `entk experiment: ${dataName}`,
    description: c.description ?? null,
    seed: c.seed,
    train,
    model,
    points: { finetune: c.points.finetune.trim(), observe: c.points.observe.trim() },
    finetune,
    studies: studies as ExperimentConfig['studies'],
    report: { png: c.report.png },
  };
}

/** Study keys that select a run's checkpoints or data, refused with `model:` (and why). */
const CHECKPOINT_KEYS: Readonly<Record<string, string>> = {
  checkpoint: "the model's weights are the only checkpoint",
  checkpoints: "the model's weights are the only checkpoint",
  focus: "the model's weights are the only checkpoint",
  heatmapPoints: 'the heatmap is over the labelled tracked points',
};

/**
 * With `model`: no `train`, only studies that run on one set of weights (`runsOnModel`), no
 * checkpoint selectors (the model's weights are the only "checkpoint"), `file:` points.
 */
function checkModelConfig(
  input: Record<string, unknown>,
  c: z.output<typeof experimentConfigSchema>,
  studies: Record<string, unknown>,
): void {
  if (c.train !== undefined) {
    throw new InvalidArgumentError('model', input.model, 'either train or model, not both');
  }
  const supported = (STUDIES as readonly RegisteredStudy[]).filter(
    (st) => 'runsOnModel' in st && st.runsOnModel,
  );
  for (const st of STUDIES as readonly RegisteredStudy[]) {
    if (!studies[st.name]) continue;
    const block = (input.studies as Record<string, Record<string, unknown>>)[st.name];
    if (!supported.includes(st)) {
      throw new InvalidArgumentError(
        `studies.${st.name}`,
        block,
        `a study that runs on a user's model (${supported.map((s) => s.name).join(', ')}); the ${st.name} study needs an entk training run (training checkpoints or runs of its own), which model: does not have — use train: for it`,
      );
    }
    for (const [key, why] of Object.entries(CHECKPOINT_KEYS)) {
      if (block && typeof block === 'object' && block[key] !== undefined) {
        throw new InvalidArgumentError(
          `studies.${st.name}.${key}`,
          block[key],
          `nothing with model: (${why})`,
        );
      }
    }
  }
  for (const which of ['finetune', 'observe'] as const) {
    const spec = c.points[which];
    if (filePointsPath(spec) === null) {
      throw new InvalidArgumentError(
        `points.${which}`,
        spec,
        `a points file of the model (file:points.csv or .jsonl, relative to the config file${which === 'finetune' ? `, with a '${c.model!.labelColumn}' column` : ''})`,
      );
    }
  }
}

/** A study's resolved configuration (its `resolve` on the parsed block). */
function resolveStudy(st: RegisteredStudy, block: unknown, finetune: FinetuneSettings): unknown {
  return (st.resolve as (b: unknown, d: { finetune: FinetuneSettings }) => unknown)(block, { finetune });
}

/** The training run a study brings itself (the replicator's), or null. */
function ownTrainOf(st: RegisteredStudy, config: unknown): TrainConfig | null {
  const own = (st as { ownTrain?: (c: unknown) => TrainConfig }).ownTrain;
  return own ? own(config) : null;
}

// ---- files and extends -------------------------------------------------------------------

/** What the top level of an experiment config must be. */
const MAPPING = 'a mapping (train:, studies:, ...) at the top level';

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

/** Read an experiment config file (src/util/config-file.ts) and apply its `extends` chain (at most 8 deep); returns the merged raw object. */
export async function readExperimentConfigFile(
  ref: string,
  base = process.cwd(),
  depth = 0,
): Promise<Record<string, unknown>> {
  const file = await resolveConfigPath(ref, base);
  const raw = await readConfigFile(file, MAPPING);
  if (raw.extends === undefined) return raw;
  if (typeof raw.extends !== 'string' || raw.extends.trim() === '') {
    throw new InvalidArgumentError('extends', raw.extends, 'a preset name or a config file path');
  }
  if (depth >= 8) throw new EntkError(`${file}: extends: chain deeper than 8 configs (a cycle?)`);
  const parent = await readExperimentConfigFile(raw.extends, path.dirname(file), depth + 1);
  const { extends: _drop, ...rest } = raw;
  const { extends: _parentDrop, ...parentRest } = parent;
  return mergeConfigs(parentRest, rest);
}

/**
 * Load and validate an experiment config: a .yaml/.yml/.json path or a shipped preset name
 * ('demo', ...). Errors name the file or the offending key.
 */
export async function loadExperimentConfig(
  ref: string,
  options: LoadExperimentConfigOptions = {},
): Promise<ExperimentConfig> {
  const raw = await readExperimentConfigFile(ref);
  const dir = path.dirname(await resolveConfigPath(ref));
  return resolveExperimentConfig(withModelPaths(raw, dir, options.model));
}

/** Options of {@link loadExperimentConfig}. */
export interface LoadExperimentConfigOptions {
  /** A user's model replacing the config's `train` (or `model.path`); relative to the working directory. */
  model?: string;
}

/**
 * With a `model` (in the file or `model` given): its path and the `file:` points made absolute,
 * relative to the config file's directory (`override`: to the working directory); `override`
 * replaces `train`.
 */
function withModelPaths(
  raw: Record<string, unknown>,
  dir: string,
  override: string | undefined,
): Record<string, unknown> {
  const out = { ...raw };
  if (override !== undefined) {
    const block = out.model && typeof out.model === 'object' ? out.model : {};
    out.model = { ...block, path: path.resolve(override) };
    delete out.train;
  }
  const model = out.model as Record<string, unknown> | undefined;
  if (!model || typeof model !== 'object') return out;
  if (typeof model.path === 'string' && model.path !== '') {
    out.model = { ...model, path: path.resolve(dir, model.path) };
  }
  const points = out.points as Record<string, unknown> | undefined;
  if (points && typeof points === 'object') {
    out.points = Object.fromEntries(
      Object.entries(points).map(([k, v]) => {
        const file = filePointsPath(v);
        return [k, file ? `file:${path.resolve(dir, file)}` : v];
      }),
    );
  }
  return out;
}
