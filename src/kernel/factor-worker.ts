/**
 * A worker's share of the factor passes (see ./factor-job.ts): rebuild the model from the job's
 * topology and weights on this worker's backend, plan it exactly as the main thread did, and compute
 * the factor blocks this worker claims into the shared arrays. Loaded by ./worker.ts only for jobs
 * that offer factor blocks (it imports tfjs and the model layers).
 */
import * as tf from '@tensorflow/tfjs';
// Registers entk's own layer classes (ScaledDense, the transformer layers, …) for deserialisation.
import { disposeModel } from '../model/index.js';
import { analyzeModel, leafWeights, ruleTestHooks } from './analyze.js';
import { blockTensor } from './engine.js';
import { setFactorGemmMinWork, setFactorGemmThreads } from './factor-gemm.js';
import { computeClaimedFactors, type FactorSource, viewsOf } from './factor-job.js';
import type { ContractionJob } from './job.js';
import { abortJob } from './loop.js';
import { positionGradTestHooks } from './position-grads.js';
import {
  planStructured,
  type StructuredPlan,
  structuredFeatures,
  structuredTestHooks,
} from './structured.js';
import type { TermMeta } from './terms.js';

interface Built {
  key: string;
  model: tf.LayersModel;
  plan: StructuredPlan;
  /** Tensors the model holds (its weights): not a leak. */
  tensors: number;
}

/** The model of the last key this worker built (one at a time: a new key disposes the old one). */
let built: Built | null = null;

/** Tensors this worker keeps on purpose (the cached model's weights). */
export function keptTensors(): number {
  return built?.tensors ?? 0;
}

const sameTerms = (a: TermMeta[], b: TermMeta[]) => JSON.stringify(a) === JSON.stringify(b);

async function modelFor(source: FactorSource, terms: TermMeta[]): Promise<Built> {
  if (built?.key !== source.key) {
    if (built) disposeModel(built.model);
    built = null;
    const before = tf.memory().numTensors;
    const variables = new Set(Object.keys(tf.engine().registeredVariables));
    let model: tf.LayersModel;
    try {
      model = await tf.models.modelFromJSON({
        modelTopology: source.topology,
      } as unknown as Parameters<typeof tf.models.modelFromJSON>[0]);
    } catch (error) {
      // Layers built before the failing one (e.g. an unknown class) have created their weights.
      for (const [name, v] of Object.entries(tf.engine().registeredVariables)) {
        if (!variables.has(name)) v.dispose();
      }
      throw error;
    }
    try {
      ruleTestHooks.autodiff = new Set(source.hooks.autodiff);
      structuredTestHooks.sparseEmbeddings = source.hooks.sparseEmbeddings;
      structuredTestHooks.pooledConvolutions = source.hooks.pooledConvolutions;
      structuredTestHooks.pooledPixels = source.hooks.pooledPixels;
      structuredTestHooks.positionTerms = source.hooks.positionTerms;
      const analysis = analyzeModel(model, source.parameters, { logits: source.logits });
      const plan = planStructured(analysis, source.output);
      if (!sameTerms(plan.terms, terms)) throw new Error('the rebuilt model plans different terms');
      built = { key: source.key, model, plan, tensors: tf.memory().numTensors - before };
    } catch (error) {
      disposeModel(model);
      throw error;
    }
  }
  // The weights of this call (a training step between calls changes them), matched by layer and
  // position in the layer. Assigned to the variables directly: LayerVariable.write would apply
  // weight constraints, which the main thread's weights need not satisfy (neither training nor
  // initialisation applies them).
  const weights = leafWeights(built.model);
  if (weights.length !== source.shapes.length) throw new Error('the rebuilt model has other weights');
  const all = new Float32Array(source.weights);
  let offset = 0;
  tf.tidy(() => {
    weights.forEach(({ layer, weight }, i) => {
      const shape = source.shapes[i]!;
      if (layer !== source.layers[i] || String(weight.shape) !== String(shape)) {
        throw new Error(
          `weight ${i} of the rebuilt model (${weight.name}) does not match layer ${source.layers[i]}`,
        );
      }
      const size = shape.reduce((a, b) => a * b, 1);
      (weight.read() as tf.Variable).assign(tf.tensor(all.subarray(offset, offset + size), shape, 'float32'));
      offset += size;
    });
  });
  return built;
}

/**
 * Compute the factor blocks this worker claims, posting each finished position through
 * `onFeatures`. Returns null, or why this worker took no block (its model could not be rebuilt
 * here, e.g. a custom layer class registered only on the main thread): the main thread then
 * computes them. A failure while computing a claimed block aborts the job and throws.
 */
export async function computeFactorBlocks(
  job: ContractionJob,
  onFeatures: (position: number) => void,
): Promise<string | null> {
  const source = job.factors!;
  let plan: StructuredPlan;
  try {
    plan = (await modelFor(source, job.terms)).plan;
  } catch (error) {
    return (error as Error).message;
  }
  const previousMinWork = setFactorGemmMinWork(source.hooks.gemmMinWork);
  positionGradTestHooks.enabled = source.hooks.ownGradientRows;
  structuredTestHooks.replicatedAttention = source.hooks.replicatedAttention;
  // One factor GEMM thread: the other threads are busy with factor blocks of their own.
  setFactorGemmThreads(1);
  const views = job.sets.map((set) => viewsOf(set.terms));
  try {
    computeClaimedFactors(
      job,
      views,
      (set, k, dest) => {
        const points = source.points[set]!;
        const offsets = job.sets[set]!.offsets;
        const data = points.dtype === 'int32' ? new Int32Array(points.data) : new Float32Array(points.data);
        const x = blockTensor(data, points.exampleShape, points.dtype, offsets[k]!, offsets[k + 1]!);
        try {
          return structuredFeatures(plan, x, dest);
        } finally {
          x.dispose();
        }
      },
      onFeatures,
    );
  } catch (error) {
    abortJob(job);
    throw error;
  } finally {
    setFactorGemmMinWork(previousMinWork);
  }
  return null;
}
