/**
 * The kernel store's `manifest.json`: everything needed to interpret and reuse the arrays of one
 * store (one point set at one checkpoint) without entk: what the kernel is, over which points, of
 * which model, and a sha256 of every array file.
 *
 * Index convention (docs/theory.md#index-convention, src/kernel/types.ts): for kind 'full' the kernel is the
 * (N·V) × (N·V) matrix whose entry at row n·V + i, column m·V + j is K_ij(x_n, x_m) — point-major,
 * points in the order of `points.ids`, outputs (logits) in class-index order. 'diagonal' is
 * [N, V, V] (K(x_n, x_n)), 'trace' is [N, N] (tr K(x_n, x_m) / V), 'pairs' is [P, V, V] with the
 * point indices of pair p in `pairs[p]`. A shard holds the kernel rows of its points only.
 *
 * Sources: a store is either of a training run's checkpoint (`source` absent or `{kind: 'run'}`;
 * `run` and `checkpoint` describe it) or of a user-supplied tfjs layers model (`entk kernel --model`;
 * `source: {kind: 'model', ...}` with the model files' hashes, `run` and `checkpoint` null).
 *
 * Versions: 1 — run stores only; 2 — adds `source`, `run`/`checkpoint` may be null (model stores).
 * Version-1 manifests are read unchanged (they are run stores).
 */
import * as path from 'node:path';
import { z } from 'zod';
import { CorruptFileError } from '../errors.js';
import { ARRAY_FORMATS, DTYPES } from '../io/index.js';
import { resolveInside } from '../util/index.js';

/** File name of the manifest inside a store directory. */
export const MANIFEST_JSON = 'manifest.json';
/** Value of `manifest.format`. */
export const KERNEL_STORE_FORMAT = 'entk-kernel-store';
/** Current manifest format version (readers refuse newer major versions). */
export const KERNEL_STORE_VERSION = 2;
/** The index convention, stated in every manifest. */
export const INDEX_CONVENTION = 'point-major: row n*V + i, column m*V + j holds K_ij(x_n, x_m)';

/** Array names a store may hold. */
export const STORE_ARRAYS = ['kernel', 'inputs', 'labels', 'logits', 'probabilities', 'pairs'] as const;
export type StoreArrayName = (typeof STORE_ARRAYS)[number];

/** Kernel kinds (see the index convention above). */
export const KERNEL_KINDS = ['full', 'diagonal', 'trace', 'pairs'] as const;
export type KernelKind = (typeof KERNEL_KINDS)[number];

const nonNegInt = z.number().int().nonnegative();

const arrayFileSchema = z
  .object({
    /** File name relative to the store directory. */
    file: z.string().min(1),
    format: z.enum(ARRAY_FORMATS as unknown as [string, ...string[]]),
    /** Name of the array inside npz/safetensors files. */
    name: z.string().min(1),
    dtype: z.enum(DTYPES as unknown as [string, ...string[]]),
    shape: z.array(nonNegInt),
    /** File size in bytes. */
    bytes: nonNegInt,
    /** sha256 of the whole file, lowercase hex (`sha256sum`). */
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
  })
  .strict();

const sha256Schema = z.string().regex(/^[0-9a-f]{64}$/);

/** Where the model of a store came from (absent in version-1 manifests: a run). */
const sourceSchema = z.discriminatedUnion('kind', [
  /** A checkpoint of a training run: see `run` and `checkpoint`. */
  z.object({ kind: z.literal('run') }).strict(),
  /** A user-supplied tfjs layers model (model.json + weight files). */
  z
    .object({
      kind: z.literal('model'),
      /** The model.json path as given (informational). */
      path: z.string(),
      /**
       * sha256 identifying the model: the sha256 of the text made of one `sha256sum` line per file
       * ("<hex>  <file>\n"), model.json first, then the weight files in weightsManifest order.
       */
      sha256: sha256Schema,
      /** model.json and every weight file (names relative to model.json's directory). */
      files: z.array(z.object({ file: z.string(), bytes: nonNegInt, sha256: sha256Schema }).strict()),
      /** 'Sequential' or the functional model's class. */
      modelClass: z.string(),
      /** What keeps the model off the structured eNTK path, one entry per layer/problem (may be empty). */
      unsupported: z.array(z.string()),
    })
    .strict(),
]);

