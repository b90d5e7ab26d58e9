import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CorruptFileError, InvalidArgumentError } from '../../src/errors.js';
import {
  buildModel,
  fileSystemHandler,
  loadModel,
  MODEL_PRESETS,
  resolveModelSpec,
  saveModel,
} from '../../src/model/index.js';
import { tempDir } from '../util/temp-dir.js';
import { testValues } from './reference.js';

const root = tempDir('model-io');

let before = 0;
beforeEach(() => {
  before = tf.memory().numTensors;
});
afterEach(() => {
  expect(tf.memory().numTensors).toBe(before);
});

function outputs(model: tf.LayersModel, inputShape: number[]): Float32Array {
  return tf.tidy(() => {
    const x = tf.tensor(testValues(4 * 64, 9), [4, ...inputShape]);
    return (model.predict(x) as tf.Tensor).dataSync() as Float32Array;
  });
}

describe('saveModel / loadModel (standard tfjs layers format)', () => {
  // (Transformer presets take token ids and a mask: test/model/transformer.test.ts.)
  it.each(
    Object.keys(MODEL_PRESETS).filter((n) => n !== 'mlp-wide' && MODEL_PRESETS[n]!.kind !== 'transformer'),
  )('round-trips preset %s with bitwise identical outputs, also through tf.loadLayersModel', async (name) => {
    const spec = resolveModelSpec(name);
    const inputShape = spec.kind === 'cnn' ? [8, 8, 1] : [64];
    const model = buildModel(spec, { inputShape, numClasses: 10, seed: 5 });
    const dir = path.join(root, name);
    await saveModel(model, dir);
    expect((await fs.readdir(dir)).sort()).toEqual(['model.json', 'weights.bin']);
    const loaded = await loadModel(dir);
    const viaTf = await tf.loadLayersModel(fileSystemHandler(dir));
    const viaJsonPath = await loadModel(path.join(dir, 'model.json'));
    const expected = outputs(model, inputShape);
    for (const m of [loaded, viaTf, viaJsonPath]) {
      expect(Buffer.from(outputs(m, inputShape).buffer).equals(Buffer.from(expected.buffer))).toBe(true);
      expect(m.layers.map((l) => l.getClassName())).toEqual(model.layers.map((l) => l.getClassName()));
    }
    for (const m of [model, loaded, viaTf, viaJsonPath]) m.dispose();
  });

  it('writes a standard model.json: format, topology, weightsManifest with paths', async () => {
    const model = buildModel(resolveModelSpec('mlp-ntk-erf'), { inputShape: [64], numClasses: 10, seed: 1 });
    const dir = path.join(root, 'manifest');
    await saveModel(model, dir);
    const json = JSON.parse(await fs.readFile(path.join(dir, 'model.json'), 'utf8'));
    expect(json.format).toBe('layers-model');
    expect(json.modelTopology.class_name).toBe('Sequential');
    expect(json.weightsManifest).toHaveLength(1);
    expect(json.weightsManifest[0].paths).toEqual(['weights.bin']);
    const names = json.weightsManifest[0].weights.map((w: { name: string }) => w.name);
    expect(names).toEqual([
      'dense_1/kernel',
      'dense_1/bias',
      'dense_2/kernel',
      'dense_2/bias',
      'logits/kernel',
      'logits/bias',
    ]);
    const layers = json.modelTopology.config.layers;
    expect(layers[0].class_name).toBe('ScaledDense');
    // tfjs stores config keys in snake_case (Keras convention)
    expect(layers[0].config.weight_scale).toBe(1 / 8);
    expect(layers[1]).toMatchObject({ class_name: 'ElementwiseActivation', config: { fn: 'erf' } });
    const bytes = (await fs.stat(path.join(dir, 'weights.bin'))).size;
    expect(bytes).toBe(4 * model.countParams());
    model.dispose();
  });

  it('writes atomically: no temporary files remain; saving into an existing directory keeps other files', async () => {
    const model = buildModel(resolveModelSpec('linear'), { inputShape: [4], numClasses: 3, seed: 1 });
    const parent = path.join(root, 'atomic');
    await saveModel(model, path.join(parent, 'm'));
    expect(await fs.readdir(parent)).toEqual(['m']);
    await fs.writeFile(path.join(parent, 'm', 'notes.txt'), 'keep me');
    await saveModel(model, path.join(parent, 'm'));
    expect((await fs.readdir(path.join(parent, 'm'))).sort()).toEqual([
      'model.json',
      'notes.txt',
      'weights.bin',
    ]);
    model.dispose();
  });

  it('reports missing, corrupt and truncated models clearly', async () => {
    await expect(loadModel(path.join(root, 'nope'))).rejects.toThrow(InvalidArgumentError);
    await expect(loadModel(path.join(root, 'nope'))).rejects.toThrow(
      /model path: expected a directory containing model.json/,
    );
    const model = buildModel(resolveModelSpec('mlp-small'), { inputShape: [64], numClasses: 10, seed: 1 });
    const dir = path.join(root, 'broken');
    await saveModel(model, dir);
    model.dispose();
    const weights = await fs.readFile(path.join(dir, 'weights.bin'));
    await fs.writeFile(path.join(dir, 'weights.bin'), weights.subarray(0, weights.length - 4));
    await expect(loadModel(dir)).rejects.toThrow(CorruptFileError);
    await expect(loadModel(dir)).rejects.toThrow(/weights are \d+ bytes but model.json describes \d+/);
    await fs.writeFile(path.join(dir, 'model.json'), '{"modelTopology": ');
    await expect(loadModel(dir)).rejects.toThrow(/model.json: not valid JSON/);
    await fs.writeFile(path.join(dir, 'model.json'), '{"format": "graph-model"}');
    await expect(loadModel(dir)).rejects.toThrow(/no modelTopology/);
  });
});
