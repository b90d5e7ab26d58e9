/**
 * The pooled rule (src/kernel/structured.ts pooledTerm) on the cpu backend — whose MaxPool gradient
 * is tfjs's own, not entk's wasm fix: in both forms (slot patches, input pixels), every pooled
 * network against the whole-model Jacobian path (tfjs autodiff of the model, float64 sums; ≤ 1e-5)
 * and/or float64 finite differences (≤ 1e-5), and against the gram rule (≤ 1e-6).
 */
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { empiricalNtkFn, finiteDifferenceNtk } from '../../src/kernel/index.js';
import { structuredTestHooks } from '../../src/kernel/structured.js';
import { buildModel, resolveModelSpec } from '../../src/model/index.js';
import { normalPoints, relMaxError } from './helpers.js';
import { bnNet, seqNet, stridedNet } from './pooled-nets.js';

await tf.setBackend('cpu');
beforeAll(() => {
  if (tf.getBackend() !== 'cpu') throw new Error('expected the cpu backend');
});
afterEach(() => {
  structuredTestHooks.pooledConvolutions = 'cost';
  structuredTestHooks.pooledPixels = 'cost';
});

const cnn = () => buildModel(resolveModelSpec('cnn'), { inputShape: [64], numClasses: 10, seed: 3 });

// [name, model, input shape, references: the Jacobian path (tfjs has no gradient for dilated
// convolutions), finite differences (the reference lacks MaxPooling1D; the cnn preset's 13 706
// parameters take a minute there)]
type References = { jacobian: boolean; differences: boolean };
const nets: Array<[string, () => tf.LayersModel, number[], References]> = [
  ['cnn preset', cnn, [64], { jacobian: true, differences: false }],
  ['Conv1D → MaxPooling1D (overlapping windows)', seqNet, [12, 3], { jacobian: true, differences: false }],
  [
    "Conv2D → BN → ReLU → MaxPool 'same'; conv without bias → MaxPool",
    bnNet,
    [8, 8, 2],
    { jacobian: true, differences: true },
  ],
  [
    "strided 'same' and dilated 'valid' Conv2D → MaxPool (stride 1)",
    stridedNet,
    [9, 9, 2],
    { jacobian: false, differences: true },
  ],
];

describe.each(['never', 'always'] as const)(
  'pooled rule on the cpu backend, from input pixels: %s',
  (pixels) => {
    it.each(nets)('%s: = the references, = the gram rule', async (_, make, shape, references) => {
      const model = make();
      const x = normalPoints(4, shape, 11);
      try {
        structuredTestHooks.pooledConvolutions = 'always';
        structuredTestHooks.pooledPixels = pixels;
        const pooled = await empiricalNtkFn(model, { progress: false })(x);
        expect(pooled.rules!.some((r) => r.rule.endsWith('-pooled'))).toBe(true);
        if (references.jacobian) {
          const jacobian = await empiricalNtkFn(model, {
            progress: false,
            implementation: 'jacobian',
            accumulation: 'float64',
          })(x);
          expect(relMaxError(pooled.data, jacobian.data)).toBeLessThanOrEqual(1e-5);
        }
        if (references.differences) {
          expect(relMaxError(pooled.data, finiteDifferenceNtk(model, x).data)).toBeLessThanOrEqual(1e-5);
        }
        structuredTestHooks.pooledConvolutions = 'never';
        const gram = await empiricalNtkFn(model, { progress: false })(x);
        expect(relMaxError(pooled.data, gram.data)).toBeLessThanOrEqual(1e-6);
        // (No tensor is left behind by the calls: only the model's weights and the points.)
        expect(tf.memory().numTensors).toBe(model.weights.length + 1);
      } finally {
        model.dispose();
        x.dispose();
      }
    });
  },
);
