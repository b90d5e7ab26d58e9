/**
 * Text datasets → feature datasets. A Dataset loaded with a text column (`Dataset.text`) becomes a
 * plain feature Dataset (x = frozen-backbone embeddings, inputShape [dim]) that every later stage
 * — head training (linear or MLP), eNTK, finetune recording — consumes unchanged.
 *
 * `BackboneConfigSchema` is the serialisable form stored in a run's config.json (so `openRun`
 * can rebuild the same features — a cache hit — without the original command line), and
 * `addBackboneOptions` / `backboneConfigFromCli` map the CLI flags onto it.
 */
import type { Command } from 'commander';
import { z } from 'zod';
import type { Dataset } from '../data/index.js';
import { InvalidArgumentError } from '../errors.js';
import { BACKBONE_DTYPES } from './backbone.js';
import { type Embeddings, type EmbedOptions, embedTexts } from './embed.js';

/** Serialisable backbone settings (a run's config.json `backbone` field). */
export const BackboneConfigSchema = z
  .object({
    /** Local model directory or hub id. */
    backbone: z.string().min(1),
    /** Token pooling. Default 'mean'. */
    pooling: z.enum(['mean', 'cls']).default('mean'),
    /** L2-normalise features. Default true. */
    normalize: z.boolean().default(true),
    /** Weight precision. Default 'fp32'. */
    dtype: z.enum(BACKBONE_DTYPES).default('fp32'),
    /** Hub revision for hub ids. Default 'main'. */
    revision: z.string().min(1).default('main'),
    /** Allow downloading a hub id. Default false. */
    allowRemote: z.boolean().default(false),
    /** Cache root (features + hub downloads); omitted: $ENTK_CACHE_DIR or ~/.cache/entk. */
    cacheDir: z.string().min(1).optional(),
  })
  .strict();

/** Backbone settings after defaults. */
export type BackboneConfig = z.output<typeof BackboneConfigSchema>;

/** Validate and default a backbone config (throws InvalidArgumentError naming the bad field). */
export function parseBackboneConfig(value: unknown): BackboneConfig {
  const parsed = BackboneConfigSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.length ? `backbone config.${issue.path.join('.')}` : 'backbone config';
    const received = issue.path.reduce<unknown>(
      (v, k) => (v && typeof v === 'object' ? (v as Record<string | number, unknown>)[k] : undefined),
      value,
    );
    throw new InvalidArgumentError(field, received, issue.message);
  }
  return parsed.data;
}

/** Extra, non-serialised settings for embedding a dataset. */
export interface EmbedDatasetOptions {
  /** Inputs per forward pass. Default 32. */
  batchSize?: number;
  /** Where hub ids are looked up offline. Default $ENTK_MODELS_DIR or ./models. */
  modelsDir?: string;
  /** Disable the feature cache (default: cache on). */
  noCache?: boolean;
}

/** The embedding options equivalent to a backbone config. */
export function embedOptionsFromConfig(
  config: BackboneConfig,
  extra: EmbedDatasetOptions = {},
): EmbedOptions {
  return {
    backbone: config.backbone,
    pooling: config.pooling,
    normalize: config.normalize,
    dtype: config.dtype,
    revision: config.revision,
    allowRemote: config.allowRemote,
    cacheDir: extra.noCache ? false : config.cacheDir,
    modelsDir: extra.modelsDir,
    batchSize: extra.batchSize,
  };
}

/**
 * Turn a text Dataset (with `text`, e.g. `loadDataset('text/topics.csv', { textColumn: 'text' })`)
 * into a feature Dataset: x = embeddings [n, dim] row-major, inputShape [dim], featureNames
 * emb_0..emb_{dim-1}; ids, y, classNames, name and text are kept (example order unchanged).
 * Returns the embeddings' provenance too (cache status, backbone fingerprint).
 */
export async function embedDataset(
  ds: Dataset,
  config: BackboneConfig | z.input<typeof BackboneConfigSchema>,
  extra: EmbedDatasetOptions = {},
): Promise<{ dataset: Dataset; embeddings: Embeddings }> {
  if (!ds || !Array.isArray(ds.text) || ds.text.length !== ds.ids?.length) {
    throw new InvalidArgumentError(
      'dataset',
      ds?.name ?? ds,
      'a text dataset (load the CSV/JSONL with a text column, e.g. { textColumn: "text" }) with one text per example',
    );
  }
  const full = parseBackboneConfig(config);
  const embeddings = await embedTexts(ds.text, embedOptionsFromConfig(full, extra));
  const dataset: Dataset = {
    name: ds.name,
    ids: ds.ids.slice(),
    x: embeddings.data,
    y: ds.y.slice(),
    inputShape: [embeddings.dim],
    classNames: ds.classNames.slice(),
    featureNames: Array.from({ length: embeddings.dim }, (_, j) => `emb_${j}`),
    text: ds.text.slice(),
  };
  return { dataset, embeddings };
}

/** Raw commander option values produced by `addBackboneOptions`. */
export interface BackboneCliOptions {
  backbone?: string;
  pooling?: string;
  normalize?: boolean;
  dtype?: string;
  revision?: string;
  allowRemote?: boolean;
  featureCache?: string;
}

/**
 * Add the backbone flags to a command:
 *   --backbone <dir|hub-id>   --pooling <mean|cls>   --no-normalize   --dtype <fp32|q8|...>
 *   --revision <rev>          --allow-remote         --feature-cache <dir>
 */
export function addBackboneOptions(command: Command): Command {
  return command
    .option(
      '--backbone <dir|hub-id>',
      'embed a text dataset with a frozen transformers.js backbone (a model directory, or a hub id with --allow-remote)',
    )
    .option('--pooling <mean|cls>', 'backbone token pooling (default: mean)')
    .option('--no-normalize', 'do not L2-normalise backbone features')
    .option('--dtype <dtype>', `backbone weight precision: ${BACKBONE_DTYPES.join(' | ')} (default: fp32)`)
    .option('--revision <rev>', 'hub revision for a hub-id backbone (default: main)')
    .option('--allow-remote', 'allow downloading a hub-id backbone (default: offline)')
    .option('--feature-cache <dir>', 'feature cache root (default: $ENTK_CACHE_DIR or ~/.cache/entk)');
}

/** The backbone config selected by the CLI flags, or undefined without --backbone. */
export function backboneConfigFromCli(options: BackboneCliOptions): BackboneConfig | undefined {
  if (options.backbone === undefined) return undefined;
  const map: Record<string, string> = {
    backbone: '--backbone',
    pooling: '--pooling',
    dtype: '--dtype',
    revision: '--revision',
    cacheDir: '--feature-cache',
  };
  try {
    return parseBackboneConfig({
      backbone: options.backbone,
      pooling: options.pooling,
      normalize: options.normalize ?? true,
      dtype: options.dtype,
      revision: options.revision,
      allowRemote: options.allowRemote ?? false,
      cacheDir: options.featureCache,
    });
  } catch (error) {
    if (error instanceof InvalidArgumentError) {
      const field = error.argument.replace(/^backbone config\.?/, '');
      throw new InvalidArgumentError(map[field] ?? error.argument, error.received, error.expected);
    }
    throw error;
  }
}
