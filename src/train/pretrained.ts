/**
 * Runs that start from a pretrained BERT-style encoder (`config.pretrained`, `entk train
 * --pretrained <dir>`): the model spec is derived from the directory's config.json
 * (src/model/bert-import.ts), its tokenizer tokenises the text (unless `tokenizer` names another
 * one), and the step-0 weights are the imported encoder with a fresh seeded head. From then on the
 * run is an ordinary transformer run: checkpoints, kernels, finetunes, predictions and comparisons
 * read it like any other.
 */
import type * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { findLocalModelDir } from '../embed/index.js';
import { InvalidArgumentError } from '../errors.js';
import {
  BERT_WEIGHT_SOURCES,
  type BertWeights,
  pretrainedModel,
  pretrainedSpecOf,
  readBertWeights,
  TRANSFORMER_POOLINGS,
  type TransformerSpec,
  zodToArgumentError,
} from '../model/index.js';

/** zod schema of `config.pretrained`. */
export const pretrainedConfigSchema = z
  .object({
    /** Local model directory: config.json + model.safetensors or onnx/model.onnx (+ tokenizer.json). */
    dir: z.string().min(1),
    /** Which weight file: 'auto' (model.safetensors, else the ONNX file), 'safetensors' or 'onnx'. */
    source: z.enum(BERT_WEIGHT_SOURCES).optional(),
    /** Positions the classifier reads; default min(max_position_embeddings, 128). */
    maxLength: z.number().int().positive().optional(),
    /** 'cls' (default) or 'mean'. */
    pooling: z.enum(TRANSFORMER_POOLINGS).optional(),
    /** Use the checkpoint's pooler; default: when it has one. */
    pooler: z.boolean().optional(),
  })
  .strict();

/** `config.pretrained` as resolved: every choice explicit. */
export interface PretrainedConfig {
  dir: string;
  source: (typeof BERT_WEIGHT_SOURCES)[number];
  maxLength: number;
  pooling: 'cls' | 'mean';
  pooler: boolean;
}

/** The directory `dir` names (the current directory, then entk's shipped models/), or an error. */
async function pretrainedDir(dir: string): Promise<string> {
  const found = await findLocalModelDir(dir);
  if (!found) {
    throw new InvalidArgumentError(
      'config.pretrained.dir (--pretrained)',
      dir,
      'a local model directory with config.json and model.safetensors or onnx/model.onnx (not found)',
    );
  }
  return found;
}

/** The configuration keys (and flags) of the import's arguments. */
const CONFIG_NAMES: Readonly<Record<string, string>> = {
  'model directory': 'config.pretrained.dir (--pretrained)',
  source: 'config.pretrained.source (--pretrained-weights)',
  maxLength: 'config.pretrained.maxLength (--max-length)',
  pooling: 'config.pretrained.pooling (--pooling)',
  pooler: 'config.pretrained.pooler',
};

/** Run `fn`, naming an InvalidArgumentError about an import option by its configuration key and flag. */
async function withConfigNames<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof InvalidArgumentError && Object.hasOwn(CONFIG_NAMES, error.argument)) {
      throw new InvalidArgumentError(CONFIG_NAMES[error.argument]!, error.received, error.expected);
    }
    throw error;
  }
}

/**
 * The training configuration input with its pretrained encoder resolved: `model` becomes the
 * transformer spec derived from the encoder's config.json (with `pretrained.maxLength`, `pooling`,
 * `pooler`), `tokenizer` the encoder's directory unless given. Returns the weights read, for
 * building the step-0 model. An input whose `model` is already a transformer spec (a stored run's
 * config) is returned as it is, without reading anything (resolveTrainConfig checks it against
 * `pretrained`; {@link pretrainedStartModel} against the weights); an input without `pretrained`
 * too.
 */
export async function resolvePretrainedInput<T extends object>(
  input: T,
): Promise<{ input: T; weights: BertWeights | null }> {
  const raw = input as Record<string, unknown>;
  if (raw.pretrained === undefined || raw.pretrained === null) return { input, weights: null };
  const parsed = pretrainedConfigSchema.safeParse(raw.pretrained);
  if (!parsed.success) throw zodToArgumentError('config.pretrained', parsed.error, raw.pretrained);
  const p = parsed.data;
  const model = raw.model as { kind?: unknown } | string | undefined;
  if (model !== undefined && typeof model === 'object' && model?.kind === 'transformer') {
    return { input: { ...input, tokenizer: raw.tokenizer ?? p.dir }, weights: null };
  }
  if (model !== undefined) {
    throw new InvalidArgumentError(
      'config.model (--model)',
      model,
      `no model with a pretrained encoder (the architecture follows ${p.dir}/config.json)`,
    );
  }
  const dir = await pretrainedDir(p.dir);
  const { weights, spec } = await withConfigNames(async () => {
    const weights = await readBertWeights(dir, { source: p.source });
    return { weights, spec: pretrainedSpecOf(weights, dir, p) };
  });
  return { input: { ...input, model: spec, tokenizer: raw.tokenizer ?? p.dir }, weights };
}

/**
 * The step-0 model of a pretrained run: the encoder of `pretrained` (the weights already read, or
 * read now) in the transformer of `spec`, with a fresh head seeded by `seed`. InvalidArgumentError
 * if `spec` is not the one the encoder's config.json gives.
 */
export async function pretrainedStartModel(
  pretrained: PretrainedConfig,
  spec: TransformerSpec,
  weights: BertWeights | null,
  options: { numClasses: number; seed: number },
): Promise<tf.LayersModel> {
  const dir = await pretrainedDir(pretrained.dir);
  const w = weights ?? (await withConfigNames(() => readBertWeights(dir, { source: pretrained.source })));
  const expected = pretrainedSpecOf(w, dir, pretrained);
  if (JSON.stringify(expected) !== JSON.stringify(spec)) {
    throw new InvalidArgumentError(
      'config.model',
      spec,
      `the transformer spec of the pretrained encoder in ${dir} (${JSON.stringify(expected)})`,
    );
  }
  return pretrainedModel(w, spec, options);
}
