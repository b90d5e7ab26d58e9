/**
 * The empirical neural tangent kernel (eNTK) of a tfjs model: K(x, x') = J(x) J(x')ᵀ, V×V per pair
 * of points, J = ∂f/∂θ the Jacobian of the V logits with respect to the trainable parameters
 * (docs/theory.md#notation, docs/theory.md#computing-the-entk).
 *
 * Public function → implementation enum → table of implementations (neural-tangents'
 * `empirical_ntk_fn` style): configure once with {@link empiricalNtkFn}, call the returned function
 * on points. Index convention of the full kernel: point-major, entry K_ij(x_n, x'_m) at row n·V + i,
 * column m·V + j (see ./types.ts).
 *
 * Implementations:
 * - 'structured': layer-wise factors (layer inputs A from one forward pass over the model's graph,
 *   back-propagated signals Δ from one backward pass over a V-fold replicated batch), contracted
 *   per layer by its rule (./structured.ts); never materialises the whole-model J. Any graph of
 *   single-output layer calls (residuals, merges, nested models, shared layers); selected layers
 *   without a rule are differentiated alone by autodiff ('autodiff' in the plan's rules).
 * - 'jacobian': J by tfjs autodiff, one point and logit at a time, contracted J Jᵀ over 2048-parameter
 *   chunks whose float32 products are summed in float64 (./jacobian.ts, ./chunked.ts); any model.
 * - 'auto': structured when entk can run the model's graph node by node, else jacobian.
 *
 * Contractions (float32): entk's own WebAssembly SIMD kernels ('wasm', ./wasm-terms.ts: fused Gram
 * scaling, inactive units skipped, gated last hidden layer, one triangle) or tf.matMul ('tfjs',
 * ./tf-terms.ts); float64 in plain JS (./terms.ts). Orchestration, blocks and threads: ./engine.ts.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type * as tf from '@tensorflow/tfjs';
import { assertGradientsTrusted, installWasmKernelFixes } from '../backend/index.js';
import { InvalidArgumentError, UnsupportedError } from '../errors.js';
import {
  analyzeModel,
  dilationHandled,
  type ModelAnalysis,
  modelTokenIds,
  ruleTestHooks,
} from './analyze.js';
import {
  checkTokenIds,
  computeMatrix,
  type EngineState,
  type Points,
  releaseFactorArrays,
  toPoints,
} from './engine.js';
import { jacobianTerms } from './jacobian.js';
import { terminateNtkWorkers } from './job.js';
import { computeDiagonal, computePairs, normalizePairs } from './pairs.js';
import { graphForward, planStructured, type StructuredPlan, structuredTestHooks } from './structured.js';
import type { TermMeta } from './terms.js';
import {
  DEFAULT_NTK_IMPLEMENTATION,
  NTK_ACCUMULATIONS,
  NTK_CONTRACTIONS,
  NTK_IMPLEMENTATIONS,
  NTK_LOGITS,
  NTK_OUTPUTS,
  type NtkBlockSink,
  type NtkCallOptions,
  type NtkFn,
  type NtkImplementation,
  type NtkInput,
  type NtkLayerRule,
  type NtkLogits,
  type NtkOptions,
  type NtkOutput,
  type NtkPlan,
  type NtkResult,
  type NtkStreamOptions,
  type NtkStreamSummary,
  type ResolvedNtkImplementation,
} from './types.js';

/** A stand-in for model.apply computing the logits of `analysis` (see graphForward). */
function logitsModel(analysis: ModelAnalysis): tf.LayersModel {
  const forward = graphForward(analysis);
  return { apply: (x: tf.Tensor) => forward(x) } as unknown as tf.LayersModel;
}

/**
 * The model's logits at `x` ([b, ...inputShape]) as the eNTK sees them: model.predict, or with
 * logits 'pre-activation' the values before the output layer's softmax/sigmoid. Throws like
 * {@link empiricalNtkFn} for a probability output without that option. The caller disposes the result.
 */