/** The `source` of a manifest. */
export type KernelStoreSource = z.infer<typeof sourceSchema>;

/** How one selected layer was differentiated (src/kernel NtkLayerRule). */
const ruleSchema = z
  .object({
    name: z.string(),
    className: z.string(),
    rule: z.string(),
    parameters: nonNegInt,
    uses: z.number().int().positive(),
    note: z.string().optional(),
  })
  .strict();

const layerSchema = z
  .object({
    name: z.string(),
    className: z.string(),
    outputShape: z.array(z.number().int().nullable()),
    parameters: nonNegInt,
  })
  .strict();

/** zod schema of manifest.json (validated on every read). */
export const manifestSchema = z
  .object({
    format: z.literal(KERNEL_STORE_FORMAT),
    formatVersion: z.number().int().positive(),
    entkVersion: z.string(),
    createdAt: z.string(),
    /** entk, tfjs and Node versions of the process that wrote the store (absent before 0.1.0's stores had it). */
    versions: z.object({ entk: z.string(), tfjs: z.string(), node: z.string() }).strict().optional(),
    /** The command line of that process (`process.argv` without the Node binary), informational. */
    commandLine: z.array(z.string()).optional(),
    /** Run store or model store (see the module comment); absent = run (version 1). */
    source: sourceSchema.optional(),
    /** Where the data and model came from (null for a model store). */
    run: z
      .object({
        /** Run directory as given when the store was written (informational). */
        dir: z.string().nullable(),
        /** Data spec (built-in name or file) and loader options of the run. */
        data: z.string(),
        dataOptions: z.record(z.unknown()),
        /** The run's seeded train/test split. */
        split: z.object({ seed: nonNegInt, testFraction: z.number() }).strict(),
        /** Inputs are standardised with the training split's mean/std (as the model sees them). */
        standardized: z.boolean(),
      })
      .strict()
      .nullable(),
    model: z
      .object({
        /** Resolved model spec (src/model) or null for a model from elsewhere. */
        spec: z.record(z.unknown()).nullable(),
        preset: z.string().nullable(),
        /** Layer by layer: name, class, output shape, trainable parameter count. */
        layers: z.array(layerSchema),
        /** Total trainable parameters of the model. */
        parameterCount: nonNegInt,
        /** Shape of one input as fed to the model. */
        inputShape: z.array(nonNegInt),
        /** V, the number of logits. */
        numOutputs: z.number().int().positive(),
        /** Names of the V outputs, in index order. */
        classNames: z.array(z.string()),
      })
      .strict(),
    checkpoint: z
      .object({
        id: z.string(),
        step: nonNegInt,
        epoch: z.number(),
        metrics: z.record(z.number()).nullable(),
      })
      .strict()
      /** Null for a model store. */
      .nullable(),
    points: z
      .object({
        /** Name of the point set (the store's parent directory name). */
        name: z.string().min(1),
        /** The point spec it was built from (e.g. 'train:per-class=10'), or null. */
        spec: z.string().nullable(),
        /** Seed used to sample points. */
        seed: nonNegInt.nullable(),
        /** N, the number of points (all shards together). */
        count: nonNegInt,
        /** Point ids in kernel order (all N, also in a shard). */
        ids: z.array(z.string()),
        /** Where each point came from: 'train', 'test' or 'file' (all N). */
        sources: z.array(z.enum(['train', 'test', 'file'])),
      })
      .strict(),
    kernel: z
      .object({
        kind: z.enum(KERNEL_KINDS),
        dtype: z.enum(DTYPES as unknown as [string, ...string[]]),
        /** Shape of the kernel array in this store (a shard: its rows only). */
        shape: z.array(nonNegInt),
        indexConvention: z.string(),
        /**
         * Implementation that ran ('structured' | 'jacobian'), as the kernel result reports it; a
         * 'structured' run with layers by rule 'autodiff' (the hybrid) shows them in `rules`.
         */
        implementation: z.string(),
        /**
         * How each selected layer was differentiated (the kernel result's rules): name, class, rule
         * ('dense-factored', 'conv2d-explicit', 'autodiff', 'jacobian', ...), trainable parameters,
         * calls of the layer in the graph, and why a layer with a rule fell back to 'autodiff'.
         * Absent in older stores.
         */
        rules: z.array(ruleSchema).optional(),
        /**
         * Contraction that ran: 'wasm' (entk's SIMD kernels), 'tfjs' or 'js' (float64); the Jacobian
         * path's float32 contractions sum 2048-parameter chunks in float64. Diagonal kernels: 'tfjs'
         * (batched tfjs products; pooled and token terms summed in float64 JS) or 'js' (float64).
         * Merged shards list each contraction that ran, comma-separated. Absent in older stores.
         */
        contraction: z.string().optional(),
        /** Floating-point operations of the contraction products (all threads); absent as above. */
        flops: z.number().nonnegative().optional(),
        /** Accumulation precision of the contractions. */
        accumulation: z.string(),
        /** Parameter subset: 'all', 'head' or layer names. */
        parameters: z.union([z.string(), z.array(z.string())]),
        /** Layers whose parameters the Jacobian covers, and their total count P. */
        layers: z.array(z.string()),
        parameterCount: nonNegInt,
        /** tfjs backend, worker threads, points per block. */
        backend: z.string(),
        threads: z.number().int().positive(),
        /** Blocks of points whose factors worker threads computed (absent in older stores). */
        workerFactorBlocks: nonNegInt.optional(),
        blockSize: nonNegInt.nullable(),
        /** Wall-clock time by phase (kernel computation, forward pass, writing), in `timingsUnit`. */
        timings: z.record(z.number()),
        /** The unit of `timings`: always 'ms' (absent in older stores, which used ms too). */
        timingsUnit: z.literal('ms').optional(),
      })
      .strict(),
    /**
     * Present when the model is the checkpoint finetuned for `step` SGD steps by the recording
     * `recording` (src/finetune: `<run>/finetune/<recording>/kernels/step-XXXXXX/`).
     */
    finetune: z.object({ recording: z.string(), step: nonNegInt }).strict().optional(),
    /** Present in a shard: it holds rows [rowStart, rowEnd) (points) of the whole kernel. */
    shard: z
      .object({
        index: nonNegInt,
        count: z.number().int().positive(),
        rowStart: nonNegInt,
        rowEnd: nonNegInt,
      })
      .strict()
      .nullable(),
    /** Every array file: name → file, format, dtype, shape, size, sha256. */
    arrays: z.record(z.enum(STORE_ARRAYS), arrayFileSchema),
  })
  .strict();

