/**
 * The structured eNTK of networks with DepthwiseConv2D and SeparableConv2D, on the cpu backend:
 * on wasm DepthwiseConv2dNativeBackpropInput/Filter are missing (src/backend/wasm-kernels.ts,
 * fixed on branch i14-backend). After that merge, move these
 * nets into graphNets() (graphs.test.ts, wasm). Same checks and tolerance as graphs.test.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe } from 'vitest';
import { cpuGraphNets } from './graph-nets.js';
import { graphSuite } from './graph-suite.js';

// wasm bug (no DepthwiseConv2dNativeBackpropInput/Filter kernels): cpu until i14-backend lands.
await tf.setBackend('cpu');
beforeAll(() => {
  if (tf.getBackend() !== 'cpu') throw new Error('expected the cpu backend');
});

describe.each(cpuGraphNets())('$name', (net) => graphSuite(net));
