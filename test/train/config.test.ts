import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import {
  checkpointSteps,
  defaultLearningRate,
  planSteps,
  resolveTrainConfig,
  type TrainConfigInput,
  toConfigInput,
} from '../../src/train/index.js';

describe('resolveTrainConfig', () => {
  it('fills every default', () => {
    expect(resolveTrainConfig({ data: 'digits' })).toEqual({
      data: 'digits',
      dataOptions: {},
      backbone: null,
      split: { testFraction: 0.2, seed: 0 },
      standardize: true,
      model: { kind: 'mlp', widths: [256, 256], activation: 'relu', parameterization: 'standard' },
      modelPreset: 'mlp',
      optimizer: { name: 'sgd', learningRate: 0.1 },
      batchSize: 32,
      epochs: 20,
      steps: null,
      seed: 0,
      checkpoints: { geometric: { first: 1, factor: 2 } },
      evalEvery: null,
    });
  });

  it('derives split seed from seed, optimiser defaults from the optimiser and the parameterisation', () => {
    const c = resolveTrainConfig({
      data: 'iris',
      seed: 7,
      model: 'mlp-ntk',
      optimizer: { name: 'momentum' },
      steps: 10,
    });
    expect(c.split.seed).toBe(7);
    expect(c.optimizer).toEqual({ name: 'momentum', learningRate: 0.4, momentum: 0.9 });
    expect(c.epochs).toBeNull();
    expect(c.steps).toBe(10);
    const adam = resolveTrainConfig({ data: 'iris', optimizer: { name: 'adam' } }).optimizer;
    expect(adam).toEqual({ name: 'adam', learningRate: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 });
    expect(defaultLearningRate({ kind: 'linear' }, 'sgd')).toBe(0.1);
  });

  it('transformers: a tokenizer only with a transformer, features never standardised, SGD lr 0.01', () => {
    const c = resolveTrainConfig({
      data: 'text/topics.csv',
      model: 'transformer-tiny',
      tokenizer: 'models/tiny-bert',
    });
    expect(c.tokenizer).toBe('models/tiny-bert');
    expect(c.standardize).toBe(false);
    expect(c.optimizer).toEqual({ name: 'sgd', learningRate: 0.01 });
    expect(c.modelPreset).toBe('transformer-tiny');
    expect(resolveTrainConfig(c)).toEqual(c);
    // A parsed copy of the preset's spec is recognised as the preset.
    expect(resolveTrainConfig({ data: 'text/topics.csv', model: { ...c.model } }).modelPreset).toBe(
      'transformer-tiny',
    );
    expect(() => resolveTrainConfig({ data: 'iris', model: 'mlp', tokenizer: 'models/tiny-bert' })).toThrow(
      /config\.tokenizer \(--tokenizer\): expected a transformer model/,
    );
    expect(() =>
      resolveTrainConfig({ data: 'text/topics.csv', model: 'transformer-tiny', standardize: true }),
    ).toThrow(/config\.standardize: expected false for a transformer/);
    expect(() =>
      resolveTrainConfig({
        data: 'text/topics.csv',
        model: 'transformer-tiny',
        tokenizer: 'models/tiny-bert',
        backbone: { backbone: 'models/tiny-bert' },
      }),
    ).toThrow(/no --backbone as well/);
  });

  it('accepts a model spec object and recognises a preset by value', () => {
    const custom = resolveTrainConfig({
      data: 'iris',
      model: { kind: 'mlp', widths: [8], activation: 'tanh', parameterization: 'ntk' },
    });
    expect(custom.modelPreset).toBeNull();
    const asPreset = resolveTrainConfig({ data: 'iris', model: { kind: 'linear' } });
    expect(asPreset.modelPreset).toBe('linear');
  });

  it('is idempotent: a resolved config (as in config.json) resolves to itself', () => {
    for (const input of [
      { data: 'digits', model: 'cnn', steps: 5, checkpoints: { steps: [3, 1, 3] } },
      {
        data: 'x.csv',
        model: { kind: 'mlp', widths: [3], activation: 'erf', parameterization: 'ntk', outputScale: 2 },
      },
    ] as TrainConfigInput[]) {
      const once = resolveTrainConfig(input);
      expect(resolveTrainConfig(once)).toEqual(once);
      expect(resolveTrainConfig(toConfigInput(once))).toEqual(once);
    }
    expect(resolveTrainConfig({ data: 'd', checkpoints: { steps: [3, 1, 3] } }).checkpoints).toEqual({
      steps: [1, 3],
    });
  });

  const bad: [string, unknown, RegExp][] = [
    ['missing data', {}, /config.data: expected a string \(required\), received undefined/],
    [
      'negative learning rate',
      { data: 'd', optimizer: { learningRate: -1 } },
      /config.optimizer.learningRate: expected a number > 0, received -1/,
    ],
    [
      'unknown optimiser',
      { data: 'd', optimizer: { name: 'rmsprop' } },
      /config.optimizer.name: expected one of sgd, momentum, adam, received "rmsprop"/,
    ],
    ['unknown key', { data: 'd', epoch: 3 }, /config.epoch: expected a known key/],
    [
      'epochs and steps',
      { data: 'd', epochs: 2, steps: 3 },
      /config.steps: expected no steps when epochs \(2\) is given/,
    ],
    ['fractional steps', { data: 'd', steps: 2.5 }, /config.steps: expected an integer, received 2.5/],
    ['bad batch size', { data: 'd', batchSize: 0 }, /config.batchSize: expected a number > 0, received 0/],
    [
      'batch size half',
      { data: 'd', batchSize: 'half' },
      /config.batchSize: expected a positive integer or 'full', received "half"/,
    ],
    [
      'two schedules',
      { data: 'd', checkpoints: { every: 2, steps: [1] } },
      /config.checkpoints: expected exactly one of steps, every, geometric/,
    ],
    [
      'geometric factor 1',
      { data: 'd', checkpoints: { geometric: { first: 1, factor: 1 } } },
      /config.checkpoints.geometric.factor: expected a number > 1, received 1/,
    ],
    [
      'momentum with sgd',
      { data: 'd', optimizer: { momentum: 0.5 } },
      /config.optimizer.momentum: expected no momentum for optimizer 'sgd'/,
    ],
    [
      'test fraction 1',
      { data: 'd', split: { testFraction: 1 } },
      /config.split.testFraction: expected a number < 1, received 1/,
    ],
    ['unknown preset', { data: 'd', model: 'resnet' }, /config.model: expected a model preset \(mlp, /],
    [
      'bad spec',
      { data: 'd', model: { kind: 'mlp', widths: [4], activation: 'relu' } },
      /config.model.parameterization: expected one of standard, ntk \(required\), received undefined/,
    ],
    [
      'bad data option',
      { data: 'd', dataOptions: { label: 'y' } },
      /config.dataOptions.label: expected a known key/,
    ],
  ];
  it.each(bad)('rejects %s with an error naming the key', (_, input, message) => {
    expect(() => resolveTrainConfig(input as TrainConfigInput)).toThrow(InvalidArgumentError);
    expect(() => resolveTrainConfig(input as TrainConfigInput)).toThrow(message);
  });
});

describe('checkpoint schedules', () => {
  it('explicit steps: 0 and the final step are always added', () => {
    expect(checkpointSteps({ steps: [5, 2] }, 10)).toEqual([0, 2, 5, 10]);
    expect(() => checkpointSteps({ steps: [11] }, 10)).toThrow(
      /config.checkpoints.steps: expected steps <= the total number of steps \(10\), received 11/,
    );
  });
  it('every k', () => {
    expect(checkpointSteps({ every: 3 }, 10)).toEqual([0, 3, 6, 9, 10]);
    expect(checkpointSteps({ every: 5 }, 10)).toEqual([0, 5, 10]);
  });
  it('geometric: first·factor^i, rounded and de-duplicated', () => {
    expect(checkpointSteps({ geometric: { first: 1, factor: 2 } }, 100)).toEqual([
      0, 1, 2, 4, 8, 16, 32, 64, 100,
    ]);
    expect(checkpointSteps({ geometric: { first: 1, factor: 1.5 } }, 10)).toEqual([0, 1, 2, 3, 5, 8, 10]);
    expect(checkpointSteps({ geometric: { first: 20, factor: 2 } }, 10)).toEqual([0, 10]);
  });
});

describe('planSteps', () => {
  it('counts steps per epoch (last batch smaller), total steps and evaluation steps', () => {
    const c = resolveTrainConfig({ data: 'd', batchSize: 32, epochs: 3, checkpoints: { steps: [1] } });
    expect(planSteps(c, 100)).toEqual({
      batchSize: 32,
      stepsPerEpoch: 4,
      totalSteps: 12,
      checkpointSteps: [0, 1, 12],
      evalSteps: [0, 1, 4, 8, 12],
    });
    const full = resolveTrainConfig({
      data: 'd',
      batchSize: 'full',
      steps: 5,
      evalEvery: 2,
      checkpoints: { every: 5 },
    });
    expect(planSteps(full, 100)).toMatchObject({
      batchSize: 100,
      stepsPerEpoch: 1,
      totalSteps: 5,
      evalSteps: [0, 2, 4, 5],
    });
    const big = resolveTrainConfig({ data: 'd', batchSize: 500, epochs: 2 });
    expect(planSteps(big, 100)).toMatchObject({ batchSize: 100, stepsPerEpoch: 1, totalSteps: 2 });
  });
});
