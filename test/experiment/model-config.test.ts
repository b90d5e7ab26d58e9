// `model:` in an experiment config: resolution, paths relative to the config file, `--model`'s
// override of `train:`, and the refusals (the end-to-end run is test/cli/experiment-model.test.ts).
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import { loadExperimentConfig, resolveExperimentConfig } from '../../src/experiment/index.js';
import { tempDir } from '../util/temp-dir.js';

const dir = tempDir('experiment-model-config');
const points = { finetune: 'file:a.csv', observe: 'file:b.csv' };
const studies = { discretisation: { learningRates: [0.2, 0.1] } };

describe('experiment config with model:', () => {
  it('resolves: no base training run, the model and its label column, a title from its name', () => {
    const c = resolveExperimentConfig({ model: { path: 'nets/mine/model.json' }, points, studies });
    expect(c.train).toBeNull();
    expect(c.model).toEqual({ path: 'nets/mine/model.json', labelColumn: 'label' });
    expect(c.title).toBe('entk experiment: mine');
    expect(c.points).toEqual(points);
    const t = resolveExperimentConfig({ train: { data: 'digits' }, studies });
    expect(t.model).toBeNull();
  });

  it('resolves the model path and file: points against the config file; --model replaces train:', async () => {
    const sub = path.join(dir, 'configs');
    await fs.mkdir(sub, { recursive: true });
    const file = path.join(sub, 'mine.json');
    await fs.writeFile(
      file,
      JSON.stringify({
        model: { path: '../nets/m', labelColumn: 'y' },
        points: { finetune: 'file:p.csv', observe: 'file: ../q.csv' },
        studies,
      }),
    );
    const c = await loadExperimentConfig(file);
    expect(c.model).toEqual({ path: path.join(dir, 'nets', 'm'), labelColumn: 'y' });
    expect(c.points).toEqual({
      finetune: `file:${path.join(sub, 'p.csv')}`,
      observe: `file:${path.join(dir, 'q.csv')}`,
    });

    const withTrain = path.join(sub, 'train.json');
    await fs.writeFile(withTrain, JSON.stringify({ train: { data: 'digits' }, points, studies }));
    const o = await loadExperimentConfig(withTrain, { model: 'other/model.json' });
    expect(o.train).toBeNull();
    expect(o.model).toEqual({ path: path.resolve('other/model.json'), labelColumn: 'label' });
  });

  it('refuses train: with model:, a study that needs training, checkpoint keys and non-file points', () => {
    const err = (input: Record<string, unknown>) => {
      try {
        resolveExperimentConfig(input);
      } catch (e) {
        expect(e).toBeInstanceOf(InvalidArgumentError);
        return (e as Error).message;
      }
      throw new Error('accepted');
    };
    const model = { path: 'm' };
    expect(err({ model, train: { data: 'digits' }, points, studies })).toMatch(
      /^model: expected either train or model, not both/,
    );
    expect(err({ model, points, studies: { laziness: { widths: [8, 16] } } })).toMatch(
      /^studies\.laziness: expected a study that runs on a user's model \(checkpoints, discretisation, negativeGradients\); the laziness study needs an entk training run/,
    );
    expect(err({ model, points, studies: { replicator: {} } })).toMatch(
      /^studies\.replicator: expected a study that runs on a user's model/,
    );
    expect(err({ model, points, studies: { checkpoints: { focus: 'last' } } })).toMatch(
      /^studies\.checkpoints\.focus: expected nothing with model: \(the model's weights are the only checkpoint\), received "last"/,
    );
    expect(err({ model, studies })).toMatch(
      /^points\.finetune: expected a points file of the model .*'label' column.*received "train:20"/,
    );
    expect(err({ model: {}, points, studies })).toMatch(/^model\.path: expected/);
  });
});
