/**
 * Per-layer contributions to the eNTK in one pass. With the structured factors
 * (docs/theory.md#structured-derivatives) the kernel is a sum of terms, each belonging to one
 * parameterised layer ℓ (./terms.ts): K = Σ_ℓ K_ℓ with K_ℓ(x, x′) = J_ℓ(x) J_ℓ(x′)ᵀ, J_ℓ the Jacobian
 * of the logits with respect to layer ℓ's parameters. One forward and one backward pass over the
 * points give every term's factors (./structured.ts structuredFeatures); each layer's terms are then
 * contracted on their own (float64, ./terms.ts JsBlockComputer). Per-layer kernels therefore add up
 * to the kernel of the same parameters up to float64 rounding of the same float32 factors.
 */
import * as tf from '@tensorflow/tfjs';
import { assertGradientsTrusted, installWasmKernelFixes } from '../backend/index.js';
import { InvalidArgumentError, UnsupportedError } from '../errors.js';
import { analyzeModel } from './analyze.js';
import { toPoints } from './engine.js';
import { planStructured, structuredFeatures, type TermFeatures } from './structured.js';
import { JsBlockComputer } from './terms.js';
import type { NtkInput, NtkLayerRule, NtkLogits, NtkParameters } from './types.js';

/** Options of {@link perLayerNtk}. */
export interface PerLayerNtkOptions {
  /** 'full' ([n·V, n·V], point-major) or 'trace' ([n, n], tr K / V). Default 'full'. */
  output?: 'full' | 'trace';
  /** Parameters whose layers are included (as in empiricalNtkFn). Default 'all'. */
  parameters?: NtkParameters;
  /** Logits the kernel differentiates (as in empiricalNtkFn). Default 'output'. */
  logits?: NtkLogits;
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
  const { output = 'full', parameters = 'all', logits = 'output' } = options;
  if (output !== 'full' && output !== 'trace') {
    throw new InvalidArgumentError('output', output, "'full' or 'trace'");
  }
  installWasmKernelFixes();
  const analysis = analyzeModel(model, parameters, { logits });
  if (analysis.unsupported.length > 0) {
    throw new UnsupportedError(
      `per-layer kernels need the structured implementation, which does not support: ${analysis.unsupported.join('; ')}`,
    );
  }
  const plan = planStructured(analysis);
  assertGradientsTrusted(model, undefined, {
    dilationHandled: (layer) => plan.rules.find((r) => r.name === layer)?.rule !== 'autodiff',
  });
  const points = toPoints(x, 'x', analysis.inputShape, analysis.inputDtype);
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
  const layers = plan.rules.map((rule) => {
    const indices = plan.terms.flatMap((t, k) => (t.layer === rule.name ? [k] : []));
    const computer = new JsBlockComputer(
      indices.map((k) => plan.terms[k]!),
      V,
      output,
    );
    const input = { key: rule.name, points: n, terms: indices.map((k) => factors[k]!) };
    const kernel = computer.compute(input, input, false).data as Float64Array;
    for (let e = 0; e < kernel.length; e++) total[e] = total[e]! + kernel[e]!;
    return { ...rule, kernel };
  });
  return { kind: output, points: n, numOutputs: V, shape: [size, size], layers, total };
}
