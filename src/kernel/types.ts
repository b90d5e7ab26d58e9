/**
 * Public types of the eNTK engine.
 *
 * Index convention (docs/theory.md#index-convention): the full kernel over points x_1..x_n1 (rows) and
 * x'_1..x'_n2 (columns) is the (n1·V) × (n2·V) matrix whose block (n, m) is the V×V eNTK block
 * K(x_n, x'_m) = J(x_n) J(x'_m)ᵀ. It is stored row-major and **point-major**: entry
 * K_ij(x_n, x'_m) sits at row n·V + i, column m·V + j, i.e. at `data[(n*V + i) * (n2*V) + m*V + j]`.
 */
import type * as tf from '@tensorflow/tfjs';

/** How the kernel is computed (see src/kernel/ntk.ts for the algorithms). */
export const NTK_IMPLEMENTATIONS = ['structured', 'jacobian', 'auto'] as const;
export type NtkImplementation = (typeof NTK_IMPLEMENTATIONS)[number];
/** The implementation that actually ran ('auto' resolved). */
export type ResolvedNtkImplementation = Exclude<NtkImplementation, 'auto'>;

/**
 * Default implementation: 'auto'. The structured path is exact, never materialises J and is
 * 1–2 orders of magnitude faster, so it is used whenever every parameterised layer of the model is
 * one it understands; any other tf.LayersModel still gets a kernel through the general Jacobian
 * contraction instead of an error.
 */
export const DEFAULT_NTK_IMPLEMENTATION: NtkImplementation = 'auto';

/** What is returned. */
export const NTK_OUTPUTS = ['full', 'diagonal', 'trace', 'pairs'] as const;
export type NtkOutput = (typeof NTK_OUTPUTS)[number];

/** Precision in which the contractions (sums over parameters and layers) are accumulated. */
export const NTK_ACCUMULATIONS = ['float32', 'float64'] as const;
export type NtkAccumulation = (typeof NTK_ACCUMULATIONS)[number];

/**
 * Where float32 contractions run: 'wasm' (entk's own WebAssembly SIMD kernels with the Gram scaling
 * fused into the product; needs WebAssembly SIMD), 'tfjs' (tf.matMul on the current tfjs backend,
 * e.g. tfjs-node's BLAS), or 'auto' (default): 'wasm' where available unless the backend is
 * tfjs-node ('tensorflow'). float64 accumulation always runs in plain JS ('js').
 */
export const NTK_CONTRACTIONS = ['auto', 'wasm', 'tfjs'] as const;
export type NtkContraction = (typeof NTK_CONTRACTIONS)[number];
/** The contraction that ran. */
export type ResolvedNtkContraction = 'wasm' | 'tfjs' | 'js';

/**
 * Points: a tensor of shape [n, ...inputShape], or raw row-major data with its shape
 * (`data.length === prod(shape)`, `shape[0] = n`). Integer token ids (Embedding models) may be
 * given as float32 or int32.
 */
export type NtkInput = tf.Tensor | { data: Float32Array | Int32Array; shape: number[] };

/**
 * Which values the kernel is of: 'output' (default) the model's outputs, which must be logits — a
 * model whose output layer applies softmax or sigmoid is refused (its kernel would be of
 * probabilities); 'pre-activation': the output layer's values before that softmax/sigmoid.
 * Probabilities that reach the output through a merge keeping them probabilities (a Concatenate
 * with a softmax/sigmoid branch; an Average, Multiply, … of softmax/sigmoid outputs only) are
 * refused with either option; a merge with other values (a gated linear unit, a mixture of experts)
 * is the model's own output.
 */
export const NTK_LOGITS = ['output', 'pre-activation'] as const;
export type NtkLogits = (typeof NTK_LOGITS)[number];

/**
 * How one selected layer is differentiated: 'dense-identity' (closed-form head), 'dense-factored'
 * (⟨a, a'⟩⟨δ, δ'⟩), 'dense-gated', 'dense-explicit' (dense over positions or shared: per-example
 * gradients), 'dense-position-pairs' (dense over positions: Σ_{t,t'} ⟨a_t, a'_t'⟩⟨δ_t, δ'_t'⟩ without
 * the gradients), 'conv1d-explicit', 'conv2d-explicit', 'conv1d-pooled', 'conv2d-pooled' (a convolution
 * before a max-pooling: the pool windows' selected patches), 'depthwise-explicit',
 * 'separable-explicit', 'embedding-explicit', 'embedding-sparse' (a point's distinct tokens only),
 * 'layernorm', 'batchnorm', 'prelu', 'autodiff' (the layer alone by tfjs autodiff, the rest
 * structured), or 'jacobian' (whole-model Jacobian implementation).
 */
export interface NtkLayerRule {
  name: string;
  className: string;
  rule: string;
  /** Parameters of the layer. */
  parameters: number;
  /** Calls of the layer in the model's graph (> 1 for a shared layer). */
  uses: number;
  /** Why a layer of a class with a rule was differentiated by 'autodiff'. */
  note?: string;
}

