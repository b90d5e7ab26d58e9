/**
 * Frozen-backbone feature extraction: texts (transformers.js 'feature-extraction') and images
 * ('image-feature-extraction') → a feature matrix [n, dim], pooled over tokens and optionally
 * L2-normalised, cached on disk so that a re-run with the same backbone, settings and inputs never
 * recomputes it.
 *
 * Pooling of the last hidden state h [n, T, H] with attention mask m [n, T]:
 *   mean: f_n = Σ_t m_nt h_nt / Σ_t m_nt     (special tokens [CLS]/[SEP] included, as transformers.js)
 *   cls:  f_n = h_n0                          (first token)
 * normalize: f_n ← f_n / max(‖f_n‖₂, 1e-12).
 * Image models that return an already-pooled [n, D] output (e.g. CLIP image_embeds) are used as is.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { assertArgument, DataFormatError, EntkError, InvalidArgumentError } from '../errors.js';
import { progressBar } from '../util/index.js';
import {
  BACKBONE_DTYPES,
  type BackboneDtype,
  type BackboneTask,
  defaultCacheDir,
  type ResolvedBackbone,
  resolveBackbone,
} from './backbone.js';
import { featureCacheKey, hashTexts, readCachedFeatures, writeCachedFeatures } from './cache.js';
import { type FeaturePipeline, type HfTensor, loadFeaturePipeline, loadTransformers } from './extractor.js';

/** How token (or patch) features are pooled into one vector per input. */
export type Pooling = 'mean' | 'cls';
export const POOLINGS: readonly Pooling[] = ['mean', 'cls'];

/** Options shared by embedTexts / embedImages / embedDataset. */
export interface EmbedOptions {
  /** Backbone: a local model directory, or a hub id (e.g. Xenova/all-MiniLM-L6-v2). Required. */
  backbone: string;
  /** Token pooling: 'mean' over attended tokens, or 'cls' (first token). Default 'mean'. */
  pooling?: Pooling;
  /** L2-normalise each feature vector. Default true. */
  normalize?: boolean;
  /** Weight precision; selects onnx/model{suffix}.onnx. Default 'fp32'. */
  dtype?: BackboneDtype;
  /** Hub revision (branch, tag, commit) for hub ids. Default 'main'. Pin a commit for reproducibility. */
  revision?: string;
  /** Allow downloading a hub id. Default false (offline). */
  allowRemote?: boolean;
  /**
   * Cache root: features in `<cacheDir>/features`, hub downloads in `<cacheDir>/hub`.
   * Default `$ENTK_CACHE_DIR` or `~/.cache/entk`. `false` disables the feature cache.
   */
  cacheDir?: string | false;
  /** Where hub ids are looked up offline (`<modelsDir>/<id>/`). Default `$ENTK_MODELS_DIR` or `./models`. */
  modelsDir?: string;
  /** Inputs per forward pass. Default 32. */
  batchSize?: number;
}

/** A feature matrix and where it came from. */
export interface Embeddings {
  /** Features, row-major [n, dim]. */
  data: Float32Array;
  /** [n, dim]. */
  shape: [number, number];
  n: number;
  dim: number;
  /** The resolved backbone (local directory with content fingerprint, or hub id + revision). */
  backbone: {
    source: 'local' | 'hub';
    modelId: string;
    revision: string;
    dtype: BackboneDtype;
    task: BackboneTask;
    /** Local directory or hub id. */
    location: string;
  };
  pooling: Pooling;
  normalize: boolean;
  /** 'hit': read from the cache; 'miss': computed and stored; 'off': cache disabled; 'recomputed': a corrupt entry was replaced. */
  cache: 'hit' | 'miss' | 'off' | 'recomputed';
  /** The cache file (when the cache is on). */
  cacheFile?: string;
  /** Wall-clock seconds spent in the forward passes (0 on a cache hit). */
  computeSeconds: number;
}

interface Resolved {
  backbone: ResolvedBackbone;
  pooling: Pooling;
  normalize: boolean;
  cacheDir: string | false;
  batchSize: number;
}

async function resolveOptions(options: EmbedOptions, task: BackboneTask): Promise<Resolved> {
  assertArgument(
    options && typeof options === 'object',
    'options',
    options,
    'an EmbedOptions object with a backbone',
  );
  const pooling = options.pooling ?? 'mean';
  assertArgument(POOLINGS.includes(pooling), 'pooling', pooling, "'mean' or 'cls'");
  const normalize = options.normalize ?? true;
  assertArgument(typeof normalize === 'boolean', 'normalize', normalize, 'a boolean');
  const dtype = options.dtype ?? 'fp32';
  assertArgument(
    (BACKBONE_DTYPES as readonly string[]).includes(dtype),
    'dtype',
    dtype,
    `one of ${BACKBONE_DTYPES.join(', ')}`,
  );
  const batchSize = options.batchSize ?? 32;
  assertArgument(
    Number.isSafeInteger(batchSize) && batchSize > 0,
    'batchSize',
    batchSize,
    'a positive integer',
  );
  const cacheDir = options.cacheDir === false ? false : (options.cacheDir ?? defaultCacheDir());
  assertArgument(
    cacheDir === false || (typeof cacheDir === 'string' && cacheDir !== ''),
    'cacheDir',
    options.cacheDir,
    'a directory path or false',
  );
  const backbone = await resolveBackbone(options.backbone, {
    task,
    dtype,
    allowRemote: options.allowRemote ?? false,
    revision: options.revision,
    modelsDir: options.modelsDir,
  });
  return { backbone, pooling, normalize, cacheDir, batchSize };
}

