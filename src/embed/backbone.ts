/**
 * Backbone resolution: where a frozen pretrained model comes from (a local directory, or a hub id
 * when remote loading is explicitly allowed), which files it must have for a task, and a
 * fingerprint of its content (the "revision" of a local model in the feature-cache key).
 *
 * A backbone directory follows the transformers.js / Hugging Face layout:
 *   text  (feature-extraction):        config.json, tokenizer.json, tokenizer_config.json, onnx/model{suffix}.onnx
 *   image (image-feature-extraction):  config.json, preprocessor_config.json,             onnx/model{suffix}.onnx
 * where {suffix} follows the dtype: fp32 '', fp16 '_fp16', q8 '_quantized', int8 '_int8',
 * uint8 '_uint8', q4 '_q4', q4f16 '_q4f16', bnb4 '_bnb4' (transformers.js naming).
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CorruptFileError, EntkError, InvalidArgumentError } from '../errors.js';
import { sha256File } from '../io/index.js';
import { isDirectory } from '../util/index.js';

/** A backbone cannot be found locally and may not be fetched remotely. */
export class BackboneNotFoundError extends EntkError {
  override name = 'BackboneNotFoundError';
}

/** What a backbone is used for: text features or image features. */
export type BackboneTask = 'text' | 'image';

/** Weight precisions transformers.js can load (each has its own onnx file name). */
export const BACKBONE_DTYPES = ['fp32', 'fp16', 'q8', 'int8', 'uint8', 'q4', 'q4f16', 'bnb4'] as const;
export type BackboneDtype = (typeof BACKBONE_DTYPES)[number];

const DTYPE_SUFFIX: Record<BackboneDtype, string> = {
  fp32: '',
  fp16: '_fp16',
  q8: '_quantized',
  int8: '_int8',
  uint8: '_uint8',
  q4: '_q4',
  q4f16: '_q4f16',
  bnb4: '_bnb4',
};

/** The files a backbone directory must contain for `task` at precision `dtype` (relative paths). */
export function requiredBackboneFiles(task: BackboneTask, dtype: BackboneDtype = 'fp32'): string[] {
  const onnx = `onnx/model${DTYPE_SUFFIX[dtype]}.onnx`;
  return task === 'text'
    ? ['config.json', 'tokenizer.json', 'tokenizer_config.json', onnx]
    : ['config.json', 'preprocessor_config.json', onnx];
}

/** Options for locating a backbone. */
export interface ResolveBackboneOptions {
  /** 'text' or 'image' (which files are required). Default 'text'. */
  task?: BackboneTask;
  /** Weight precision (selects the onnx file). Default 'fp32'. */
  dtype?: BackboneDtype;
  /** Allow fetching a hub id from the network. Default false (offline). */
  allowRemote?: boolean;
  /** Hub revision (branch, tag or commit) for a hub id. Default 'main'. Ignored for local directories. */
  revision?: string;
  /**
   * Directory searched for hub ids before any download: `<modelsDir>/<owner>/<name>/`.
   * Default `$ENTK_MODELS_DIR` or `./models` (relative to the working directory).
   */
  modelsDir?: string;
}

/** A located backbone. */
export type ResolvedBackbone =
  | {
      /** A directory on disk with every required file. */
      source: 'local';
      /** Absolute path of the directory. */
      dir: string;
      /** Human-readable id: config.json `_name_or_path` if present, else the directory name. */
      modelId: string;
      /** `sha256:<hex>` over the required files' contents (the feature-cache "revision"). */
      revision: string;
      task: BackboneTask;
      dtype: BackboneDtype;
    }
  | {
      /** A hub id transformers.js will download (remote loading explicitly allowed). */
      source: 'hub';
      modelId: string;
      revision: string;
      task: BackboneTask;
      dtype: BackboneDtype;
    };

const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$|^[A-Za-z0-9][\w.-]*$/;

/** Default directory where hub ids are looked up offline: `$ENTK_MODELS_DIR` or `./models`. */
export function defaultModelsDir(): string {
  return path.resolve(process.env.ENTK_MODELS_DIR ?? 'models');
}

/** Default cache root for features and hub downloads: `$ENTK_CACHE_DIR` or `~/.cache/entk`. */
export function defaultCacheDir(): string {
  return path.resolve(process.env.ENTK_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'entk'));
}