/** Which trainable parameters θ the Jacobian J = ∂f/∂θ is taken with respect to. */
export type NtkParameters = 'all' | 'head' | string[];

/** Configuration of {@link empiricalNtkFn} (fixed for the returned function). */
export interface NtkOptions {
  /** What to return: 'full' (default), 'diagonal' (K(x,x) blocks), 'trace' (tr K / V), 'pairs'. */
  output?: NtkOutput;
  /** Algorithm; default {@link DEFAULT_NTK_IMPLEMENTATION} ('auto'). */
  implementation?: NtkImplementation;
  /**
   * Parameter subset: 'all' (default: every trainable weight), 'head' (the last layer with trainable
   * weights), or a list of layer names (each must have trainable weights); a name ending in '/'
   * selects every layer with weights whose name starts with it (e.g. ['block1/', 'head']).
   */
  parameters?: NtkParameters;
  /**
   * 'float32' (default): contractions in float32 (see `contraction`), result Float32Array.
   * 'float64': contractions of the float32 per-layer factors accumulated in double precision in
   * plain JS (much slower), result Float64Array.
   */
  accumulation?: NtkAccumulation;
  /** float32 contraction kernels (full and trace outputs); default 'auto'. See {@link NTK_CONTRACTIONS}. */
  contraction?: NtkContraction;
  /**
   * Points per block (the kernel is built from blocks of blockSize × blockSize points). Default:
   * chosen from V so that one block holds about 1 M entries (100 points at V = 10), small enough
   * that the symmetric case skips almost half of the work and every block fits the wasm heap.
   */
  blockSize?: number;
  /**
   * Bytes of working memory for per-point factors (layer inputs, back-propagated signals,
   * per-example gradients) kept between blocks; default 1 GiB. The output itself is not counted.
   * Factors beyond the budget are recomputed block by block (single thread).
   */
  memoryBudget?: number;
  /**
   * Contracting threads for 'full' and 'trace' outputs: a number >= 1 or 'auto' (one per core);
   * the main thread plus threads − 1 worker threads. Default 1 (no workers). Results are bitwise
   * identical for every thread count. Needs all factors within memoryBudget (else 1 thread).
   */
  threads?: number | 'auto';
  /** Show a progress bar on an interactive terminal (never in CI or pipes); default true. */
  progress?: boolean;
  /** Kernel of the outputs (default 'output') or of the pre-softmax/sigmoid logits; see {@link NTK_LOGITS}. */
  logits?: NtkLogits;
}

/** Per-call options of an {@link NtkFn}. */
export interface NtkCallOptions {
  /**
   * For output 'pairs': the point pairs (index into x1, index into x2 — or x1 when x2 is omitted),
   * as an array of [a, b] or a flat Int32Array [a0, b0, a1, b1, ...].
   */
  pairs?: Array<[number, number]> | Int32Array;
  /**
   * For outputs 'full' and 'trace': write the kernel into this array (every entry is overwritten)
   * instead of a new one, and return it as `data` — typically the `data` of an earlier result of the
   * same shape that is no longer needed, as when computing kernels at many checkpoints. Fresh memory
   * costs a page fault per page on first touch (0.33–10 ms per MB on the VMs measured here: README,
   * The eNTK engine), and a kernel function cannot know when an earlier result is free. A Float32Array (Float64Array for accumulation 'float64') of exactly rows × columns of the
   * output (a view into a larger buffer is fine) sharing no memory with the points; for a function
   * with threads > 1 it must live in a SharedArrayBuffer (as every result of such a function does),
   * since worker threads write into it.
   */
  out?: Float32Array | Float64Array;
}