function describeBackbone(b: ResolvedBackbone): Embeddings['backbone'] {
  return {
    source: b.source,
    modelId: b.modelId,
    revision: b.revision,
    dtype: b.dtype,
    task: b.task,
    location: b.source === 'local' ? b.dir : b.modelId,
  };
}

/**
 * Shared driver: cache lookup, batched forward passes through `run`, cache store.
 * `run(start, end)` returns the pooled, normalised features of inputs [start, end) as [end-start, dim].
 */
async function embedWithCache(
  r: Resolved,
  n: number,
  inputsHash: string,
  run: (pipe: FeaturePipeline, start: number, end: number) => Promise<{ data: Float32Array; dim: number }>,
): Promise<Embeddings> {
  const base = { backbone: describeBackbone(r.backbone), pooling: r.pooling, normalize: r.normalize };
  const key = featureCacheKey({
    modelId: r.backbone.source === 'local' ? 'local' : r.backbone.modelId,
    revision: r.backbone.revision,
    dtype: r.backbone.dtype,
    task: r.backbone.task,
    pooling: r.pooling,
    normalize: r.normalize,
    inputsHash,
  });
  let corrupt = false;
  if (r.cacheDir !== false) {
    const found = await readCachedFeatures(r.cacheDir, key);
    if (found.status === 'hit') {
      if (found.features.n === n) {
        const { data, dim } = found.features;
        return {
          ...base,
          data,
          n,
          dim,
          shape: [n, dim],
          cache: 'hit',
          cacheFile: found.file,
          computeSeconds: 0,
        };
      }
      corrupt = true;
    } else if (found.status === 'corrupt') {
      corrupt = true;
    }
  }

  const pipe = await loadFeaturePipeline(r.backbone, {
    cacheDir: r.cacheDir === false ? defaultCacheDir() : r.cacheDir,
  });
  const started = performance.now();
  const progress = progressBar(`embed ${r.backbone.modelId}`, n);
  let out: Float32Array | undefined;
  let dim = 0;
  try {
    for (let start = 0; start < n; start += r.batchSize) {
      const end = Math.min(n, start + r.batchSize);
      const batch = await run(pipe, start, end);
      if (!out) {
        dim = batch.dim;
        out = new Float32Array(n * dim);
      } else if (batch.dim !== dim) {
        throw new EntkError(
          `backbone ${r.backbone.modelId}: feature width changed between batches (${dim} then ${batch.dim})`,
        );
      }
      out.set(batch.data, start * dim);
      progress.tick(end - start);
    }
  } finally {
    progress.done();
  }
  const computeSeconds = (performance.now() - started) / 1000;
  const data = out!;
  let cacheFile: string | undefined;
  if (r.cacheDir !== false) {
    cacheFile = await writeCachedFeatures(r.cacheDir, key, data, n, dim, {
      backbone: base.backbone,
      pooling: r.pooling,
      normalize: r.normalize,
      inputsHash,
    });
  }
  return {
    ...base,
    data,
    n,
    dim,
    shape: [n, dim],
    cache: r.cacheDir === false ? 'off' : corrupt ? 'recomputed' : 'miss',
    cacheFile,
    computeSeconds,
  };
}

function toFloat32(t: HfTensor): Float32Array {
  if (t.data instanceof Float32Array) return t.data;
  return Float32Array.from(t.data as ArrayLike<number>);
}

/** L2-normalise each row of a [rows, dim] matrix in place (transformers.js clamps the norm at 1e-12). */
function normalizeRows(data: Float32Array, rows: number, dim: number): void {
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += data[r * dim + j]! ** 2;
    const norm = Math.max(Math.sqrt(s), 1e-12);
    for (let j = 0; j < dim; j++) data[r * dim + j] = data[r * dim + j]! / norm;
  }
}

/**
 * Embed `texts` with a frozen text backbone: Float32Array [n, dim] (dim = the model's hidden size)
 * in `result.data`, via the real transformers.js feature-extraction pipeline (tokenise with padding
 * and truncation to the model's maximum length, forward, pool, normalise). Cached on disk.
 */
