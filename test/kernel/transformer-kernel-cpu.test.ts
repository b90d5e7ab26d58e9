/** The transformer eNTK suite (./transformer-suite.ts) on the cpu backend. */
import * as tf from '@tensorflow/tfjs';
import { beforeAll } from 'vitest';
import { transformerKernelSuite } from './transformer-suite.js';

await tf.setBackend('cpu');
beforeAll(() => {
  if (tf.getBackend() !== 'cpu') throw new Error('expected the cpu backend');
});

transformerKernelSuite();