export function modelLogits(model: tf.LayersModel, x: tf.Tensor, logits: NtkLogits = 'output'): tf.Tensor {
  return logitsFunction(model, logits)(x);
}

/** modelLogits for many batches: the model analysed once. */
export function logitsFunction(
  model: tf.LayersModel,
  logits: NtkLogits = 'output',
): (x: tf.Tensor) => tf.Tensor {
  const analysis = logits === 'output' ? null : analyzeModel(model, 'all', { logits });
  const tokenIds = analysis ? analysis.tokenIds : modelTokenIds(model);
  const forward = analysis ? graphForward(analysis) : (x: tf.Tensor) => model.predict(x) as tf.Tensor;
  return (x) => {
    // Ids an Embedding cannot look up are refused (tfjs would fail inside GatherV2, or truncate a fraction).
    if (tokenIds.length > 0) checkTokenIds(x.dataSync(), x.shape.slice(1), tokenIds, 'x');
    return forward(x);
  };
}

/** model.toJSON of the model as configured, for worker threads to rebuild it; null if tfjs cannot serialise it. */
function serialisedTopology(model: tf.LayersModel): object | null {
  try {
    return model.toJSON(null, false) as object;
  } catch {
    return null;
  }
}

/** Default memory budget for per-point factors: 1 GiB. */
export const DEFAULT_NTK_MEMORY_BUDGET = 2 ** 30;

/** What an implementation prepares: the resolved choice, the structured plan (if any), the terms. */
interface Prepared {
  implementation: ResolvedNtkImplementation;
  plan: StructuredPlan | null;
  terms: TermMeta[];
  rules: NtkLayerRule[];
}

/** The implementation table (a missing case is a compile error). */
const IMPLEMENTATIONS: Record<NtkImplementation, (analysis: ModelAnalysis, output: NtkOutput) => Prepared> = {
  structured: (analysis, output) => {
    if (analysis.unsupported.length > 0) {
      throw new UnsupportedError(
        `implementation 'structured' does not support: ${analysis.unsupported.join('; ')} (use implementation 'jacobian' or 'auto')`,
      );
    }
    const plan = planStructured(analysis, output);
    return { implementation: 'structured', plan, terms: plan.terms, rules: plan.rules };
  },
  jacobian: (analysis) => ({
    implementation: 'jacobian',
    plan: null,
    terms: jacobianTerms(analysis.parameterCount),
    rules: analysis.selectedLayers.map((l) => ({
      name: l.name,
      className: l.getClassName(),
      rule: 'jacobian',
      parameters: l.trainableWeights.reduce(
        (s, v) => s + (v.shape as number[]).reduce((a, b) => a * b, 1),
        0,
      ),
      uses: analysis.graph ? analysis.graph.nodes.filter((n) => n.layer === l).length : 1,
    })),
  }),
  auto: (analysis, output) =>
    IMPLEMENTATIONS[analysis.unsupported.length === 0 ? 'structured' : 'jacobian'](analysis, output),
};