function looksLikePath(spec: string): boolean {
  return (
    spec.startsWith('.') ||
    spec.startsWith('/') ||
    spec.startsWith('~') ||
    spec.endsWith('/') ||
    spec.includes('\\') ||
    spec.split('/').length > 2 ||
    !HUB_ID.test(spec)
  );
}

/** The root of the entk package (the repository, or node_modules/entk): holds the shipped models/. */
const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The directory `spec` names (`~/` expanded), or null: a relative path is tried in the current
 * directory, then in the entk package — a path not found here may name a model shipped with entk
 * (models/tiny-bert), as data files fall back to the shipped data/.
 */
export async function findLocalModelDir(spec: string): Promise<string | null> {
  const expanded = spec.startsWith('~/') ? path.join(os.homedir(), spec.slice(2)) : spec;
  const asDir = path.resolve(expanded);
  if (await isDirectory(asDir)) return asDir;
  const shipped = path.isAbsolute(expanded) ? null : path.join(PACKAGE_ROOT, expanded);
  return shipped && (await isDirectory(shipped)) ? shipped : null;
}

/**
 * Locate the backbone `spec` (a directory, or a hub id like `Xenova/all-MiniLM-L6-v2`):
 *  1. an existing directory `spec` → validated local backbone (a relative path is tried in the
 *     current directory, then in the entk package, so `models/tiny-bert` finds the shipped model);
 *  2. a hub id with a copy at `<modelsDir>/<id>/` → that local directory;
 *  3. a hub id and `allowRemote` → a hub backbone (transformers.js downloads it);
 *  4. otherwise a BackboneNotFoundError naming the files to download and where to put them.
 * Local directories are checked file by file (missing or unparsable files give CorruptFileError /
 * BackboneNotFoundError naming the file).
 */
export async function resolveBackbone(
  spec: string,
  options: ResolveBackboneOptions = {},
): Promise<ResolvedBackbone> {
  const task = options.task ?? 'text';
  const dtype = options.dtype ?? 'fp32';
  if (typeof spec !== 'string' || spec.trim() === '') {
    throw new InvalidArgumentError(
      'backbone',
      spec,
      'a model directory or a hub id such as Xenova/all-MiniLM-L6-v2',
    );
  }
  if (!(BACKBONE_DTYPES as readonly string[]).includes(dtype)) {
    throw new InvalidArgumentError('dtype', dtype, `one of ${BACKBONE_DTYPES.join(', ')}`);
  }
  if (task !== 'text' && task !== 'image') throw new InvalidArgumentError('task', task, "'text' or 'image'");
  const local = await findLocalModelDir(spec);
  if (local) return validateBackboneDir(local, task, dtype);
  const asDir = path.resolve(spec.startsWith('~/') ? path.join(os.homedir(), spec.slice(2)) : spec);

  const files = requiredBackboneFiles(task, dtype);
  if (looksLikePath(spec)) {
    throw new BackboneNotFoundError(
      `backbone ${JSON.stringify(spec)}: directory ${asDir} does not exist; expected a directory containing ${files.join(', ')} (or a hub id such as Xenova/all-MiniLM-L6-v2)`,
    );
  }
  const modelsDir = path.resolve(options.modelsDir ?? defaultModelsDir());
  const mirrored = path.join(modelsDir, spec);
  if (await isDirectory(mirrored)) return validateBackboneDir(mirrored, task, dtype);

  const revision = options.revision ?? 'main';
  if (options.allowRemote) return { source: 'hub', modelId: spec, revision, task, dtype };
  const where = `https://huggingface.co/${spec}/tree/${encodeURIComponent(revision)}`;
  throw new BackboneNotFoundError(
    `backbone ${JSON.stringify(spec)} is not available offline and remote loading is off (the default): ` +
      `download ${files.join(', ')} from ${where} into ${mirrored}/ (keeping the onnx/ sub-folder), ` +
      `or into any directory and pass that directory as the backbone (--backbone ./path), ` +
      `or allow remote loading (--allow-remote, or allowRemote: true)`,
  );
}

async function readJson(file: string, what: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    throw new BackboneNotFoundError(`${file}: missing (${what})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new CorruptFileError(file, `not valid JSON (${(e as Error).message}); re-download ${what}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new CorruptFileError(file, `expected a JSON object (${what})`);
  }
  return value as Record<string, unknown>;
}

/**
 * Check a local backbone directory for `task`: every required file present, JSON files parse and
 * have the keys transformers.js needs, the onnx file is non-empty and starts like an ONNX
 * ModelProto. Returns the resolved backbone with its content fingerprint.
 */
