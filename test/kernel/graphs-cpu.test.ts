/**
 * The graph suite of graphs.test.ts on the cpu backend: the same nets, checks and tolerances, so that
 * every layer rule is checked on both backends (the wasm one with entk's gradient-kernel fixes).
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe } from 'vitest';
import { depthwiseGraphNets, graphNets } from './graph-nets.js';
import { graphSuite } from './graph-suite.js';

await tf.setBackend('cpu');
beforeAll(() => {
  if (tf.getBackend() !== 'cpu') throw new Error('expected the cpu backend');
});

describe.each([...graphNets(), ...depthwiseGraphNets()])('$name', (net) => graphSuite(net));