/** A computed kernel. */
export interface NtkResult {
  /** The output kind. */
  kind: NtkOutput;
  /** The implementation that ran ('auto' resolved). */
  implementation: ResolvedNtkImplementation;
  /** Layers ("name (ClassName)") or topology issues that kept the structured path from applying. */
  unsupportedLayers: string[];
  /** Number of row points (x1) and column points (x2; = n1 when x2 was omitted). */
  n1: number;
  n2: number;
  /** Number of outputs V (logits). */
  numOutputs: number;
  /**
   * Shape of `data`: full [n1·V, n2·V] (row n·V + i, column m·V + j, point-major);
   * diagonal [n1, V, V]; trace [n1, n2] (= tr K(x_n, x'_m) / V); pairs [P, V, V].
   */
  shape: number[];
  /** Row-major values (Float64Array for accumulation 'float64'); may live in a SharedArrayBuffer. */
  data: Float32Array | Float64Array;
  /** Accumulation precision used. */
  accumulation: NtkAccumulation;
  /** Where the contraction ran (diagonal and pairs: 'tfjs' in float32, 'js' in float64). */
  contraction?: ResolvedNtkContraction;
  /**
   * Full / trace: floating-point operations of the contraction products actually executed, all
   * threads (2 per multiply-add; padding included, skipped inactive units and mirrored entries not).
   */
  flops?: number;
  /** Layers whose parameters were included, in model order. */
  layers: string[];
  /** Per selected layer: the rule that differentiated it (see {@link NtkLayerRule}). */
  rules: NtkLayerRule[];
  /** Number of parameters P the Jacobian covers. */
  parameterCount: number;
  /** Points per block used. */
  blockSize: number;
  /** Contracting threads used: the main thread plus threads − 1 workers (1 = main thread only). */
  threads: number;
  /** Of the kernel blocks, how many worker threads contracted (0 with one thread). */
  workerBlocks: number;
  /**
   * Of the blocks of points, for how many worker threads computed the factors (forward/backward
   * passes; 0 with one thread, on the Jacobian path, for a model the workers cannot rebuild, e.g.
   * one with a custom layer class registered only on the main thread, and in a new worker's first
   * calls, until it has loaded tfjs between jobs).
   */
  workerFactorBlocks: number;
  /**
   * Wall-clock milliseconds: total; features (the main thread's forward/backward passes: with
   * threads, workers compute some blocks' factors too, see workerFactorBlocks); contraction (with threads:
   * the whole parallel phase, which overlaps the features); workers (start-up of the shared pool,
   * only on the call that started it).
   */
  timings: Record<string, number>;
}

/**
 * One block of the full (or trace) kernel, handed to a streaming sink: rows are the points
 * [rowStart, rowEnd) of x1, columns the points [colStart, colEnd) of x2, and `data` is row-major
 * [(rowEnd−rowStart)·V, (colEnd−colStart)·V] (V = 1 for the trace kernel), point-major inside.
 */
export interface NtkBlock {
  rowStart: number;
  rowEnd: number;
  colStart: number;
  colEnd: number;
  /** [rows, cols] of `data` (entries, not points). */
  shape: [number, number];
  data: Float32Array | Float64Array;
}

/** Receives blocks; awaited before the next block is delivered. */
export type NtkBlockSink = (block: NtkBlock) => void | Promise<void>;

/** Options of {@link NtkFn.stream}. */
export interface NtkStreamOptions {
  /**
   * 'blocks' (default): every block of the full matrix exactly once in an unspecified order (in the
   * symmetric case both a block and its mirror image; only one of them is computed).
   * 'rows': complete row panels (colStart = 0, colEnd = n2) in increasing row order, for writers
   * that append; the symmetric case is then computed in full (no triangle saving).
   */
  order?: 'blocks' | 'rows';
}

/** What a streaming run returns: the {@link NtkResult} without data. */
export type NtkStreamSummary = Omit<NtkResult, 'data'>;

/** Static description of a configured kernel function. */
export interface NtkPlan {
  /** The implementation calls will use. */
  implementation: ResolvedNtkImplementation;
  /** Layers (name (ClassName)) that the structured path does not support (empty when it applies). */
  unsupportedLayers: string[];
  /** Layers whose parameters are included. */
  layers: string[];
  /** Per selected layer: the rule that differentiates it (see {@link NtkLayerRule}). */
  rules: NtkLayerRule[];
  /** The output layer whose softmax/sigmoid is dropped (logits 'pre-activation'), else null. */
  strippedOutput: string | null;
  /** Number of parameters P. */
  parameterCount: number;
  /** Number of outputs V. */
  numOutputs: number;
  /** Shape of one input example. */
  inputShape: number[];
  /** Structured path: the per-layer terms (name, kind, widths); empty for 'jacobian'. */
  terms: Array<{
    layer: string;
    kind: 'factored' | 'identity' | 'gram' | 'tokens' | 'pooled' | 'positions';
    width: number;
  }>;
}

/**
 * A configured kernel function: `await ntk(x1)` (symmetric, x2 = x1) or `await ntk(x1, x2)`.
 * With threads > 1 it uses a process-wide pool of worker threads shared by every kernel function
 * (started on first use; idle workers never keep the process alive).
 */
export interface NtkFn {
  (x1: NtkInput, x2?: NtkInput | null, call?: NtkCallOptions): Promise<NtkResult>;
  /** Stream the 'full' or 'trace' kernel block by block into `sink` instead of holding it. */
  stream(
    x1: NtkInput,
    x2: NtkInput | null | undefined,
    sink: NtkBlockSink,
    options?: NtkStreamOptions,
  ): Promise<NtkStreamSummary>;
  /** The resolved configuration. */
  readonly plan: NtkPlan;
  /**
   * Release the factor arrays kept for the next call and stop the shared worker threads
   * (= terminateNtkWorkers(); they restart on demand) — with `{ workers: false }` they keep running
   * for the next kernel function (computeKernelStores over checkpoints).
   */
  dispose(options?: { workers?: boolean }): Promise<void>;
}
