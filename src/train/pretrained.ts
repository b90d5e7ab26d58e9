/**
 * Runs that start from a pretrained BERT-style encoder (`config.pretrained`, `entk train
 * --pretrained <dir>`): the model spec is derived from the directory's config.json
 * (src/model/bert-import.ts), its tokenizer tokenises the text (unless `tokenizer` names another
 * one), and the step-0 weights are the imported encoder with a fresh seeded head. From then on the
 * run is an ordinary transformer run: checkpoints, kernels, finetunes, predictions and comparisons
 * read it like any other.
 */
import { z } from 'zod';
import { findLocalModelDir } from '../embed/index.js';
import { InvalidArgumentError } from '../errors.js';
import {
  BERT_WEIGHT_SOURCES,
  type BertWeights,
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

/** Read the pretrained encoder `pretrained` names. */
export async function readPretrainedWeights(pretrained: PretrainedConfig): Promise<BertWeights> {
  return readBertWeights(await pretrainedDir(pretrained.dir), { source: pretrained.source });
}

/**
 * The training configuration input with its pretrained encoder resolved: `pretrained` made
 * explicit, `model` the transformer spec of the encoder (a `model` already given must equal it, as
 * in a stored run), `tokenizer` the encoder's directory unless given. Returns the weights read, for
 * building the step-0 model. An input without `pretrained` comes back unchanged.
 */
export async function resolvePretrainedInput<T extends Record<string, unknown>>(
  input: T,
): Promise<{ input: T; weights: BertWeights | null }> {
  if (input.pretrained === undefined || input.pretrained === null) return { input, weights: null };
  const parsed = pretrainedConfigSchema.safeParse(input.pretrained);
  if (!parsed.success) throw zodToArgumentError('config.pretrained', parsed.error, input.pretrained);
  const p = parsed.data;
  const dir = await pretrainedDir(p.dir);
  const source = p.source ?? 'auto';
  const weights = await readBertWeights(dir, { source });
  const spec: TransformerSpec = pretrainedSpecOf(weights, dir, p);
  const pretrained: PretrainedConfig = {
    dir: p.dir,
    source,
    maxLength: spec.maxLength,
    pooling: spec.pooling,
    pooler: spec.pooler,
  };
  if (input.model !== undefined && JSON.stringify(input.model) !== JSON.stringify(spec)) {
    throw new InvalidArgumentError(
      'config.model (--model)',
      input.model,
      `no model with a pretrained encoder (its spec follows ${dir}/config.json: ${JSON.stringify(spec)})`,
    );
  }
  return {
    input: { ...input, pretrained, model: spec, tokenizer: input.tokenizer ?? p.dir },
    weights,
  };
}
