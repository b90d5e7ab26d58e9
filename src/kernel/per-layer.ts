/**
 * Per-layer contributions to the eNTK in one pass. With the structured factors
 * (docs/theory.md#structured-derivatives) the kernel is a sum of terms, each belonging to one
 * parameterised layer ℓ (./terms.ts): K = Σ_ℓ K_ℓ with K_ℓ(x, x′) = J_ℓ(x) J_ℓ(x′)ᵀ, J_ℓ the Jacobian
 * of the logits with respect to layer ℓ's parameters. One forward and one backward pass over the
 * points give every term's factors (./structured.ts structuredFeatures); each layer's terms are then
 * contracted on their own, block by block of points, by the block computers of the whole kernel
 * (./contractions.ts: entk's WebAssembly SIMD kernels in float32 by default, plain-JS float64 sums
 * with accumulation 'float64'). Per-layer kernels therefore add up to the kernel of the same
 * parameters up to the rounding of those sums.
 */
import * as tf from '@tensorflow/tfjs';
import { assertGradientsTrusted, installWasmKernelFixes } from '../backend/index.js';
import { InvalidArgumentError, UnsupportedError } from '../errors.js';
import { analyzeModel, dilationHandled } from './analyze.js';
import { makeBlockComputer, resolveContraction } from './contractions.js';
import { partition, toPoints } from './engine.js';
import { planStructured, structuredFeatures, type TermFeatures } from './structured.js';
import { blockView, type ContractionMode, type TermMeta, writeBlock } from './terms.js';
import {
  NTK_ACCUMULATIONS,
  NTK_CONTRACTIONS,
  type NtkAccumulation,
  type NtkContraction,
  type NtkInput,
  type NtkLayerRule,
  type NtkLogits,
  type NtkParameters,
  type ResolvedNtkContraction,
} from './types.js';

/** Options of {@link perLayerNtk}. */
export interface PerLayerNtkOptions {
  /** 'full' ([n·V, n·V], point-major) or 'trace' ([n, n], tr K / V). Default 'full'. */
  output?: 'full' | 'trace';
  /** Parameters whose layers are included (as in empiricalNtkFn). Default 'all'. */
  parameters?: NtkParameters;
  /** Logits the kernel differentiates (as in empiricalNtkFn). Default 'output'. */
  logits?: NtkLogits;
  /**
   * Sums of the contraction (as in empiricalNtkFn): 'float32' (default; entk's WebAssembly SIMD
   * kernels, or tf.matMul per `contraction`) or 'float64' (plain JS: exact to float64 rounding of
   * the same float32 factors, about 10–50× slower).
   */
  accumulation?: NtkAccumulation;
  /** float32 contraction kernels (as in empiricalNtkFn); default 'auto'. */
  contraction?: NtkContraction;
}

/** The kernel of each selected layer of a model on one point set. */
export interface PerLayerNtk {
  kind: 'full' | 'trace';
  /** n (points) */
  points: number;
  numOutputs: number;
  /** [rows, cols] of every kernel. */
  shape: [number, number];
  /** One entry per layer, in the model's order: its rule and its kernel (float64, row-major). */
  layers: Array<NtkLayerRule & { kernel: Float64Array }>;
  /** Σ over layers (the kernel of all selected parameters). */
  total: Float64Array;
  /** Accumulation precision used. */
  accumulation: NtkAccumulation;
  /** Where the contraction ran ('js' for float64). */
  contraction: ResolvedNtkContraction;
}

/** Points per block of a layer's contraction (a block's output: (128·V)² floats). */
const PER_LAYER_BLOCK = 128;

/** Bytes of packed factors a layer's block computer may keep between blocks. */
const PER_LAYER_CACHE = 256 * 2 ** 20;

/**
 * The kernel of one layer's terms on n points whose factors `features` hold all points, block by
 * block (a ≤ b, mirrored): [n·V, n·V] (full) or [n, n] (trace), float64.
 */