export async function validateBackboneDir(
  dir: string,
  task: BackboneTask,
  dtype: BackboneDtype = 'fp32',
): Promise<ResolvedBackbone & { source: 'local' }> {
  const required = requiredBackboneFiles(task, dtype);
  const missing: string[] = [];
  for (const rel of required) {
    const ok = await fs
      .stat(path.join(dir, rel))
      .then((s) => s.isFile())
      .catch(() => false);
    if (!ok) missing.push(rel);
  }
  if (missing.length > 0) {
    const hint =
      task === 'image' && missing.includes('preprocessor_config.json') && !missing.includes('config.json')
        ? ' (image feature extraction needs an image model with an image processor; this looks like a text-only model)'
        : task === 'text' && missing.includes('tokenizer.json') && !missing.includes('config.json')
          ? ' (text feature extraction needs the tokenizer files; re-download them or use an image model with embedImages)'
          : '';
    const onnxMissing = missing.find((m) => m.startsWith('onnx/'));
    const dtypeHint =
      onnxMissing && dtype !== 'fp32'
        ? `; dtype ${dtype} reads ${onnxMissing} — choose the dtype whose onnx file you have`
        : '';
    throw new BackboneNotFoundError(
      `backbone directory ${dir} is missing ${missing.join(', ')}${hint}${dtypeHint}; a ${task} backbone needs ${required.join(', ')}`,
    );
  }
  const config = await readJson(path.join(dir, 'config.json'), 'the model config');
  if (typeof config.model_type !== 'string') {
    throw new CorruptFileError(
      path.join(dir, 'config.json'),
      'has no "model_type" (transformers.js picks the architecture from it)',
    );
  }
  if (task === 'text') {
    const tok = await readJson(path.join(dir, 'tokenizer.json'), 'the tokenizer');
    const model = tok.model as Record<string, unknown> | undefined;
    if (!model || typeof model !== 'object' || typeof model.type !== 'string') {
      throw new CorruptFileError(
        path.join(dir, 'tokenizer.json'),
        'has no tokenizer "model" section with a "type"',
      );
    }
    await readJson(path.join(dir, 'tokenizer_config.json'), 'the tokenizer config');
  } else {
    await readJson(path.join(dir, 'preprocessor_config.json'), 'the image processor config');
  }
  const onnxFile = path.join(dir, required[required.length - 1]!);
  const head = await readHead(onnxFile, 64);
  // An ONNX ModelProto starts with field 1 (ir_version, varint) → first byte 0x08.
  if (head.length === 0) throw new CorruptFileError(onnxFile, 'is empty; re-download the onnx model');
  if (head[0] !== 0x08) {
    const asText = Buffer.from(head).toString('latin1');
    const lfs = asText.startsWith('version https://git-lfs')
      ? ' (a Git LFS pointer, not the model: fetch the LFS object)'
      : '';
    throw new CorruptFileError(onnxFile, `is not an ONNX model${lfs}; re-download it`);
  }
  const revision = await fingerprintFiles(dir, required);
  const modelId =
    typeof config._name_or_path === 'string' && config._name_or_path
      ? config._name_or_path
      : path.basename(dir);
  return { source: 'local', dir, modelId, revision, task, dtype };
}

async function readHead(file: string, n: number): Promise<Uint8Array> {
  const handle = await fs.open(file, 'r');
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await handle.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

const fileDigests = new Map<string, { size: number; mtimeMs: number; digest: string }>();

/** sha256 of one file, memoised per process by (path, size, mtime) so large models are hashed once. */
async function fileDigest(file: string): Promise<{ size: number; digest: string }> {
  const stat = await fs.stat(file);
  const known = fileDigests.get(file);
  if (known && known.size === stat.size && known.mtimeMs === stat.mtimeMs) return known;
  const digest = await sha256File(file); // streamed: constant memory however large the model
  const entry = { size: stat.size, mtimeMs: stat.mtimeMs, digest };
  fileDigests.set(file, entry);
  return entry;
}

/** `sha256:<hex>` over (relative path, length, sha256) of each file, in the given order. */
export async function fingerprintFiles(dir: string, files: string[]): Promise<string> {
  const hash = createHash('sha256');
  for (const rel of files) {
    const { size, digest } = await fileDigest(path.join(dir, rel));
    hash.update(`${rel}\0${size}\0${digest}\0`);
  }
  return `sha256:${hash.digest('hex')}`;
}
