/**
 * The checks every graph net gets (graphs.test.ts on wasm, graphs-cpu.test.ts on cpu): the plan's
 * rules, structured = finite differences (symmetric and rectangular, full and trace), hybrid
 * (autodiff per layer) = structured, jacobian = finite differences, no tensor left behind.
 */
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { ruleTestHooks } from '../../src/kernel/analyze.js';
import { empiricalNtkFn, finiteDifferenceNtk } from '../../src/kernel/index.js';
import type { GraphNet } from './graph-nets.js';
import { relMaxError } from './helpers.js';

const TOL = 1e-5;

const sorted = (rules: Array<[string, string]>) => rules.map((r) => r.join(' ')).sort();

export function graphSuite(net: GraphNet): void {
  let before = 0;
  beforeEach(() => {
    before = tf.memory().numTensors;
  });
  afterEach(() => {
    expect(tf.memory().numTensors).toBe(before);
  });

  it('plans the expected rule per layer', () => {
    const fn = empiricalNtkFn(net.model, { progress: false });
    expect(fn.plan.implementation).toBe('structured');
    expect(sorted(fn.plan.rules.map((r) => [r.className, r.rule]))).toEqual(sorted(net.rules));
    expect(fn.plan.parameterCount).toBe(net.model.countParams() - nonTrainable(net.model));
  });

  it('structured = finite differences (symmetric, rectangular, trace), jacobian = finite differences', async () => {
    const refSym = finiteDifferenceNtk(net.model, net.x1);
    const refRect = finiteDifferenceNtk(net.model, net.x1, net.x2);
    const fn = empiricalNtkFn(net.model, { progress: false });
    expect(relMaxError((await fn(net.x1)).data, refSym.data)).toBeLessThanOrEqual(TOL);
    expect(relMaxError((await fn(net.x1, net.x2)).data, refRect.data)).toBeLessThanOrEqual(TOL);
    const trace = await empiricalNtkFn(net.model, { output: 'trace', progress: false })(net.x1, net.x2);
    const [rows, cols] = refRect.shape;
    const V = rows / net.x1.shape[0]!;
    const traceRef = Array.from({ length: (rows / V) * (cols / V) }, (_, e) => {
      const [n, m] = [Math.floor(e / (cols / V)), e % (cols / V)];
      let s = 0;
      for (let i = 0; i < V; i++) s += refRect.data[(n * V + i) * cols + m * V + i]!;
      return s / V;
    });
    expect(relMaxError(trace.data, traceRef)).toBeLessThanOrEqual(TOL);
    // tfjs cannot differentiate dilated convolutions: no Jacobian path for those nets (the
    // structured rule needs no such gradient; finite differences are the reference).
    if (net.dilated) return;
    const kj = await empiricalNtkFn(net.model, { implementation: 'jacobian', progress: false })(
      net.x1,
      net.x2,
    );
    expect(relMaxError(kj.data, refRect.data)).toBeLessThanOrEqual(TOL);
  });

  it('hybrid (every selected layer by autodiff alone) = structured', async () => {
    const structured = await empiricalNtkFn(net.model, { progress: false })(net.x1, net.x2);
    // (Dilated convolutions stay structured: tfjs has no gradient for them.)
    const names = structured.rules
      .filter((r) => !(net.dilated && r.rule.startsWith('conv')))
      .map((r) => r.name);
    for (const name of names) ruleTestHooks.autodiff.add(name);
    try {
      const fn = empiricalNtkFn(net.model, { progress: false });
      expect(fn.plan.rules.filter((r) => names.includes(r.name)).every((r) => r.rule === 'autodiff')).toBe(
        true,
      );
      expect(names.length).toBeGreaterThan(0);
      const hybrid = await fn(net.x1, net.x2);
      expect(relMaxError(hybrid.data, structured.data)).toBeLessThanOrEqual(TOL);
    } finally {
      ruleTestHooks.autodiff.clear();
    }
  });
}

function nonTrainable(model: tf.LayersModel): number {
  return model.nonTrainableWeights.reduce((s, w) => s + (w.shape as number[]).reduce((a, b) => a * b, 1), 0);
}
