import { describe, expect, it } from 'vitest';
import {
  PREDICTOR_TABLE,
  PREDICTORS,
  type PredictorInput,
  predictor,
  predictorLabel,
} from '../../src/compare/index.js';
import {
  type BatchSchedule,
  FitnessOperator,
  linearizedGd,
  oneStepPredict,
} from '../../src/dynamics/index.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { maxAbsDiff, randomProblem } from '../dynamics/reference.js';

describe('the predictor registry', () => {
  it('has one entry per name and per label, and the names and labels the pipeline stores', () => {
    expect(PREDICTORS).toEqual([
      'one-step',
      'one-step-refreshed',
      'pop-mu',
      'pop-mu-refreshed',
      'pop-ode',
      'pop-ode-simplex',
    ]);
    expect(new Set(PREDICTOR_TABLE.map((p) => p.label)).size).toBe(PREDICTOR_TABLE.length);
    // the labels are the keys of the experiments' results.json
    expect(
      ['one-step', 'pop-mu', 'pop-ode', 'pop-mu-refreshed'].map((n) => predictorLabel(n as 'pop-mu')),
    ).toEqual(['one-step', 'POP-MU', 'POP-ODE', 'refreshed']);
    expect(PREDICTOR_TABLE.filter((p) => p.refreshed).map((p) => p.name)).toEqual([
      'one-step-refreshed',
      'pop-mu-refreshed',
    ]);
    expect(PREDICTOR_TABLE.filter((p) => p.kind === 'increments').map((p) => p.name)).toEqual([
      'one-step',
      'one-step-refreshed',
    ]);
    expect(() => predictor('pop-sgd', 'predictors')).toThrow(InvalidArgumentError);
    expect(() => predictor('pop-sgd', 'predictors')).toThrow(/predictors: .*one of one-step, /);
  });

  it('runs every predictor on one input: POP-MU is GD of the linearised net, the ODE forms agree', () => {
    const pr = randomProblem(5, 4, 3, 3, 10, 0.5);
    const schedule: BatchSchedule = {
      kind: 'sequence',
      batches: [
        [0, 1],
        [2, 3],
      ],
    };
    const eta = 0.2;
    const problem = { numClasses: pr.V, labels: pr.labels, initialLogits: pr.initialLogits };
    // the "actual" run: gradient descent of the linearised network, recorded every 5 steps
    const record = [0, 5, 10, 15, 20];
    const actual = linearizedGd(pr.jacobian, problem, { learningRate: eta, steps: 20, schedule, record });
    const frozen = new FitnessOperator({ numClasses: pr.V, train: pr.train, observe: pr.observe });
    const twin = new FitnessOperator({ numClasses: pr.V, train: pr.train, observe: pr.observe });
    const input: PredictorInput = {
      frozen,
      // a "refresh" to the same kernel at step 10: the refreshed predictors must equal the frozen ones
      refreshed: { steps: [0, 10], operators: [frozen, twin] },
      problem,
      actual,
      learningRate: eta,
      schedule,
      rtol: 1e-10,
      atol: 1e-12,
    };
    const out = Object.fromEntries(PREDICTOR_TABLE.map((p) => [p.name, p.run(input)]));
    frozen.dispose();
    twin.dispose();
    const T = record.length;
    const n = pr.P * pr.V;
    for (const p of PREDICTOR_TABLE) {
      expect(out[p.name]!.data.length).toBe((p.kind === 'trajectory' ? T : T - 1) * n);
    }
    // POP-MU ≡ GD on the linearised network (docs/theory.md#check-4-pop-mu-is-linearised-gd), an independent computation
    expect(maxAbsDiff(out['pop-mu']!.data, actual.logProbs)).toBeLessThan(1e-11);
    expect(maxAbsDiff(out['pop-mu-refreshed']!.data, actual.logProbs)).toBeLessThan(1e-11);
    expect(maxAbsDiff(out['one-step-refreshed']!.data, out['one-step']!.data)).toBe(0);
    const own = new FitnessOperator({ numClasses: pr.V, train: pr.train, observe: pr.observe });
    const direct = oneStepPredict(own, pr.labels, actual, { learningRate: eta, schedule });
    own.dispose();
    expect(maxAbsDiff(out['one-step']!.data, direct)).toBe(0);
    // logit and simplex forms of the replicator flow: one ODE, two integrations
    expect(maxAbsDiff(out['pop-ode']!.data, out['pop-ode-simplex']!.data)).toBeLessThan(1e-6);
    expect(out['pop-ode']!.stats!.rhsEvaluations).toBeGreaterThan(0);
    // and the flow stays O(η) from the discrete run
    const gap = maxAbsDiff(out['pop-ode']!.data, out['pop-mu']!.data);
    expect(gap).toBeGreaterThan(1e-6);
    expect(gap).toBeLessThan(0.5);
  });
});
