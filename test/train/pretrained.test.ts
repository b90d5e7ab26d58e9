// Runs that start from a pretrained encoder (config.pretrained / entk train --pretrained).
import { cpSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import { loadPretrainedTransformer } from '../../src/model/index.js';
import { openRun, resolvePretrainedInput, resolveTrainConfig, train } from '../../src/train/index.js';
import { TINY_BERT_DIR } from '../embed/reference.js';
import { tempDir } from '../util/temp-dir.js';

const root = tempDir('train-pretrained');

describe('resolvePretrainedInput', () => {
  it('derives the transformer spec from config.json and defaults the tokenizer to the encoder', async () => {
    const { input, weights } = await resolvePretrainedInput({
      data: 'text/topics.csv',
      pretrained: { dir: 'models/tiny-bert', maxLength: 24, pooling: 'mean' as const },
    });
    expect(weights?.config.hiddenSize).toBe(32);
    expect(input).toMatchObject({
      tokenizer: 'models/tiny-bert',
      model: {
        kind: 'transformer',
        layers: 1,
        width: 32,
        heads: 1,
        mlpRatio: 2,
        maxLength: 24,
        vocabSize: 950,
      },
    });
    const config = resolveTrainConfig(input);
    expect(config.pretrained).toEqual({
      dir: 'models/tiny-bert',
      source: 'auto',
      maxLength: 24,
      pooling: 'mean',
      pooler: false,
    });
    expect(config.standardize).toBe(false);
    // A stored run's config resolves again unchanged, without reading the weights.
    const again = await resolvePretrainedInput(config);
    expect(again.weights).toBeNull();
    expect(resolveTrainConfig(again.input)).toEqual(config);
  });

  it('refuses a model preset beside it, options the encoder cannot take, an unresolved config', async () => {
    const base = { data: 'text/topics.csv', pretrained: { dir: 'models/tiny-bert' } };
    await expect(resolvePretrainedInput({ ...base, model: 'transformer-tiny' })).rejects.toThrow(
      /config\.model \(--model\): expected no model with a pretrained encoder \(the architecture follows models\/tiny-bert\/config\.json\)/,
    );
    await expect(
      resolvePretrainedInput({ ...base, pretrained: { dir: 'models/tiny-bert', maxLength: 65 } }),
    ).rejects.toThrow(
      new InvalidArgumentError(
        'config.pretrained.maxLength (--max-length)',
        65,
        "an integer in [1, 64] (the model's max_position_embeddings)",
      ),
    );
    await expect(resolvePretrainedInput({ ...base, pretrained: { dir: 'no/such/model' } })).rejects.toThrow(
      /config\.pretrained\.dir \(--pretrained\): expected a local model directory/,
    );
    await expect(
      resolvePretrainedInput({
        ...base,
        pretrained: { dir: 'models/tiny-bert', source: 'safetensors' as const },
      }),
    ).rejects.toThrow(
      /^config\.pretrained\.dir \(--pretrained\): expected a directory holding one of model\.safetensors, model\.safetensors\.index\.json, received ".*tiny-bert"$/,
    );
    expect(() => resolveTrainConfig(base)).toThrow(
      /config\.model: expected the transformer spec of the pretrained encoder/,
    );
  });
});

describe('train from a pretrained encoder', () => {
  it('step 0 is the imported encoder with the seeded head; the run resumes without reading the weights again', async () => {
    const modelDir = path.join(root, 'tiny-bert-copy');
    cpSync(TINY_BERT_DIR, modelDir, { recursive: true });
    const out = path.join(root, 'run');
    const config = {
      data: 'text/topics.csv',
      pretrained: { dir: modelDir, maxLength: 12 },
      batchSize: 64,
      steps: 2,
      seed: 4,
    };
    const first = await train(config, { outDir: out });
    expect(first.step).toBe(2);
    const run = await openRun(out);
    expect(run.config.pretrained?.dir).toBe(modelDir);
    expect(run.config.tokenizer).toBe(modelDir);
    expect(run.train.inputShape).toEqual([24]);
    const step0 = await run.loadModel('initial');
    const imported = await loadPretrainedTransformer(modelDir, { numClasses: 3, seed: 4, maxLength: 12 });
    const names = (m: tf.LayersModel) => m.weights.map((w) => w.originalName);
    expect(names(step0)).toEqual(names(imported.model));
    const values = (m: tf.LayersModel) => m.getWeights().map((w) => Array.from(w.dataSync()));
    expect(values(step0)).toEqual(values(imported.model));
    step0.dispose();
    imported.model.dispose();

    // Resuming needs the checkpoints and the tokenizer, not the weight file.
    rmSync(path.join(modelDir, 'onnx'), { recursive: true });
    const resumed = await train({ ...run.config, steps: 4 }, { outDir: out, resume: true });
    expect(resumed.resumedFrom).toBe(2);
    expect(resumed.step).toBe(4);
  });
});
