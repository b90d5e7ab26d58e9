/**
 * perLayerNtk: every layer's kernel from one computation of the structured factors equals the
 * whole-model-Jacobian kernel of that layer's parameters alone (an independent path: tfjs autodiff of
 * model.apply, float64 accumulation), and the per-layer kernels add up to the kernel of all
 * parameters; over several blocks of points, the float32 contraction (entk's wasm kernels) equals
 * the float64 one (plain JS loops), layer by layer. Tolerance as in graph-suite.ts: relative max
 * error ≤ 1e-5.
 */
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import { ruleTestHooks } from '../../src/kernel/analyze.js';
import { empiricalNtkFn, perLayerNtk } from '../../src/kernel/index.js';
import { structuredTestHooks } from '../../src/kernel/structured.js';
import { graphNets, seedWeights } from './graph-nets.js';
import { normalPoints, relMaxError, tokenPoints } from './helpers.js';

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

  it.each(['float32', 'float64'] as const)(
    '%s: each layer = the Jacobian kernel of its parameters; the layers sum to the full kernel',
    async (accumulation) => {
      for (const output of ['full', 'trace'] as const) {
        const per = perLayerNtk(net.model, net.x1, { output, accumulation });
        expect(per.layers.length).toBeGreaterThan(1);
        expect([per.accumulation, per.contraction]).toEqual(
          accumulation === 'float32' ? ['float32', 'wasm'] : ['float64', 'js'],
        );
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
    },
  );
});

// More points than one block of the per-layer contraction (128): blocks against themselves (upper
// triangle mirrored) and against others (transposed into place). The pooled-convolution rule is
// forced so that its route is covered too ('CNN BatchNorm → MaxPool').
describe('perLayerNtk over several blocks of points: float32 (wasm) = float64 (JS), layer by layer', () => {
  const N = 150;
  afterEach(() => {
    structuredTestHooks.pooledConvolutions = 'cost';
  });
  it.each(graphNets().map((net) => [net.name, net] as const))('%s', async (_name, net) => {
    structuredTestHooks.pooledConvolutions = 'always';
    const before = tf.memory().numTensors;
    const shape = net.model.inputs[0]!.shape.slice(1) as number[];
    const x =
      net.model.layers[0]!.getClassName() === 'Embedding'
        ? tokenPoints(N, shape[0]!, 6, 5)
        : normalPoints(N, shape, 5);
    try {
      for (const output of ['full', 'trace'] as const) {
        const f32 = perLayerNtk(net.model, x, { output });
        const f64 = perLayerNtk(net.model, x, { output, accumulation: 'float64' });
        expect(f32.shape).toEqual(f64.shape);
        f32.layers.forEach((layer, k) => {
          expect(layer.name).toBe(f64.layers[k]!.name);
          expect(relMaxError(layer.kernel, f64.layers[k]!.kernel)).toBeLessThanOrEqual(TOL);
        });
        const all = await empiricalNtkFn(net.model, { output, progress: false })(x);
        expect(relMaxError(f32.total, all.data)).toBeLessThanOrEqual(TOL);
      }
      if (net.name === 'CNN BatchNorm → MaxPool') {
        expect(perLayerNtk(net.model, x).layers.map((l) => l.rule)).toContain('conv2d-pooled');
      }
    } finally {
      x.dispose();
      net.x1.dispose();
      net.x2.dispose();
    }
    expect(tf.memory().numTensors).toBe(before - 2);
  });
});

describe('perLayerNtk: a dilated DepthwiseConv2D (tfjs 4.22 runs it undilated) by tfjs autodiff', () => {
  afterEach(() => {
    ruleTestHooks.autodiff.clear();
  });
  it('is not refused, and equals its structured rule (≤ 1e-5)', () => {
    const model = tf.sequential({
      layers: [
        tf.layers.depthwiseConv2d({ inputShape: [5, 5, 2], kernelSize: 2, dilationRate: 2, padding: 'same' }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 3 }),
      ],
    });
    seedWeights(model, 11);
    const x = normalPoints(3, [5, 5, 2], 12);
    try {
      const structured = perLayerNtk(model, x);
      ruleTestHooks.autodiff.add(model.layers[0]!.name);
      const autodiff = perLayerNtk(model, x);
      expect(autodiff.layers[0]!.rule).toBe('autodiff');
      expect(relMaxError(autodiff.layers[0]!.kernel, structured.layers[0]!.kernel)).toBeLessThanOrEqual(TOL);
    } finally {
      model.dispose();
      x.dispose();
    }
  });
});

describe('perLayerNtk: bad input', () => {
  it('names the argument', () => {
    const { model, x1 } = gatedMlp();
    expect(() => perLayerNtk(model, x1, { output: 'diagonal' as 'full' })).toThrow(InvalidArgumentError);
    expect(() => perLayerNtk(model, x1, { accumulation: 'float16' as 'float32' })).toThrow(/accumulation/);
    expect(() => perLayerNtk(model, x1, { contraction: 'gpu' as 'wasm' })).toThrow(/contraction/);
    expect(() => perLayerNtk(model, normalPoints(2, [5], 1))).toThrow(InvalidArgumentError);
    x1.dispose();
  });
});
