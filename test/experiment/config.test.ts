import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataFormatError, InvalidArgumentError } from '../../src/errors.js';
import {
  CONFIGS_DIR,
  type ExperimentConfigInput,
  listPresetConfigs,
  loadExperimentConfig,
  mergeConfigs,
  resolveExperimentConfig,
} from '../../src/experiment/index.js';
import { tempDir } from '../util/temp-dir.js';

const dir = tempDir('config');

const base = { train: { data: 'digits' } };
const errorOf = (input: unknown): string => {
  try {
    resolveExperimentConfig(input as ExperimentConfigInput);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidArgumentError);
    return (error as Error).message;
  }
  throw new Error('expected the config to be rejected');
};

describe('resolveExperimentConfig: errors name the offending key', () => {
  const cases: [string, unknown, string][] = [
    [
      'a bad list item',
      { ...base, studies: { laziness: { widths: [64, 128, -4] } } },
      'studies.laziness.widths[2]: expected a positive integer, received -4',
    ],
    [
      'a non-integer width',
      { ...base, studies: { laziness: { widths: [64, 1.5] } } },
      'studies.laziness.widths[1]: expected a positive integer, received 1.5',
    ],
    [
      'too few widths',
      { ...base, studies: { laziness: { widths: [64] } } },
      'studies.laziness.widths: expected at least two widths, received array of length 1',
    ],
    [
      'repeated widths',
      { ...base, studies: { laziness: { widths: [64, 64] } } },
      'studies.laziness.widths: expected distinct widths, received array of length 2',
    ],
    [
      'an unknown key',
      { ...base, studies: { laziness: { widths: [64, 128], widht: 3 } } },
      'studies.laziness.widht: expected a known key (this one is not recognised), received 3',
    ],
    [
      'finetune parameters that are not a subset',
      { ...base, finetune: { parameters: 'some' } },
      "finetune.parameters: expected 'all', 'head' or a non-empty list of layer names (a name ending in '/' is a prefix), received \"some\"",
    ],
    [
      'an unknown study',
      { ...base, studies: { bogus: {} } },
      'studies.bogus: expected a known key (this one is not recognised), received {}',
    ],
    [
      'no study',
      { ...base, studies: {} },
      'studies: expected at least one enabled study (checkpoints, laziness, discretisation, negativeGradients, replicator, analysis), received {}',
    ],
    [
      'every study disabled',
      { ...base, studies: { checkpoints: { enabled: false } } },
      'studies: expected at least one enabled study (checkpoints, laziness, discretisation, negativeGradients, replicator, analysis), received {"checkpoints":{"enabled":false}}',
    ],
    [
      'η = 0',
      { ...base, finetune: { learningRate: 0 }, studies: { checkpoints: {} } },
      'finetune.learningRate: expected a finite non-zero number (η < 0 is gradient ascent), received 0',
    ],
    [
      'the old key eta (renamed learningRate)',
      { ...base, finetune: { eta: 0.1 }, studies: { checkpoints: {} } },
      "finetune.eta: expected the key 'learningRate' instead ('eta' was renamed 'learningRate'), received 0.1",
    ],
    [
      'the old key etas (renamed learningRates)',
      { ...base, studies: { discretisation: { etas: [0.1, 0.05] } } },
      "studies.discretisation.etas: expected the key 'learningRates' instead ('etas' was renamed 'learningRates'), received array of length 2",
    ],
    [
      'a bad batch',
      { ...base, finetune: { batch: 'half' }, studies: { checkpoints: {} } },
      'finetune.batch: expected \'full\' or a positive integer (minibatch size), received "half"',
    ],
    [
      'a negative step size',
      { ...base, studies: { discretisation: { learningRates: [0.1, -0.05] } } },
      'studies.discretisation.learningRates[1]: expected a positive finite number, received -0.05',
    ],
    [
      'ascent with a positive η',
      { ...base, studies: { negativeGradients: { learningRate: 0.1 } } },
      'studies.negativeGradients.learningRate: expected a negative finite number (gradient ascent), received 0.1',
    ],
    [
      'a bad checkpoint in a list',
      { ...base, studies: { checkpoints: { checkpoints: ['last', -3] } } },
      'studies.checkpoints.checkpoints[1]: expected a non-negative integer, received -3',
    ],
    [
      'a bad activation',
      { ...base, studies: { laziness: { widths: [8, 16], activation: 'sigmoid' } } },
      'studies.laziness.activation: expected one of relu, tanh, gelu, erf, received "sigmoid"',
    ],
    [
      'a bad point spec',
      { ...base, points: { finetune: 'everything' }, studies: { checkpoints: {} } },
      'points.finetune: expected a point spec such as train:20, test:20 or train:per-class=2, received "everything"',
    ],
    [
      'a bad training option (checked by the training schema)',
      { train: { data: 'digits', optimizer: { learningRate: -1 } }, studies: { checkpoints: {} } },
      'train.optimizer.learningRate: expected a number > 0, received -1',
    ],
    [
      'a bad replicator training option',
      { studies: { replicator: { train: { data: 'iris', epochs: 0 } } } },
      'studies.replicator.train.epochs: expected a number > 0, received 0',
    ],
    [
      'no base run for a study that needs one',
      { studies: { discretisation: { learningRates: [0.1, 0.05] } } },
      'train: expected a training configuration (required by the discretisation study), received undefined',
    ],
    [
      'not an object',
      [1, 2],
      'config: expected an object with train, studies, ..., received array of length 2',
    ],
  ];
  it.each(cases)('%s', (_name, input, message) => {
    expect(errorOf(input)).toBe(message);
  });
});

