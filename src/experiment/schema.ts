/**
 * The building blocks of the experiment configuration's zod schemas, shared by ./config.ts (the
 * experiment-wide keys) and every study module (./studies/*.ts, each with its own block): typed
 * numbers and point specs whose messages read after "expected", finetune settings and their
 * defaults, and the resolution helpers the studies' `resolve` use.
 */
import { z } from 'zod';
import { InvalidArgumentError } from '../errors.js';
import { resolveTrainConfig, type TrainConfig, type TrainConfigInput } from '../train/index.js';

export const EXPECT = '§'; // marks our own messages, used verbatim after "expected"
export const msg = (text: string) => ({ message: EXPECT + text });

export const posInt = (what = 'a positive integer') =>
  z.number(msg(what)).int(msg(what)).positive(msg(what)).max(Number.MAX_SAFE_INTEGER, msg(what));
export const nonNegInt = (what = 'a non-negative integer') =>
  z.number(msg(what)).int(msg(what)).nonnegative(msg(what)).max(Number.MAX_SAFE_INTEGER, msg(what));
export const positive = (what = 'a positive finite number') =>
  z.number(msg(what)).finite(msg(what)).positive(msg(what));
export const nonZero = (what = 'a finite non-zero number (η < 0 is gradient ascent)') =>
  z
    .number(msg(what))
    .finite(msg(what))
    .refine((v) => v !== 0, msg(what));
export const negative = (what = 'a negative finite number (gradient ascent)') =>
  z.number(msg(what)).finite(msg(what)).negative(msg(what));
export const pointSpec = z
  .string(msg('a point spec such as train:20, test:20 or train:per-class=2'))
  .regex(/^\s*(train|test|ids|file):/, msg('a point spec such as train:20, test:20 or train:per-class=2'));
/** A union whose "no option matched" issue carries `text` (inner issues are not reported). */
export function oneOf<T extends readonly [z.ZodTypeAny, z.ZodTypeAny, ...z.ZodTypeAny[]]>(
  text: string,
  options: T,
) {
  return z.union(options, {
    errorMap: (issue, ctx) => ({
      message: issue.code === 'invalid_union' ? EXPECT + text : ctx.defaultError,
    }),
  });
}
export const checkpointSelector = oneOf(
  "a checkpoint: 'first', 'last', an id such as step-000100, or a step",
  [z.string().min(1), nonNegInt()],
).transform((v) => String(v));
export const trainBlock = z.record(
  z.unknown(),
  msg('a training configuration object (data, model, optimizer, ...)'),
);
export const batch = oneOf("'full' or a positive integer (minibatch size)", [z.literal('full'), posInt()]);

/** Finetune settings: the defaults (top-level `finetune`) and per-study overrides. */
export const finetuneFields = {
  /** Learning rate η of the finetune SGD (η < 0: gradient ascent). Default 0.05. */
  learningRate: nonZero(),
  /** Number of SGD steps. Default 100. */
  steps: posInt(),
  /** 'full' (full-batch gradient descent on the finetune points) or a minibatch size. Default 'full'. */
  batch,
  /** Record log-probabilities every k steps (and at the last step). Default 1. */
  recordEvery: posInt(),
  /** Recompute the kernel every k steps during finetuning (refreshed-kernel predictions, drift); null: never. Default null. */
  refreshEvery: posInt().nullable(),
  /**
   * The parameters finetuned (the rest frozen), whose eNTK the recordings hold: 'all', 'head' or
   * layer names ('block1/' selects a prefix), as `entk finetune --parameters`. Default: all.
   */
  parameters: oneOf("'all', 'head' or a non-empty list of layer names (a name ending in '/' is a prefix)", [
    z.enum(['all', 'head']),
    z.array(z.string().min(1)).min(1),
  ]),
};
export const finetuneOverride = z.object(finetuneFields).partial().strict();

export const FINETUNE_DEFAULTS = {
  learningRate: 0.05,
  steps: 100,
  batch: 'full' as const,
  recordEvery: 1,
  refreshEvery: null,
};

export const pointsSchema = z
  .object({
    /** Finetune ("training") points of the finetune runs. Default 'train:20'. */
    finetune: pointSpec.default('train:20'),
    /** Observation points, tracked but never trained on. Default 'test:20'. */
    observe: pointSpec.default('test:20'),
  })
  .strict();

/**
 * The path of a `file:<path>` point spec (trimmed; '' for `file:` alone), or null for any other
 * spec (train:, test:, ids: terms).
 */
export function filePointsPath(spec: unknown): string | null {
  const m = typeof spec === 'string' ? /^\s*file:(.*)$/s.exec(spec) : null;
  return m ? m[1]!.trim() : null;
}

export const enabled = z.boolean(msg('true or false')).default(true);

/** `model`: a user's tfjs layers model the experiment runs on instead of training (`train`). */
export const modelBlock = z
  .object({
    /** model.json (or its directory), e.g. written by `saveModel`; relative to the config file. Only read. */
    path: z.string(msg('a path to a tfjs layers model.json (or its directory)')).min(1),
    /** Label column of the CSV/JSONL points files. Default 'label'. */
    labelColumn: z.string(msg('a column name')).min(1).default('label'),
  })
  .strict();

/** The resolved `model` block: the model file (absolute) and the points files' label column. */
export interface ModelSourceConfig {
  path: string;
  labelColumn: string;
}

/** Resolved finetune settings. */
export interface FinetuneSettings {
  learningRate: number;
  steps: number;
  batch: 'full' | number;
  recordEvery: number;
  refreshEvery: number | null;
  /** Absent = every parameter (and absent from the stage keys, which stay as before). */
  parameters?: 'all' | 'head' | string[];
}

/** Resolved point specs. */
export interface PointSpecs {
  finetune: string;
  observe: string;
}

/** Validate a training block with the training schema, re-prefixing its errors with `key`. */
export function resolveTrainBlock(raw: unknown, key: string): TrainConfig {
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

/** Finetune settings with the keys `override` sets replaced. */
export function finetuneWith(
  base: FinetuneSettings,
  override: Partial<FinetuneSettings> | undefined,
): FinetuneSettings {
  const out = { ...base };
  for (const [k, v] of Object.entries(override ?? {}))
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