/** A store's manifest.json. */
export type KernelManifest = z.infer<typeof manifestSchema>;
/** One array file entry of a manifest. */
export type ManifestArray = z.infer<typeof arrayFileSchema>;
/** One layer of the model summary. */
export type ManifestLayer = z.infer<typeof layerSchema>;
/** One layer's rule in `kernel.rules`. */
export type ManifestRule = z.infer<typeof ruleSchema>;

/** Validate a parsed manifest.json (CorruptFileError naming the first bad field). */
export function parseManifest(value: unknown, file: string): KernelManifest {
  const version = (value as { formatVersion?: unknown })?.formatVersion;
  if (typeof version === 'number' && version > KERNEL_STORE_VERSION) {
    throw new CorruptFileError(
      file,
      `kernel store format version ${version} is newer than this entk supports (${KERNEL_STORE_VERSION}); upgrade entk`,
    );
  }
  const parsed = manifestSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new CorruptFileError(
      file,
      `invalid manifest at ${issue.path.join('.') || '(root)'}: ${issue.message}`,
    );
  }
  const m = parsed.data;
  if (m.source?.kind === 'model') {
    if (m.run !== null || m.checkpoint !== null) {
      throw new CorruptFileError(file, 'invalid manifest: a model store has run and checkpoint null');
    }
  } else if (m.run === null || m.checkpoint === null) {
    throw new CorruptFileError(
      file,
      `invalid manifest at ${m.run === null ? 'run' : 'checkpoint'}: required for a run store (source.kind 'run')`,
    );
  }
  if (m.points.ids.length !== m.points.count || m.points.sources.length !== m.points.count) {
    throw new CorruptFileError(file, `points.ids/sources must list all ${m.points.count} points`);
  }
  if (!m.arrays.kernel) throw new CorruptFileError(file, 'invalid manifest: no kernel array');
  // Array files are plain names inside the store directory (never '../x' or an absolute path).
  for (const [name, entry] of Object.entries(m.arrays)) {
    resolveInside(path.dirname(file), entry.file, `arrays.${name}.file`, file);
  }
  return m;
}
