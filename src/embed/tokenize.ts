/**
 * Text → token inputs for entk's transformer (src/model/transformer.ts), with the tokenizer of a
 * local model directory (transformers.js `AutoTokenizer`, local files only; the optional package
 * is loaded lazily, ./extractor.ts). A text Dataset becomes a feature Dataset whose row is
 * `2·maxLength` numbers: the token ids ([CLS] … [SEP] for a BERT tokenizer), cut to maxLength
 * tokens (the first maxLength: transformers.js's truncation) and padded with the pad id, then the
 * attention mask (1 token, 0 padding). Ids are integers < 2²⁴, exact in float32.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Dataset } from '../data/index.js';
import { CorruptFileError, InvalidArgumentError } from '../errors.js';
import { findLocalModelDir, fingerprintFiles } from './backbone.js';
import { loadTransformers } from './extractor.js';

/** Files a tokenizer directory must hold. */
export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json'] as const;

/** Options of {@link tokenizeTexts}. */
export interface TokenizeOptions {
  /** A local model directory with tokenizer.json and tokenizer_config.json (e.g. models/tiny-bert). */
  tokenizer: string;
  /** Tokens per text (the transformer's maxLength). */
  maxLength: number;
}

/** Token inputs of n texts. */
export interface TokenizedTexts {
  /** [n, 2·maxLength] row-major: ids, then the mask. */
  x: Float32Array;
  maxLength: number;
  /** Size of the tokenizer's vocabulary (ids are < vocabSize): max(id) + 1, or config.json's vocab_size if larger. */
  vocabSize: number;
  /** The id padding positions hold. */
  padId: number;
  /** Texts longer than maxLength tokens (cut). */
  truncated: number;
  /** The tokenizer directory (absolute). */
  dir: string;
  /** `sha256:<hex>` over the tokenizer files (see fingerprintFiles). */
  revision: string;
}

interface HfTokenizer {
  /** The token ids of one text, with the special tokens of the tokenizer's template. */
  encode(text: string): number[];
  pad_token_id?: number;
  model?: { tokens_to_ids?: Map<string, number> };
  added_tokens?: Array<{ id: number }>;
}

interface LoadedTokenizer {
  tokenizer: HfTokenizer;
  dir: string;
  revision: string;
  vocabSize: number;
  padId: number;
}

const loaded = new Map<string, Promise<LoadedTokenizer>>();

/** The absolute tokenizer directory `spec` names, checked for the tokenizer files. */
export async function resolveTokenizerDir(spec: string): Promise<string> {
  if (typeof spec !== 'string' || spec.trim() === '') {
    throw new InvalidArgumentError('tokenizer', spec, 'a local model directory with tokenizer.json');
  }
  const dir = await findLocalModelDir(spec);
  if (!dir) {
    throw new InvalidArgumentError(
      'tokenizer (--tokenizer)',
      spec,
      `a local model directory containing ${TOKENIZER_FILES.join(' and ')} (not found)`,
    );
  }
  for (const file of TOKENIZER_FILES) {
    const stat = await fs.stat(path.join(dir, file)).catch(() => null);
    if (!stat?.isFile()) {
      throw new InvalidArgumentError(
        'tokenizer (--tokenizer)',
        spec,
        `a model directory containing ${TOKENIZER_FILES.join(' and ')} (${path.join(dir, file)} is missing)`,
      );
    }
  }
  return dir;
}

async function configVocabSize(dir: string): Promise<number> {
  const text = await fs.readFile(path.join(dir, 'config.json'), 'utf8').catch(() => null);
  if (text === null) return 0;
  try {
    const v = (JSON.parse(text) as { vocab_size?: unknown }).vocab_size;
    return Number.isSafeInteger(v) && (v as number) > 0 ? (v as number) : 0;
  } catch (error) {
    throw new CorruptFileError(path.join(dir, 'config.json'), `not valid JSON (${(error as Error).message})`);
  }
}

