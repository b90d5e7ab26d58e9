// Bring-your-own tfjs layers models: round trip through disk, and the structured-path report.
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatSupportReport, loadUserModel, structuredSupportReport } from '../../src/embed/index.js';
import { CorruptFileError, UnsupportedError } from '../../src/errors.js';
import { buildModel, saveModel } from '../../src/model/index.js';
import { tempDir } from '../util/temp-dir.js';
import { setDeterministicWeights } from '../util/weights.js';

const tmp = tempDir('embed-usermodel');
let tensorsBefore: number;
beforeAll(() => {
  tensorsBefore = tf.memory().numTensors;
});
afterAll(() => {
  expect(tf.memory().numTensors).toBe(tensorsBefore);
});

/** Save like tensorflowjs_converter does with small shards: model.json + group1-shard{i}of{n}.bin. */
async function saveSharded(model: tf.LayersModel, dir: string, shardBytes: number): Promise<void> {
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const data = new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts.weightData!));
      const n = Math.ceil(data.length / shardBytes);
      const paths: string[] = [];
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      for (let i = 0; i < n; i++) {
        const name = `group1-shard${i + 1}of${n}.bin`;
        writeFileSync(path.join(dir, name), data.subarray(i * shardBytes, (i + 1) * shardBytes));
        paths.push(name);
      }
      const json = {
        format: 'layers-model',
        generatedBy: 'keras v2.15.0',
        convertedBy: 'TensorFlow.js Converter v4.22.0',
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths, weights: artifacts.weightSpecs }],
      };
      writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
}

