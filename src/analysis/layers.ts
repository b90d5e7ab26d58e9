/**
 * Per-layer contributions to the kernel: K = Σ_ℓ K_ℓ (src/kernel perLayerNtk, every layer from one
 * computation of the structured factors), summarised per layer by its trace — tr K = Σ_ℓ tr K_ℓ, so
 * the shares add up to 1 — and by its centred kernel–target alignment A(K_ℓ, YYᵀ) (./alignment.ts).
 */
import type * as tf from '@tensorflow/tfjs';
import { assertArgument } from '../errors.js';
import { type NtkInput, type NtkLogits, type NtkParameters, perLayerNtk } from '../kernel/index.js';
import { kernelTargetAlignmentDense } from './alignment.js';

/** One layer's share of the kernel. */
export interface LayerContribution {
  name: string;
  className: string;
  rule: string;
  parameters: number;
  /** tr K_ℓ */
  trace: number;
  /** tr K_ℓ / tr K (the shares of all layers sum to 1). */
  traceShare: number;
  /** Centred alignment of K_ℓ with the targets (NaN without targets). */
  targetAlignment: number;
}

/** Options of {@link layerContributions}. */
export interface LayerContributionsOptions {
  /** 'trace' (default: the scalar kernel tr K/V [n, n], targets [n, V]) or 'full' ([n·V, n·V], targets [n·V, 1]). */
  output?: 'full' | 'trace';
  parameters?: NtkParameters;
  logits?: NtkLogits;
  /** Targets for the alignment (e.g. oneHot(labels, V)); omitted: alignment NaN. */
  targets?: Float64Array;
}

/**
 * Trace and target alignment of every selected layer's kernel on the points `x`, plus the whole
 * kernel's ('total').
 *
 * @example
 *   const { layers } = await layerContributions(model, x, { targets: oneHot(labels, V) });
 *   layers.map((l) => `${l.name}: ${(100 * l.traceShare).toFixed(1)} % of tr K`);
 */
export async function layerContributions(
  model: tf.LayersModel,
  x: NtkInput,
  options: LayerContributionsOptions = {},
): Promise<{ layers: LayerContribution[]; total: { trace: number; targetAlignment: number } }> {
  const per = perLayerNtk(model, x, {
    output: options.output ?? 'trace',
    parameters: options.parameters,
    logits: options.logits,
  });
  const n = per.shape[0];
  const { targets } = options;
  if (targets !== undefined) {
    assertArgument(
      targets instanceof Float64Array && targets.length > 0 && targets.length % n === 0,
      'targets',
      targets,
      `a Float64Array [${n}, C] (one row per kernel row)`,
    );
  }
  const trace = (k: Float64Array) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += k[i * n + i]!;
    return s;
  };
  const align = (k: Float64Array) =>
    targets ? kernelTargetAlignmentDense(k, n, targets) : Promise.resolve(Number.NaN);
  const totalTrace = trace(per.total);
  const layers: LayerContribution[] = [];
  for (const l of per.layers) {
    const t = trace(l.kernel);
    layers.push({
      name: l.name,
      className: l.className,
      rule: l.rule,
      parameters: l.parameters,
      trace: t,
      traceShare: totalTrace > 0 ? t / totalTrace : Number.NaN,
      targetAlignment: await align(l.kernel),
    });
  }
  return { layers, total: { trace: totalTrace, targetAlignment: await align(per.total) } };
}
