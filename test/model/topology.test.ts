// Cycle check of model.json topologies: cycles are found in both serialisations (tfjs / Keras 2
// inbound lists, Keras 3 keras_history), and a layer shared by two calls is not a cycle.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { CorruptFileError } from '../../src/errors.js';
import { loadModel, saveModel } from '../../src/model/index.js';
import { assertAcyclicTopology } from '../../src/model/topology.js';
import { tempDir } from '../util/temp-dir.js';

const dir = tempDir('topology');

describe('assertAcyclicTopology', () => {
  it('accepts a shared layer called twice, which loads and predicts as the in-memory model', async () => {
    const input = tf.input({ shape: [4], name: 'x' });
    const shared = tf.layers.dense({ units: 4, name: 'shared', activation: 'tanh' });
    const h = shared.apply(input) as tf.SymbolicTensor;
    const mid = tf.layers.dense({ units: 4, name: 'mid' }).apply(h) as tf.SymbolicTensor;
    const again = shared.apply(mid) as tf.SymbolicTensor; // node 1 of 'shared' ← mid ← node 0
    const model = tf.model({ inputs: input, outputs: again });
    await saveModel(model, path.join(dir, 'shared'));
    const json = JSON.parse(readFileSync(path.join(dir, 'shared', 'model.json'), 'utf8'));
    expect(() => assertAcyclicTopology(json.modelTopology, 'model.json')).not.toThrow();
    const loaded = await loadModel(path.join(dir, 'shared'));
    const x = tf.tensor2d([[1, -2, 0.5, 3]]);
    const [a, b] = [model.predict(x) as tf.Tensor, loaded.predict(x) as tf.Tensor];
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    tf.dispose([x, a, b]);
    model.dispose();
    loaded.dispose();
  });

  it('finds a cycle in Keras 3 keras_history nodes, naming the file and the layers', () => {
    const node = (from: string) => ({
      args: [{ class_name: '__keras_tensor__', config: { keras_history: [from, 0, 0] } }],
      kwargs: {},
    });
    const topology = {
      class_name: 'Functional',
      config: {
        layers: [
          { name: 'x', class_name: 'InputLayer', config: { name: 'x' }, inbound_nodes: [] },
          { name: 'a', class_name: 'Dense', config: { name: 'a' }, inbound_nodes: [node('c')] },
          { name: 'b', class_name: 'Dense', config: { name: 'b' }, inbound_nodes: [node('a')] },
          { name: 'c', class_name: 'Dense', config: { name: 'c' }, inbound_nodes: [node('b')] },
        ],
      },
    };
    let error: unknown;
    try {
      assertAcyclicTopology(topology, '/m/model.json');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CorruptFileError);
    expect((error as Error).message).toMatch(
      /^\/m\/model\.json: the layer graph has a cycle \((a → b → c → a|b → c → a → b|c → a → b → c)\)/,
    );
  });

  it('finds a self-loop inside a nested model', () => {
    const inner = {
      class_name: 'Functional',
      config: { layers: [{ name: 'loop', config: { name: 'loop' }, inbound_nodes: [[['loop', 0, 0, {}]]] }] },
    };
    const topology = {
      model_config: {
        config: {
          layers: [{ name: 'sub', class_name: 'Functional', config: inner.config, inbound_nodes: [] }],
        },
      },
    };
    expect(() => assertAcyclicTopology(topology, 'f.json')).toThrow(/cycle \(loop → loop\)/);
  });
});
