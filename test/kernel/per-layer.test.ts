/**
 * perLayerNtk: every layer's kernel from one computation of the structured factors equals the
 * whole-model-Jacobian kernel of that layer's parameters alone (an independent path: tfjs autodiff of
 * model.apply, float64 accumulation), and the per-layer kernels add up to the kernel of all
 * parameters. Tolerance as in graph-suite.ts: relative max error ≤ 1e-5.
 */
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import { empiricalNtkFn, perLayerNtk } from '../../src/kernel/index.js';
import { graphNets, seedWeights } from './graph-nets.js';
import { normalPoints, relMaxError } from './helpers.js';

const TOL = 1e-5;

function gatedMlp() {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [4], units: 6, activation: 'relu' }),
      tf.layers.dense({ units: 5, activation: 'tanh' }),
      tf.layers.dense({ units: 3 }),
    ],
  });
  seedWeights(model, 7);
  return { name: 'MLP (factored, gated, identity head)', model, x1: normalPoints(4, [4], 8) };
}

const nets = [gatedMlp(), ...graphNets().slice(0, 3)];

describe.each(nets)('perLayerNtk: $name', (net) => {
  let before = 0;
  beforeEach(() => {
    before = tf.memory().numTensors;
  });
  afterEach(() => {
    expect(tf.memory().numTensors).toBe(before);
  });

  it('each layer = the Jacobian kernel of its parameters; the layers sum to the full kernel', async () => {
    for (const output of ['full', 'trace'] as const) {
      const per = perLayerNtk(net.model, net.x1, { output });
      expect(per.layers.length).toBeGreaterThan(1);
      for (const layer of per.layers) {
        const ref = await empiricalNtkFn(net.model, {
          output,
          parameters: [layer.name],
          implementation: 'jacobian',
          accumulation: 'float64',
          progress: false,
        })(net.x1);
        expect(relMaxError(layer.kernel, ref.data)).toBeLessThanOrEqual(TOL);
      }
      const all = await empiricalNtkFn(net.model, {
        output,
        implementation: 'jacobian',
        accumulation: 'float64',
        progress: false,
      })(net.x1);
      expect(relMaxError(per.total, all.data)).toBeLessThanOrEqual(TOL);
      // traces of the layers add up to the trace of the whole kernel
      const size = per.shape[0];
      const trace = (k: ArrayLike<number>) => {
        let s = 0;
        for (let i = 0; i < size; i++) s += k[i * size + i]!;
        return s;
      };
      const sum = per.layers.reduce((s, l) => s + trace(l.kernel), 0);
      expect(Math.abs(sum - trace(all.data)) / trace(all.data)).toBeLessThanOrEqual(TOL);
    }
  });
});

describe('perLayerNtk: bad input', () => {
  it('names the argument', () => {
    const { model, x1 } = gatedMlp();
    expect(() => perLayerNtk(model, x1, { output: 'diagonal' as 'full' })).toThrow(InvalidArgumentError);
    expect(() => perLayerNtk(model, normalPoints(2, [5], 1))).toThrow(InvalidArgumentError);
    x1.dispose();
  });
});
