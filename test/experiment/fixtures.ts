/** A tiny experiment (every study, seconds to run) shared by the experiment tests. */
import type { ExperimentConfigInput } from '../../src/experiment/index.js';

export function tinyConfig(): ExperimentConfigInput {
  return {
    title: 'entk test: tiny experiment',
    seed: 0,
    train: {
      data: 'digits',
      model: { kind: 'mlp', widths: [32], activation: 'relu', parameterization: 'standard' },
      optimizer: { name: 'sgd', learningRate: 0.1 },
      batchSize: 32,
      steps: 40,
      checkpoints: { steps: [0, 10] },
    },
    points: { finetune: 'train:8', observe: 'test:8' },
    finetune: { learningRate: 0.05, steps: 20, batch: 'full', recordEvery: 1, refreshEvery: 10 },
    studies: {
      checkpoints: {
        checkpoints: 'all',
        focus: 'last',
        heatmapPoints: 'train:per-class=3',
        trajectoryPoints: 2,
      },
      laziness: {
        widths: [16, 64, 256],
        depth: 1,
        checkpoint: 'first',
        finetune: { learningRate: 0.5, steps: 20, refreshEvery: null },
      },
      discretisation: { learningRates: [0.02, 0.01, 0.005, 0.0025], time: 0.4 },
      negativeGradients: { example: 0, learningRate: -0.0005, steps: 10 },
      replicator: {
        train: {
          data: 'iris',
          model: { kind: 'mlp', widths: [16], activation: 'relu', parameterization: 'standard' },
          steps: 4,
        },
        checkpoint: 'first',
        points: { finetune: 'train:per-class=3', observe: 'test:per-class=1' },
        show: 3,
        finetune: { learningRate: 0.1, steps: 20, refreshEvery: null },
      },
    },
    report: { png: false },
  };
}

/** A number from results.json that must be present (null fails the test with its name). */
export function num(value: number | null | undefined, what = 'value'): number {
  if (value == null) throw new Error(`${what} is ${value} in results.json`);
  return value;
}