describe('resolveExperimentConfig: defaults', () => {
  it('fills every default and resolves the training config', () => {
    const c = resolveExperimentConfig({
      ...base,
      studies: { checkpoints: {}, discretisation: { learningRates: [0.01, 0.02] } },
    });
    expect(c.resolved).toBe(true);
    expect(c.title).toBe('entk experiment: digits');
    expect(c.train?.model).toEqual({
      kind: 'mlp',
      widths: [256, 256],
      activation: 'relu',
      parameterization: 'standard',
    });
    expect(c.points).toEqual({ finetune: 'train:20', observe: 'test:20' });
    expect(c.finetune).toEqual({
      learningRate: 0.05,
      steps: 100,
      batch: 'full',
      recordEvery: 1,
      refreshEvery: null,
    });
    expect(c.studies.checkpoints).toEqual({
      checkpoints: 'all',
      focus: 'last',
      heatmapPoints: 'train:per-class=8',
      trajectoryPoints: 3,
      finetune: c.finetune,
    });
    // Step sizes sorted descending; default horizon = steps × η of the finetune.
    expect(c.studies.discretisation).toMatchObject({
      learningRates: [0.02, 0.01],
      time: 5,
      checkpoint: 'last',
    });
    expect(c.studies.laziness).toBeNull();
    expect(c.studies.replicator).toBeNull();
    expect(c.report).toEqual({ png: true });
  });

  it('per-study finetune settings override the top-level ones key by key', () => {
    const c = resolveExperimentConfig({
      ...base,
      finetune: { learningRate: 0.3, steps: 50 },
      studies: { laziness: { widths: [256, 64], finetune: { learningRate: 2 } } },
    });
    expect(c.studies.laziness).toMatchObject({
      widths: [64, 256],
      finetune: { learningRate: 2, steps: 50, batch: 'full' },
    });
  });

  it('finetunes chosen layers when finetune.parameters names them (absent by default)', () => {
    const c = resolveExperimentConfig({
      ...base,
      finetune: { parameters: ['block1/', 'head'] },
      studies: { checkpoints: {}, laziness: { widths: [64, 128], finetune: { parameters: 'head' } } },
    });
    expect(c.finetune.parameters).toEqual(['block1/', 'head']);
    expect(c.studies.checkpoints?.finetune.parameters).toEqual(['block1/', 'head']);
    expect(c.studies.laziness?.finetune.parameters).toBe('head');
    expect('parameters' in resolveExperimentConfig({ ...base, studies: { checkpoints: {} } }).finetune).toBe(
      false,
    );
  });

  it('runs the replicator study alone without a base run', () => {
    const c = resolveExperimentConfig({ studies: { replicator: {} } });
    expect(c.train).toBeNull();
    expect(c.studies.replicator).toMatchObject({
      checkpoint: 'first',
      points: { finetune: 'train:per-class=10', observe: 'test:per-class=2' },
      finetune: { learningRate: 0.1 },
    });
    expect(c.studies.replicator?.train.data).toBe('iris');
  });
});