export async function embedTexts(texts: readonly string[], options: EmbedOptions): Promise<Embeddings> {
  assertArgument(Array.isArray(texts) && texts.length > 0, 'texts', texts, 'a non-empty array of strings');
  const bad = texts.findIndex((t) => typeof t !== 'string');
  if (bad >= 0) throw new InvalidArgumentError(`texts[${bad}]`, texts[bad], 'a string');
  const r = await resolveOptions(options, 'text');
  return embedWithCache(r, texts.length, hashTexts(texts), async (pipe, start, end) => {
    const output = await pipe(texts.slice(start, end), { pooling: r.pooling, normalize: r.normalize });
    try {
      if (output.dims.length !== 2 || output.dims[0] !== end - start) {
        throw new EntkError(
          `backbone ${r.backbone.modelId}: expected pooled features [${end - start}, dim], got [${output.dims.join(', ')}]`,
        );
      }
      return { data: Float32Array.from(toFloat32(output)), dim: output.dims[1]! };
    } finally {
      output.dispose?.();
    }
  });
}

/** An image: a file path (PNG, JPEG, ... read with sharp), or raw interleaved 8-bit pixels. */
export type ImageInput =
  | string
  | {
      /** Pixels, row-major, channels interleaved (HWC), length width*height*channels. */
      data: Uint8Array | Uint8ClampedArray;
      width: number;
      height: number;
      /** 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA). */
      channels: 1 | 2 | 3 | 4;
    };

async function hashImages(images: readonly ImageInput[]): Promise<string> {
  const hash = createHash('sha256');
  hash.update(`images:${images.length}\0`);
  for (let i = 0; i < images.length; i++) {
    const img = images[i]!;
    if (typeof img === 'string') {
      let bytes: Buffer;
      try {
        bytes = await fs.readFile(img);
      } catch (e) {
        throw new DataFormatError(
          img,
          `cannot read image file (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
        );
      }
      hash.update(`file:${bytes.length}\0`);
      hash.update(bytes);
    } else {
      const ok =
        img &&
        (img.data instanceof Uint8Array || img.data instanceof Uint8ClampedArray) &&
        [1, 2, 3, 4].includes(img.channels) &&
        Number.isSafeInteger(img.width) &&
        img.width > 0 &&
        Number.isSafeInteger(img.height) &&
        img.height > 0 &&
        img.data.length === img.width * img.height * img.channels;
      if (!ok) {
        throw new InvalidArgumentError(
          `images[${i}]`,
          img,
          'a file path or { data: Uint8Array of length width*height*channels, width, height, channels: 1-4 }',
        );
      }
      hash.update(`raw:${img.width}x${img.height}x${img.channels}\0`);
      hash.update(img.data);
    }
  }
  return hash.digest('hex');
}

/**
 * Embed `images` with a frozen image backbone (transformers.js image-feature-extraction): the
 * model's last hidden state [n, T, H] pooled over tokens ('cls' = token 0, 'mean' = average of
 * all T tokens), or its pooled [n, D] output as is; then optionally L2-normalised. Cached on disk.
 * A backbone without an image processor (preprocessor_config.json) is rejected with a clear error.
 */
export async function embedImages(images: readonly ImageInput[], options: EmbedOptions): Promise<Embeddings> {
  assertArgument(Array.isArray(images) && images.length > 0, 'images', images, 'a non-empty array of images');
  const inputsHash = await hashImages(images);
  const r = await resolveOptions(options, 'image');
  const { RawImage } = await loadTransformers();
  return embedWithCache(r, images.length, inputsHash, async (pipe, start, end) => {
    const raws = [];
    for (const img of images.slice(start, end)) {
      if (typeof img === 'string') {
        try {
          raws.push(await RawImage.read(img));
        } catch (e) {
          throw new DataFormatError(img, `cannot decode image (${(e as Error).message})`);
        }
      } else {
        raws.push(new RawImage(new Uint8ClampedArray(img.data), img.width, img.height, img.channels));
      }
    }
    const output = await pipe(raws);
    try {
      const rows = end - start;
      const dims = output.dims;
      const h = toFloat32(output);
      let data: Float32Array;
      let dim: number;
      if (dims.length === 2 && dims[0] === rows) {
        dim = dims[1]!;
        data = Float32Array.from(h);
      } else if (dims.length === 3 && dims[0] === rows) {
        const tokens = dims[1]!;
        dim = dims[2]!;
        data = new Float32Array(rows * dim);
        for (let b = 0; b < rows; b++) {
          if (r.pooling === 'cls') {
            data.set(h.subarray(b * tokens * dim, b * tokens * dim + dim), b * dim);
          } else {
            for (let t = 0; t < tokens; t++) {
              for (let j = 0; j < dim; j++)
                data[b * dim + j] = data[b * dim + j]! + h[(b * tokens + t) * dim + j]!;
            }
            for (let j = 0; j < dim; j++) data[b * dim + j] = data[b * dim + j]! / tokens;
          }
        }
      } else {
        throw new EntkError(
          `backbone ${r.backbone.modelId}: expected image features [${rows}, tokens, dim] or [${rows}, dim], got [${dims.join(', ')}]`,
        );
      }
      if (r.normalize) normalizeRows(data, rows, dim);
      return { data, dim };
    } finally {
      output.dispose?.();
    }
  });
}