function validateOptions(options: NtkOptions): void {
  const {
    output,
    implementation,
    accumulation,
    contraction,
    blockSize,
    memoryBudget,
    threads,
    progress,
    logits,
  } = options;
  if (logits !== undefined && !(NTK_LOGITS as readonly string[]).includes(logits)) {
    throw new InvalidArgumentError('logits', logits, `one of ${NTK_LOGITS.join(', ')}`);
  }
  if (output !== undefined && !(NTK_OUTPUTS as readonly string[]).includes(output)) {
    throw new InvalidArgumentError('output', output, `one of ${NTK_OUTPUTS.join(', ')}`);
  }
  if (implementation !== undefined && !(NTK_IMPLEMENTATIONS as readonly string[]).includes(implementation)) {
    throw new InvalidArgumentError(
      'implementation',
      implementation,
      `one of ${NTK_IMPLEMENTATIONS.join(', ')}`,
    );
  }
  if (accumulation !== undefined && !(NTK_ACCUMULATIONS as readonly string[]).includes(accumulation)) {
    throw new InvalidArgumentError('accumulation', accumulation, `one of ${NTK_ACCUMULATIONS.join(', ')}`);
  }
  if (contraction !== undefined && !(NTK_CONTRACTIONS as readonly string[]).includes(contraction)) {
    throw new InvalidArgumentError('contraction', contraction, `one of ${NTK_CONTRACTIONS.join(', ')}`);
  }
  if (accumulation === 'float64' && (contraction === 'wasm' || contraction === 'tfjs')) {
    throw new InvalidArgumentError(
      'contraction (--contraction)',
      contraction,
      "'auto' with accumulation 'float64' (--float64): float64 kernels are accumulated in JavaScript, the wasm and tfjs contractions are float32 only",
    );
  }
  if (blockSize !== undefined && !(Number.isInteger(blockSize) && blockSize >= 1)) {
    throw new InvalidArgumentError('blockSize', blockSize, 'an integer >= 1 (points per block)');
  }
  if (memoryBudget !== undefined && !(Number.isFinite(memoryBudget) && memoryBudget >= 2 ** 20)) {
    throw new InvalidArgumentError('memoryBudget', memoryBudget, 'a number of bytes >= 1 MiB');
  }
  if (
    threads !== undefined &&
    threads !== 'auto' &&
    !(Number.isInteger(threads) && threads >= 1 && threads <= 256)
  ) {
    throw new InvalidArgumentError('threads', threads, "an integer in [1, 256] or 'auto'");
  }
  if (progress !== undefined && typeof progress !== 'boolean') {
    throw new InvalidArgumentError('progress', progress, 'a boolean');
  }
}

/**
 * Configure an eNTK function for `model` (a classifier with logits [batch, V]).
 *
 * The returned function computes, for points x1 ([n1, ...inputShape]) and optionally x2 ([n2, ...]):
 * - output 'full' (default): data of shape [n1·V, n2·V], entry K_ij(x1_n, x2_m) at row n·V + i,
 *   column m·V + j; without x2 the kernel of x1 with itself (symmetric; only one triangle of
 *   blocks is computed and mirrored);
 * - 'diagonal': [n1, V, V], the blocks K(x_n, x_n) (x2 must be omitted);
 * - 'trace': [n1, n2], tr K(x_n, x'_m) / V (neural-tangents' default scalar kernel);
 * - 'pairs': [P, V, V], K(x1_a, x2_b) for the pairs given per call.
 * The model's weights are read at call time (a training step between calls is seen).
 *
 * @example
 * const ntk = empiricalNtkFn(model, { output: 'full' });
 * const k = await ntk(xTrain);        // k.shape = [n·V, n·V]
 * const kTestTrain = await ntk(xTest, xTrain);
 * const trace = await empiricalNtkFn(model, { output: 'trace' })(xTest, xTrain); // [nTest, nTrain]
 */
