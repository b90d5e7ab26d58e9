import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.js';
import { empiricalNtkFn, finiteDifferenceNtk } from '../src/kernel/index.js';
await initBackend('wasm');
const L = tf.layers;
const x = tf.input({ shape: [6, 6, 1] });
const c = L.conv2d({ filters: 3, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: 'ones', biasInitializer: 'ones' }).apply(x) as tf.SymbolicTensor;
const g = L.globalMaxPooling2d({}).apply(c) as tf.SymbolicTensor;
const model = tf.model({ inputs: x, outputs: L.dense({ units: 2, kernelInitializer: 'ones' }).apply(g) as tf.SymbolicTensor });
// Blank images with one bright pixel: many identical patches.
const data = new Float32Array(2 * 36); data[14] = 1; data[36 + 20] = 2;
const pts = tf.tensor(data, [2, 6, 6, 1]);
const k = await empiricalNtkFn(model, { progress: false, accumulation: 'float64' })(pts);
const j = await empiricalNtkFn(model, { progress: false, implementation: 'jacobian' })(pts);
const fd = finiteDifferenceNtk(model, pts);
console.log('structured', Array.from(k.data).slice(0, 4).map((v) => v.toFixed(3)));
console.log('jacobian  ', Array.from(j.data).slice(0, 4).map((v) => v.toFixed(3)));
console.log('fd        ', Array.from(fd.data).slice(0, 4).map((v) => v.toFixed(3)));
// Negative weights: max over blank region (bias), tied across many positions.
model.layers[1]!.setWeights([tf.fill([3, 3, 1, 3], -1), tf.ones([3])]);
const k2 = await empiricalNtkFn(model, { progress: false, accumulation: 'float64' })(pts);
const fd2 = finiteDifferenceNtk(model, pts);
console.log('structured', Array.from(k2.data).slice(0, 4).map((v) => v.toFixed(3)));
console.log('fd        ', Array.from(fd2.data).slice(0, 4).map((v) => v.toFixed(3)));