async function createTokenizer(dir: string): Promise<LoadedTokenizer> {
  const revision = await fingerprintFiles(dir, [...TOKENIZER_FILES]);
  const { AutoTokenizer, env } = await loadTransformers();
  env.allowLocalModels = true;
  env.allowRemoteModels = false;
  env.useFSCache = false;
  let tokenizer: HfTokenizer;
  try {
    tokenizer = (await AutoTokenizer.from_pretrained(dir, {
      local_files_only: true,
    })) as unknown as HfTokenizer;
  } catch (error) {
    throw new CorruptFileError(
      path.join(dir, 'tokenizer.json'),
      `transformers.js could not load the tokenizer: ${String((error as Error)?.message ?? error).split('\n')[0]}`,
    );
  }
  let maxId = -1;
  for (const id of tokenizer.model?.tokens_to_ids?.values() ?? []) maxId = Math.max(maxId, id);
  for (const t of tokenizer.added_tokens ?? []) maxId = Math.max(maxId, t.id);
  const vocabSize = Math.max(maxId + 1, await configVocabSize(dir));
  if (vocabSize <= 0)
    throw new CorruptFileError(path.join(dir, 'tokenizer.json'), 'the tokenizer has no vocabulary');
  return { tokenizer, dir, revision, vocabSize, padId: tokenizer.pad_token_id ?? 0 };
}

/** The tokenizer of `spec` (loaded once per process and directory). */
async function loadTokenizer(spec: string): Promise<LoadedTokenizer> {
  const dir = await resolveTokenizerDir(spec);
  let p = loaded.get(dir);
  if (!p) {
    p = createTokenizer(dir);
    loaded.set(dir, p);
    p.catch(() => loaded.delete(dir));
  }
  return p;
}

/**
 * Tokenise `texts` to transformer inputs [n, 2·maxLength] (see the module comment).
 *
 * @example
 * const { x, vocabSize } = await tokenizeTexts(['the match was close'], { tokenizer: 'models/tiny-bert', maxLength: 32 });
 */
export async function tokenizeTexts(texts: string[], options: TokenizeOptions): Promise<TokenizedTexts> {
  const L = options.maxLength;
  if (!Number.isInteger(L) || L <= 0) {
    throw new InvalidArgumentError('maxLength', L, 'a positive integer');
  }
  if (!Array.isArray(texts) || texts.some((t) => typeof t !== 'string')) {
    throw new InvalidArgumentError('texts', texts, 'an array of strings');
  }
  const { tokenizer, dir, revision, vocabSize, padId } = await loadTokenizer(options.tokenizer);
  const n = texts.length;
  const x = new Float32Array(n * 2 * L);
  let truncated = 0;
  for (let i = 0; i < n; i++) {
    // One text at a time, unpadded and untruncated: a batch call pads to the tokenizer's
    // model_max_length and fails on longer texts. Truncation (the first L tokens, as
    // transformers.js truncates) and padding are ours.
    const ids = tokenizer.encode(texts[i] as string);
    const row = i * 2 * L;
    if (ids.length > L) truncated++;
    for (let t = 0; t < L; t++) {
      const token = t < ids.length;
      const id = token ? Number(ids[t]) : padId;
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
        throw new CorruptFileError(
          path.join(dir, 'tokenizer.json'),
          `token id ${id} outside the vocabulary of ${vocabSize}`,
        );
      }
      x[row + t] = id;
      x[row + L + t] = token ? 1 : 0;
    }
  }
  return { x, maxLength: L, vocabSize, padId, truncated, dir, revision };
}

/**
 * A text Dataset (with `text`) → the token-input Dataset of a transformer: x [n, 2·maxLength],
 * inputShape [2·maxLength], featureNames `token_0..token_{L−1}, mask_0..mask_{L−1}`; ids, y,
 * classNames, name and text kept.
 */
export async function tokenizeDataset(
  ds: Dataset,
  options: TokenizeOptions,
): Promise<{ dataset: Dataset; tokenized: TokenizedTexts }> {
  if (!ds || !Array.isArray(ds.text) || ds.text.length !== ds.ids?.length) {
    throw new InvalidArgumentError(
      'dataset',
      ds?.name ?? ds,
      'a text dataset (a CSV/JSONL file with a text column) with one text per example',
    );
  }
  const tokenized = await tokenizeTexts(ds.text, options);
  const L = options.maxLength;
  const dataset: Dataset = {
    name: ds.name,
    ids: ds.ids.slice(),
    x: tokenized.x,
    y: ds.y.slice(),
    inputShape: [2 * L],
    classNames: ds.classNames.slice(),
    featureNames: [
      ...Array.from({ length: L }, (_, t) => `token_${t}`),
      ...Array.from({ length: L }, (_, t) => `mask_${t}`),
    ],
    text: ds.text.slice(),
  };
  return { dataset, tokenized };
}
