import * as tf from '@tensorflow/tfjs';
import { initBackend } from './src/backend/index.js';
import { buildModel, resolveModelSpec } from './src/model/index.js';
await initBackend();
for (const [name, n] of [['mlp', 32], ['mlp', 1437], ['mlp-ntk', 32], ['mlp-ntk', 1437]] as const) {
  const model = buildModel(resolveModelSpec(name), { inputShape: [64], numClasses: 10, seed: 0 });
  const x = tf.randomNormal([n, 64]); const y = tf.oneHot(tf.zeros([n], 'int32'), 10).toFloat();
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const opt = tf.train.sgd(0.1);
  const step = () => tf.tidy(() => { opt.minimize(() => tf.neg(tf.mean(tf.sum(tf.mul(y, tf.logSoftmax(model.apply(x, { training: true }) as tf.Tensor)), -1))) as tf.Scalar, false, vars); });
  step();
  let t = performance.now(); for (let i = 0; i < 10; i++) step(); await vars[0]!.data();
  const tStep = (performance.now() - t) / 10;
  t = performance.now(); for (let i = 0; i < 10; i++) tf.tidy(() => model.predict(x, {batchSize: n})); 
  const tFwd = (performance.now() - t) / 10;
  // matmul variants
  const a = tf.randomNormal([n, 256]); const b = tf.randomNormal([256, 256]); const dy = tf.randomNormal([n, 256]);
  const time = (f: () => tf.Tensor) => { f().dispose(); const t0 = performance.now(); for (let i = 0; i < 10; i++) f().dispose(); return ((performance.now() - t0) / 10).toFixed(2); };
  console.log(name, n, 'step', tStep.toFixed(2), 'ms fwd', tFwd.toFixed(2), 'ms | a@b', time(() => tf.matMul(a, b)), 'dy@bT', time(() => tf.matMul(dy, b, false, true)), 'dy@transpose(b)', time(() => tf.tidy(() => tf.matMul(dy, tf.transpose(b)))), 'aT@dy', time(() => tf.matMul(a, dy, true, false)), 'transpose(a)@dy', time(() => tf.tidy(() => tf.matMul(tf.transpose(a), dy))));
}