describe('the analysis study', () => {
  it('runs alone with its defaults; bad keys are named', () => {
    const c = resolveExperimentConfig({ studies: { analysis: {} } });
    expect(c.train).toBeNull();
    expect(c.studies.analysis).toMatchObject({
      points: 'train:per-class=10,test:per-class=10',
      kind: 'trace',
      k: 10,
      layers: true,
    });
    expect(c.studies.analysis?.train.data).toBe('iris');
    expect(() => resolveExperimentConfig({ studies: { analysis: { kind: 'diagonal' } } })).toThrow(
      /studies\.analysis\.kind/,
    );
  });
});

describe('config files', () => {
  it('ships example configs that all validate, the demo among them', async () => {
    const presets = await listPresetConfigs();
    expect(presets).toEqual(
      expect.arrayContaining([
        'demo',
        'checkpoints',
        'laziness',
        'discretisation',
        'negative-gradients',
        'replicator',
        'transformer',
        'analysis',
      ]),
    );
    for (const name of presets) {
      const c = await loadExperimentConfig(name);
      // every preset runs at least one study
      expect(
        Object.values(c.studies).some((st) => st !== null),
        name,
      ).toBe(true);
    }
    const demo = await loadExperimentConfig(path.join(CONFIGS_DIR, 'demo.yaml'));
    for (const study of [
      'checkpoints',
      'laziness',
      'discretisation',
      'negativeGradients',
      'replicator',
    ] as const) {
      expect(demo.studies[study], study).not.toBeNull();
    }
  });

  it('applies extends: objects merge key by key, lists replace', async () => {
    const file = path.join(dir, 'child.yaml');
    await fs.writeFile(
      file,
      'extends: demo\ntitle: child\nfinetune: { steps: 7 }\nstudies:\n  laziness: { widths: [8, 16] }\n',
    );
    const c = await loadExperimentConfig(file);
    const demo = await loadExperimentConfig('demo');
    expect(c.title).toBe('child');
    expect(c.finetune).toEqual({ ...demo.finetune, steps: 7 });
    expect(c.studies.laziness?.widths).toEqual([8, 16]);
    expect(c.studies.laziness?.finetune.learningRate).toBe(demo.studies.laziness?.finetune.learningRate);
    expect(c.studies.replicator).toEqual(demo.studies.replicator);
    // A relative extends resolves against the extending file's directory.
    const grandchild = path.join(dir, 'grandchild.json');
    await fs.writeFile(grandchild, JSON.stringify({ extends: './child.yaml', seed: 3 }));
    const g = await loadExperimentConfig(grandchild);
    expect(g.seed).toBe(3);
    expect(g.title).toBe('child');
    expect(mergeConfigs({ a: { b: 1, c: [1, 2] } }, { a: { c: [3] } })).toEqual({ a: { b: 1, c: [3] } });
  });

  it('reports a missing file, a YAML syntax error (with its line) and a bad key in a file', async () => {
    await expect(loadExperimentConfig(path.join(dir, 'missing.yaml'))).rejects.toThrow(
      /^config: expected an existing \.yaml\/\.json file or a shipped preset \(.*demo.*\), received ".*missing\.yaml"$/,
    );
    const broken = path.join(dir, 'broken.yaml');
    await fs.writeFile(broken, 'train:\n  data: digits\nstudies: [unclosed\n');
    const error = await loadExperimentConfig(broken).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DataFormatError);
    expect((error as Error).message).toMatch(/broken\.yaml, line \d+, column \d+: not valid YAML/);
    const bad = path.join(dir, 'bad.yaml');
    await fs.writeFile(bad, 'train: { data: digits }\nstudies:\n  laziness:\n    widths: [64, 128, -4]\n');
    await expect(loadExperimentConfig(bad)).rejects.toThrow(
      'studies.laziness.widths[2]: expected a positive integer, received -4',
    );
    const list = path.join(dir, 'list.yaml');
    await fs.writeFile(list, '- 1\n- 2\n');
    await expect(loadExperimentConfig(list)).rejects.toThrow(/list\.yaml: expected a mapping/);
    const cycle = path.join(dir, 'cycle.yaml');
    await fs.writeFile(cycle, 'extends: ./cycle.yaml\n');
    await expect(loadExperimentConfig(cycle)).rejects.toThrow(/chain deeper than 8/);
  });
});
