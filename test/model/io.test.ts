import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CorruptFileError, InvalidArgumentError } from '../../src/errors.js';
import {
  buildModel,
  disposeModel,
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

  it("writes the depth_multiplier tfjs leaves out of a SeparableConv2D config; tfjs loads entk's file as it is, entk also a file without it (top level and nested); outputs bitwise equal", async () => {
    const L = tf.layers;
    const inner = tf.sequential({
      name: 'inner',
      layers: [L.depthwiseConv2d({ inputShape: [5, 5, 4], kernelSize: 2, depthMultiplier: 3, name: 'dw' })],
    });
    const model = tf.sequential({
      layers: [
        L.separableConv2d({
          inputShape: [6, 6, 2],
          filters: 4,
          kernelSize: 2,
          depthMultiplier: 2,
          name: 'sep',
        }),
        inner,
        L.flatten(),
        L.dense({ units: 3 }),
      ],
    });
    const predict = (m: tf.LayersModel) =>
      tf.tidy(() => {
        const x = tf.tensor(testValues(4 * 72, 9), [4, 6, 6, 2]);
        return Buffer.from(((m.predict(x) as tf.Tensor).dataSync() as Float32Array).buffer);
      });
    const expected = predict(model);
    // What tfjs 4.22 writes: SeparableConv2D without depth_multiplier (DepthwiseConv2D keeps it).
    let tfjsTopology: { config: { layers: Array<{ config: Record<string, unknown> }> } } | undefined;
    await model.save(
      tf.io.withSaveHandler(async (artifacts) => {
        tfjsTopology = artifacts.modelTopology as typeof tfjsTopology;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    expect(tfjsTopology!.config.layers[0]!.config.depth_multiplier).toBeUndefined();
    // entk's file has it, and the nested DepthwiseConv2D's.
    const dir = path.join(root, 'depth-multiplier');
    await saveModel(model, dir);
    const file = path.join(dir, 'model.json');
    const json = JSON.parse(await fs.readFile(file, 'utf8'));
    const layers = json.modelTopology.config.layers;
    expect(layers[0].config.depth_multiplier).toBe(2);
    expect(layers[1].config.layers[0].config.depth_multiplier).toBe(3);
    // tfjs alone loads it, with the same outputs; entk too.
    const byTfjs = await tf.loadLayersModel(fileSystemHandler(dir));
    expect((byTfjs.layers[0] as unknown as { depthMultiplier: number }).depthMultiplier).toBe(2);
    expect(predict(byTfjs).equals(expected)).toBe(true);
    disposeModel(byTfjs);
    const reloaded = await loadModel(dir);
    expect(predict(reloaded).equals(expected)).toBe(true);
    disposeModel(reloaded);

    // A file without them (tfjs's own writer, an older entk, a hand-edited file): tfjs alone cannot
    // load it back (what its failed load leaves allocated is freed here); entk infers them.
    delete layers[0].config.depth_multiplier;
    delete layers[1].config.layers[0].config.depth_multiplier;
    await fs.writeFile(file, JSON.stringify(json));
    const known = new Set(Object.keys(tf.engine().state.registeredVariables));
    tf.engine().startScope();
    await expect(tf.loadLayersModel(fileSystemHandler(dir))).rejects.toThrow(/Shape mismatch/);
    tf.engine().endScope();
    const registered = tf.engine().state.registeredVariables;
    for (const name of Object.keys(registered)) if (!known.has(name)) registered[name]!.dispose();
    const loaded = await loadModel(dir);
    // (SeparableConv2D.getConfig() has no depthMultiplier: its depthwise kernel [2, 2, 2, 2] shows it.)
    expect(loaded.layers[0]!.weights[0]!.shape).toEqual([2, 2, 2, 2]);
    const nested = loaded.layers[1] as tf.LayersModel;
    expect((nested.layers[0]!.getConfig() as { depthMultiplier: number }).depthMultiplier).toBe(3);
    expect(predict(loaded).equals(expected)).toBe(true);
    // Saving the loaded model writes them again.
    const again = path.join(root, 'depth-multiplier-again');
    await saveModel(loaded, again);
    const json2 = JSON.parse(await fs.readFile(path.join(again, 'model.json'), 'utf8'));
    expect(json2.modelTopology.config.layers[0].config.depth_multiplier).toBe(2);
    disposeModel(model);
    disposeModel(loaded);
  });

  it('disposeModel frees the weights of a shared layer (model.dispose() keeps them)', () => {
    const build = () => {
      const x = tf.input({ shape: [3] });
      const shared = tf.layers.dense({ units: 3 });
      const y = shared.apply(shared.apply(x) as tf.SymbolicTensor) as tf.SymbolicTensor;
      return tf.model({ inputs: x, outputs: y });
    };
    const n0 = tf.memory().numTensors;
    const a = build();
    a.dispose();
    const kept = tf.memory().numTensors - n0;
    expect(kept).toBe(2); // kernel and bias (the reason for disposeModel)
    for (const w of a.weights) w.dispose();
    const b = build();
    disposeModel(b);
    expect(tf.memory().numTensors).toBe(n0);
  });
});