function layerKernel(
  terms: TermMeta[],
  features: TermFeatures[],
  V: number,
  n: number,
  mode: ContractionMode,
  contraction: ResolvedNtkContraction,
): Float64Array {
  const stride = mode === 'full' ? V : 1;
  const size = n * stride;
  const kernel = new Float64Array(size * size);
  const offsets = partition(n, PER_LAYER_BLOCK);
  const computer = makeBlockComputer(contraction, terms, V, mode, PER_LAYER_CACHE);
  try {
    const block = (k: number) => blockView(terms, V, offsets, features, k, `${k}`);
    for (let a = 0; a + 1 < offsets.length; a++) {
      const row = block(a);
      for (let b = a; b + 1 < offsets.length; b++) {
        const out = computer.compute(row, b === a ? row : block(b), b !== a);
        writeBlock(kernel, size, stride, offsets, offsets, a, b, out.data, true, out.transposed);
        out.done();
      }
    }
  } finally {
    computer.release();
  }
  return kernel;
}

/**
 * The per-layer eNTKs K_ℓ(x, x) of `model` on the points `x` ([n, ...inputShape]), from ONE
 * computation of the structured factors (not one kernel call per layer). Needs a model entk can run
 * layer by layer (the 'structured' implementation); all n points' factors are held at once.
 *
 * @example
 *   const { layers, total } = perLayerNtk(model, xTrain, { output: 'trace' });
 *   layers.map((l) => [l.name, trace(l.kernel)]);
 */
export function perLayerNtk(
  model: tf.LayersModel,
  x: NtkInput,
  options: PerLayerNtkOptions = {},
): PerLayerNtk {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError('options', options, 'an options object');
  }
  const {
    output = 'full',
    parameters = 'all',
    logits = 'output',
    accumulation = 'float32',
    contraction = 'auto',
  } = options;
  if (output !== 'full' && output !== 'trace') {
    throw new InvalidArgumentError('output', output, "'full' or 'trace'");
  }
  if (!NTK_ACCUMULATIONS.includes(accumulation)) {
    throw new InvalidArgumentError('accumulation', accumulation, `one of ${NTK_ACCUMULATIONS.join(', ')}`);
  }
  if (!NTK_CONTRACTIONS.includes(contraction)) {
    throw new InvalidArgumentError('contraction', contraction, `one of ${NTK_CONTRACTIONS.join(', ')}`);
  }
  installWasmKernelFixes();
  const analysis = analyzeModel(model, parameters, { logits });
  if (analysis.unsupported.length > 0) {
    throw new UnsupportedError(
      `per-layer kernels need the structured implementation, which does not support: ${analysis.unsupported.join('; ')}`,
    );
  }
  const plan = planStructured(analysis, output);
  assertGradientsTrusted(model, undefined, {
    dilationHandled: dilationHandled(model, plan.rules, true),
  });
  const points = toPoints(x, 'x', analysis.inputShape, analysis.inputDtype, analysis.tokenIds);
  const V = analysis.numOutputs;
  const n = points.n;
  const xt = tf.tensor(points.data, [n, ...points.exampleShape], points.dtype);
  let factors: TermFeatures[];
  try {
    factors = structuredFeatures(plan, xt);
  } finally {
    xt.dispose();
  }
  const size = output === 'full' ? n * V : n;
  const total = new Float64Array(size * size);
  const resolved = resolveContraction(accumulation, contraction, tf.getBackend());
  const layers = plan.rules.map((rule) => {
    const indices = plan.terms.flatMap((t, k) => (t.layer === rule.name ? [k] : []));
    const kernel = layerKernel(
      indices.map((k) => plan.terms[k]!),
      indices.map((k) => factors[k]!),
      V,
      n,
      output,
      resolved,
    );
    for (let e = 0; e < kernel.length; e++) total[e] = total[e]! + kernel[e]!;
    return { ...rule, kernel };
  });
  return {
    kind: output,
    points: n,
    numOutputs: V,
    shape: [size, size],
    layers,
    total,
    accumulation,
    contraction: resolved,
  };
}