export function empiricalNtkFn(model: tf.LayersModel, options: NtkOptions = {}): NtkFn {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError('options', options, 'an options object');
  }
  validateOptions(options);
  // The wasm backend lacks Conv2DBackpropFilter and has slow transposed matMuls (src/model).
  installWasmKernelFixes();
  const {
    output = 'full',
    implementation = DEFAULT_NTK_IMPLEMENTATION,
    parameters = 'all',
    accumulation = 'float32',
    contraction = 'auto',
    blockSize,
    memoryBudget = DEFAULT_NTK_MEMORY_BUDGET,
    threads = 1,
    progress = true,
    logits = 'output',
  } = options;
  const analysis = analyzeModel(model, parameters, { logits });
  if (logits === 'pre-activation' && !analysis.graph) {
    throw new UnsupportedError(
      `model ${model.name}: logits 'pre-activation' needs a graph entk can run call by call (${analysis.unsupported.join('; ')})`,
    );
  }
  const { implementation: resolved, plan, terms, rules } = IMPLEMENTATIONS[implementation](analysis, output);
  // Never a silently wrong kernel: refuse layers whose gradient kernels this backend is not trusted
  // with (dilated convolutions: see dilationHandled).
  assertGradientsTrusted(model, undefined, {
    dilationHandled: dilationHandled(model, rules, resolved === 'structured'),
  });
  const state: EngineState = {
    source: {
      model,
      parameters,
      logits,
      topology: serialisedTopology(model),
      output,
      hooks: {
        autodiff: [...ruleTestHooks.autodiff],
        sparseEmbeddings: structuredTestHooks.sparseEmbeddings,
        pooledConvolutions: structuredTestHooks.pooledConvolutions,
        pooledPixels: structuredTestHooks.pooledPixels,
        positionTerms: structuredTestHooks.positionTerms,
      },
      key: randomUUID(),
    },
    // The Jacobian path differentiates model.apply: with a dropped output activation, entk's own
    // run of the graph (the same layers and weights) stands in for it.
    model: analysis.strippedOutput ? logitsModel(analysis) : model,
    analysis,
    implementation: resolved,
    plan,
    terms,
    V: analysis.numOutputs,
    accumulation,
    contraction,
    blockSize,
    memoryBudget,
    threads: threads === 'auto' ? os.availableParallelism() : threads,
    progress,
  };
  const ntkPlan: NtkPlan = {
    implementation: resolved,
    unsupportedLayers: [...analysis.unsupported],
    layers: analysis.selectedLayers.map((l) => l.name),
    rules,
    strippedOutput: analysis.strippedOutput,
    parameterCount: analysis.parameterCount,
    numOutputs: analysis.numOutputs,
    inputShape: [...analysis.inputShape],
    terms:
      resolved === 'structured'
        ? terms.map((t: TermMeta) => ({ layer: t.layer, kind: t.kind, width: t.width || t.dIn }))
        : [],
  };

  const points = (input: NtkInput, argument: string): Points =>
    toPoints(input, argument, analysis.inputShape, analysis.inputDtype, analysis.tokenIds);

  const summary = (n1: number, n2: number, kind: NtkResult['kind'], shape: number[]): NtkStreamSummary => ({
    kind,
    implementation: resolved,
    unsupportedLayers: ntkPlan.unsupportedLayers,
    n1,
    n2,
    numOutputs: state.V,
    shape,
    accumulation,
    layers: ntkPlan.layers,
    rules: ntkPlan.rules,
    parameterCount: analysis.parameterCount,
    blockSize: 0,
    threads: 1,
    workerBlocks: 0,
    workerFactorBlocks: 0,
    timings: {},
  });

  /** The full or trace kernel of p1 × (p2 ?? p1): in memory (sink null) or streamed to `sink`. */
  const matrix = async (
    p1: Points,
    p2: Points | null,
    sink: NtkBlockSink | null,
    order: 'blocks' | 'rows',
    out?: Float32Array | Float64Array,
  ): Promise<{ summary: NtkStreamSummary; data: Float32Array | Float64Array | null }> => {
    const mode = output as 'full' | 'trace';
    const n2 = p2 ? p2.n : p1.n;
    const stride = mode === 'full' ? state.V : 1;
    const r = await computeMatrix(state, { x1: p1, x2: p2, mode, sink, order, out });
    return {
      summary: {
        ...summary(p1.n, n2, mode, [p1.n * stride, n2 * stride]),
        blockSize: r.blockSize,
        threads: r.threads,
        workerBlocks: r.workerBlocks,
        workerFactorBlocks: r.workerFactorBlocks,
        contraction: r.contraction,
        flops: r.flops,
        timings: r.timings,
      },
      data: r.data,
    };
  };

  /** The caller's output array, checked against what the kernel needs (NtkCallOptions.out). */
  const checkOut = (
    out: unknown,
    length: number,
    inputs: Array<[string, Points]>,
  ): Float32Array | Float64Array => {
    const float64 = state.accumulation === 'float64';
    const type = float64 ? 'Float64Array' : 'Float32Array';
    const shared = state.threads > 1;
    const want = `a ${type} of ${length} entries${shared ? " in a SharedArrayBuffer (threads > 1: workers write into it; every result's data of this function is one)" : ''}`;
    const ok =
      (float64 ? out instanceof Float64Array : out instanceof Float32Array) &&
      (out as Float32Array).length === length &&
      (!shared || (out as Float32Array).buffer instanceof SharedArrayBuffer);
    if (!ok) throw new InvalidArgumentError('out', out, want);
    const o = out as Float32Array | Float64Array;
    // The points' factors are computed block by block while the kernel is written: no shared bytes.
    const overlaps = (d: ArrayBufferView) =>
      d.buffer === o.buffer &&
      d.byteOffset < o.byteOffset + o.byteLength &&
      o.byteOffset < d.byteOffset + d.byteLength;
    for (const [name, p] of inputs) {
      if (overlaps(p.data)) {
        throw new InvalidArgumentError(
          'out',
          out,
          `${want}, not sharing memory with the points (here ${name})`,
        );
      }
    }
    return o;
  };

  const fn = async (x1: NtkInput, x2?: NtkInput | null, call: NtkCallOptions = {}): Promise<NtkResult> => {
    const p1 = points(x1, 'x1');
    const p2 = x2 == null ? null : points(x2, 'x2');
    const n2 = p2 ? p2.n : p1.n;
    const V = state.V;
    if (output === 'full' || output === 'trace') {
      const stride = output === 'full' ? V : 1;
      const inputs: Array<[string, Points]> = p2
        ? [
            ['x1', p1],
            ['x2', p2],
          ]
        : [['x1', p1]];
      const out =
        call.out === undefined ? undefined : checkOut(call.out, p1.n * stride * n2 * stride, inputs);
      const { summary: s, data } = await matrix(p1, p2, null, 'blocks', out);
      return { ...s, data: data! };
    }
    if (call.out !== undefined) {
      throw new InvalidArgumentError('out', call.out, `nothing for output '${output}'`);
    }
    if (output === 'diagonal') {
      if (p2)
        throw new InvalidArgumentError(
          'x2',
          'a second point set',
          "nothing for output 'diagonal' (use 'pairs')",
        );
      const r = computeDiagonal(state, p1);
      return {
        ...summary(p1.n, p1.n, output, [p1.n, V, V]),
        data: r.data,
        blockSize: r.blockSize,
        contraction: r.contraction,
        timings: r.timings,
      };
    }
    const { idxP, idxQ } = normalizePairs(call.pairs, p1.n, n2);
    const r = computePairs(state, p1, p2, idxP, idxQ);
    return {
      ...summary(p1.n, n2, output, [idxP.length, V, V]),
      data: r.data,
      contraction: r.contraction,
      timings: r.timings,
    };
  };

  const stream = async (
    x1: NtkInput,
    x2: NtkInput | null | undefined,
    sink: NtkBlockSink,
    streamOptions: NtkStreamOptions = {},
  ): Promise<NtkStreamSummary> => {
    if (output !== 'full' && output !== 'trace') {
      throw new InvalidArgumentError('output', output, "'full' or 'trace' for streaming");
    }
    if (typeof sink !== 'function')
      throw new InvalidArgumentError('sink', sink, 'a function receiving blocks');
    const order = streamOptions.order ?? 'blocks';
    if (order !== 'blocks' && order !== 'rows')
      throw new InvalidArgumentError('order', order, "'blocks' or 'rows'");
    return (await matrix(points(x1, 'x1'), x2 == null ? null : points(x2, 'x2'), sink, order)).summary;
  };

  return Object.assign(fn, {
    stream,
    plan: ntkPlan,
    dispose: async (options: { workers?: boolean } = {}) => {
      releaseFactorArrays(state);
      if (options.workers ?? true) await terminateNtkWorkers();
    },
  });
}