describe('loadUserModel', () => {
  it('round-trips a multi-shard converter-style model: identical predictions, structured report', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [5], units: 7, activation: 'relu', name: 'hidden' }),
        tf.layers.dropout({ rate: 0.2 }),
        tf.layers.dense({ units: 3, name: 'logits' }),
      ],
    });
    setDeterministicWeights(model, 0.5);
    const dir = path.join(tmp, 'converted');
    await saveSharded(model, dir, 40); // 40-byte shards: several files
    const { model: loaded, report } = await loadUserModel(dir);
    const x = tf.tensor2d(
      Array.from({ length: 20 }, (_, i) => Math.cos(i)),
      [4, 5],
    );
    const a = model.predict(x) as tf.Tensor;
    const b = loaded.predict(x) as tf.Tensor;
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    expect(report.structured).toBe(true);
    expect(report.modelClass).toBe('Sequential');
    expect(report.inputShape).toEqual([5]);
    expect(report.numOutputs).toBe(3);
    expect(report.parameters).toBe(5 * 7 + 7 + 7 * 3 + 3);
    expect(report.layers.map((l) => [l.className, l.role])).toEqual([
      ['Dense', 'parameterised'],
      ['Dropout', 'parameter-free'],
      ['Dense', 'parameterised'],
    ]);
    expect(report.layers[0]!.note).toBe("rule dense-gated; fused activation 'relu'");
    expect(report.layers[2]!.note).toBe('rule dense-identity');
    expect(formatSupportReport(report)).toContain('every layer is on the structured eNTK path');
    tf.dispose([x, a, b]);
    model.dispose();
    loaded.dispose();
  });

  it("entk's own models (ScaledDense, ElementwiseActivation) load and are fully structured", async () => {
    const model = buildModel(
      { kind: 'mlp', widths: [6], activation: 'erf', parameterization: 'ntk' },
      { inputShape: [4], numClasses: 3, seed: 1 },
    );
    const dir = path.join(tmp, 'entk-mlp');
    await saveModel(model, dir);
    const { model: loaded, report } = await loadUserModel(path.join(dir, 'model.json'));
    expect(report.structured).toBe(true);
    expect(report.layers.map((l) => l.className)).toContain('ScaledDense');
    expect(report.layers.map((l) => l.className)).toContain('ElementwiseActivation');
    model.dispose();
    loaded.dispose();
  });

  it("reports each trainable layer's rule (BatchNorm included) and model-level remarks", async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [4], units: 6, name: 'd1' }),
        tf.layers.batchNormalization({ name: 'bn' }),
        tf.layers.activation({ activation: 'sigmoid', name: 'sig' }),
        tf.layers.dense({ units: 5, name: 'frozen', trainable: false }),
        tf.layers.dense({ units: 3, activation: 'softmax', name: 'probs' }),
      ],
    });
    const dir = path.join(tmp, 'bn');
    await saveModel(model, dir);
    const { model: loaded, report } = await loadUserModel(dir);
    expect(report.supported).toBe(true);
    expect(report.structured).toBe(true);
    expect(report.layers.map((l) => [l.name, l.role])).toEqual([
      ['d1', 'parameterised'],
      ['bn', 'parameterised'],
      ['sig', 'parameter-free'],
      ['frozen', 'parameter-free'],
      ['probs', 'parameterised'],
    ]);
    expect(report.outside).toEqual([]);
    expect(report.layers[1]!.note).toBe('rule batchnorm');
    expect(report.parameters).toBe(4 * 6 + 6 + 2 * 6 + 5 * 3 + 3); // BN: gamma, beta trainable
    const notes = report.notes.join('\n');
    expect(notes).toMatch(
      /output layer probs \(Dense\) applies softmax\/sigmoid: its outputs are probabilities, not logits .*--logits pre-activation/,
    );
    expect(notes).toMatch(/frozen layers \(not in the eNTK's parameters\): frozen/);
    const text = formatSupportReport(report);
    expect(text).toContain('every layer is on the structured eNTK path');
    expect(text).toMatch(/bn \(BatchNormalization, 12 params\): parameterised — rule batchnorm/);
    model.dispose();
    loaded.dispose();
  });

  it('an output that is the average of two softmax heads is unsupported, with the reason naming the layers', async () => {
    const input = tf.input({ shape: [4] });
    const p = tf.layers
      .dense({ units: 3, activation: 'softmax', name: 'p' })
      .apply(input) as tf.SymbolicTensor;
    const z = tf.layers
      .dense({ units: 3, activation: 'softmax', name: 'z' })
      .apply(input) as tf.SymbolicTensor;
    const model = tf.model({
      inputs: input,
      outputs: tf.layers.average({ name: 'gate' }).apply([p, z]) as tf.SymbolicTensor,
      name: 'gated',
    });
    const dir = path.join(tmp, 'gated');
    await saveModel(model, dir);
    const { model: loaded, report } = await loadUserModel(dir);
    expect(report.supported).toBe(false);
    expect(report.notes.join('\n')).toContain(
      'unsupported: model gated: layer p (Dense) applies softmax and the layers after it (gate (Average)) compute the output from its values through the merge gate (Average), so the outputs are not logits',
    );
    model.dispose();
    loaded.dispose();
  });

  it('functional models: a chain and a branching graph are structured, two outputs are unsupported', () => {
    const input = tf.input({ shape: [3] });
    const h = tf.layers.dense({ units: 4, name: 'h' }).apply(input) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 2, name: 'o' }).apply(h) as tf.SymbolicTensor;
    const chain = tf.model({ inputs: input, outputs: out });
    expect(structuredSupportReport(chain).structured).toBe(true);

    const side = tf.layers.dense({ units: 4 }).apply(h) as tf.SymbolicTensor;
    const skip = tf.layers.add().apply([h, side]) as tf.SymbolicTensor;
    const branchOut = tf.layers.dense({ units: 2 }).apply(skip) as tf.SymbolicTensor;
    const branching = tf.model({ inputs: input, outputs: branchOut });
    const r = structuredSupportReport(branching);
    expect(r.supported).toBe(true);
    expect(r.structured).toBe(true);
    expect(r.layers.filter((l) => l.role === 'parameterised').map((l) => l.note)).toEqual([
      'rule dense-factored',
      'rule dense-factored',
      'rule dense-identity',
    ]);

    const two = tf.model({ inputs: input, outputs: [out, branchOut] });
    const t = structuredSupportReport(two);
    expect(t.supported).toBe(false);
    expect(formatSupportReport(t)).toContain('no eNTK can be computed');
    two.dispose(); // holds every layer of the three models (shared layers are disposed once)
  });

  it('clear errors: graph model, unknown layer class, truncated or missing weights, missing file', async () => {
    const graphDir = path.join(tmp, 'graph');
    mkdirSync(graphDir, { recursive: true });
    writeFileSync(
      path.join(graphDir, 'model.json'),
      JSON.stringify({ format: 'graph-model', modelTopology: { node: [] } }),
    );
    const g = await loadUserModel(graphDir).catch((e) => e);
    expect(g).toBeInstanceOf(UnsupportedError);
    expect((g as Error).message).toMatch(/graph model .* tensorflowjs_converter --input_format keras/);

    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [2], units: 2 })] });
    const base = path.join(tmp, 'base');
    await saveModel(model, base);
    model.dispose();

    const unknownDir = path.join(tmp, 'unknown');
    cpSync(base, unknownDir, { recursive: true });
    const json = readFileSync(path.join(unknownDir, 'model.json'), 'utf8').replace(
      '"class_name":"Dense"',
      '"class_name":"MyFancyLayer"',
    );
    writeFileSync(path.join(unknownDir, 'model.json'), json);
    const u = await loadUserModel(unknownDir).catch((e) => e);
    expect(u).toBeInstanceOf(UnsupportedError);
    expect((u as Error).message).toMatch(/layer class 'MyFancyLayer' is not known/);

    const truncDir = path.join(tmp, 'trunc');
    cpSync(base, truncDir, { recursive: true });
    const w = readFileSync(path.join(truncDir, 'weights.bin'));
    writeFileSync(path.join(truncDir, 'weights.bin'), w.subarray(0, w.length - 4));
    await expect(loadUserModel(truncDir)).rejects.toBeInstanceOf(CorruptFileError);

    const noWeights = path.join(tmp, 'no-weights');
    cpSync(base, noWeights, { recursive: true });
    rmSync(path.join(noWeights, 'weights.bin'));
    await expect(loadUserModel(noWeights)).rejects.toThrow(
      /weights.bin: weight file listed in model.json cannot be read/,
    );

    await expect(loadUserModel(path.join(tmp, 'nothing-here'))).rejects.toThrow(
      /model: expected an existing model.json/,
    );
  });
});
