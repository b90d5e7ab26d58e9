/**
 * Loading transformers.js feature-extraction pipelines for a resolved backbone. transformers.js is
 * imported lazily (the CLI and the library barrel stay fast to load) and its process-global `env`
 * is set for every load: local directories load with remote access off and its file cache off;
 * hub ids load only when the caller allowed remote access, caching downloads under
 * `<cacheDir>/hub`. Loaded pipelines are kept per (task, location, dtype, revision) until
 * `disposeBackbones()`.
 */
import * as path from 'node:path';
import { CorruptFileError, EntkError, UnsupportedError } from '../errors.js';
import { type BackboneDtype, type ResolvedBackbone, requiredBackboneFiles } from './backbone.js';

/** The part of a transformers.js Tensor this module reads. */
export interface HfTensor {
  dims: number[];
  data: Float32Array | ArrayLike<number>;
  type: string;
  dispose?: () => void;
}

/** A loaded transformers.js feature-extraction or image-feature-extraction pipeline. */
export interface FeaturePipeline {
  (inputs: unknown, options?: Record<string, unknown>): Promise<HfTensor>;
  dispose(): Promise<void>;
  tokenizer?: unknown;
  processor?: unknown;
  model: { config: Record<string, unknown> };
}

/** @internal (keeps the optional package out of the published type declarations) */
type TransformersModule = typeof import('@huggingface/transformers');

let transformersModule: Promise<TransformersModule> | undefined;

/**
 * The transformers.js module (imported once, on first use). It is an optional peer dependency:
 * only backbone and tokenizer features need it, so a missing package is an error naming it.
 * @internal
 */
export function loadTransformers(): Promise<TransformersModule> {
  transformersModule ??= import('@huggingface/transformers').catch((error: NodeJS.ErrnoException) => {
    transformersModule = undefined;
    if (
      error?.code === 'ERR_MODULE_NOT_FOUND' &&
      String(error.message).includes('@huggingface/transformers')
    ) {
      throw new UnsupportedError(
        'pretrained backbones and tokenizers need the optional package @huggingface/transformers: ' +
          'npm install @huggingface/transformers (set ONNXRUNTIME_NODE_INSTALL=skip if its ' +
          'onnxruntime-node download cannot reach the network)',
      );
    }
    throw error;
  });
  return transformersModule;
}

const loaded = new Map<string, Promise<FeaturePipeline>>();
let loadQueue: Promise<unknown> = Promise.resolve();

function pipelineKey(b: ResolvedBackbone): string {
  const where = b.source === 'local' ? b.dir : b.modelId;
  return [b.task, b.source, where, b.dtype, b.revision].join('|');
}

/** Options for loading a pipeline. */
export interface LoadPipelineOptions {
  /** Cache root; hub downloads go to `<cacheDir>/hub`. Only used for hub backbones. */
  cacheDir: string;
}

/**
 * The feature pipeline for `backbone` (loaded once per process). Loads are serialised because
 * transformers.js configuration (`env`) is process-global.
 */
export function loadFeaturePipeline(
  backbone: ResolvedBackbone,
  options: LoadPipelineOptions,
): Promise<FeaturePipeline> {
  const key = pipelineKey(backbone);
  let p = loaded.get(key);
  if (!p) {
    p = loadQueue.then(() => createPipeline(backbone, options));
    loadQueue = p.catch(() => undefined);
    loaded.set(key, p);
    p.catch(() => loaded.delete(key));
  }
  return p;
}

async function createPipeline(
  backbone: ResolvedBackbone,
  options: LoadPipelineOptions,
): Promise<FeaturePipeline> {
  const { env, pipeline } = await loadTransformers();
  const task = backbone.task === 'text' ? 'feature-extraction' : 'image-feature-extraction';
  const dtype: BackboneDtype = backbone.dtype;
  env.allowLocalModels = true;
  if (backbone.source === 'local') {
    env.allowRemoteModels = false;
    env.useFSCache = false;
    try {
      return (await pipeline(task, backbone.dir, {
        dtype,
        device: 'cpu',
        local_files_only: true,
      })) as unknown as FeaturePipeline;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const onnx = path.join(backbone.dir, requiredBackboneFiles(backbone.task, dtype).at(-1)!);
      if (/onnx|protobuf|session|graph|model/i.test(message) && !/tokeniz/i.test(message)) {
        throw new CorruptFileError(onnx, `onnxruntime could not load it: ${firstLine(message)}`);
      }
      throw new CorruptFileError(
        backbone.dir,
        `transformers.js could not load this ${backbone.task} backbone: ${firstLine(message)}`,
      );
    }
  }
  env.allowRemoteModels = true;
  env.useFSCache = true;
  env.cacheDir = path.join(options.cacheDir, 'hub');
  try {
    return (await pipeline(task, backbone.modelId, {
      dtype,
      device: 'cpu',
      revision: backbone.revision,
      cache_dir: env.cacheDir,
    })) as unknown as FeaturePipeline;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new EntkError(
      `backbone ${JSON.stringify(backbone.modelId)} (revision ${backbone.revision}): could not load from the hub: ${firstLine(message)}; ` +
        `without network access, download ${requiredBackboneFiles(backbone.task, dtype).join(', ')} into a directory and pass it as the backbone`,
    );
  }
}

function firstLine(message: string): string {
  const line = message.split('\n').find((l) => l.trim() !== '') ?? message;
  return line.length > 300 ? `${line.slice(0, 297)}...` : line;
}

/** Release every loaded pipeline (onnxruntime sessions). */
export async function disposeBackbones(): Promise<void> {
  const all = [...loaded.values()];
  loaded.clear();
  for (const p of all) {
    const pipe = await p.catch(() => undefined);
    await pipe?.dispose().catch(() => undefined);
  }
}
