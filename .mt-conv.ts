import * as tf from '@tensorflow/tfjs';
import { initBackend } from './src/backend/index.js';
import { installWasmKernelFixes } from './src/model/index.js';
await initBackend();
installWasmKernelFixes();
const run = (stride: number, pad: 'same'|'valid', conv3d = false) => tf.tidy(() => {
  const x = tf.randomUniform([2, 6, 5, 3], -1, 1, 'float32', 1);
  const f = tf.randomUniform([3, 3, 3, 4], -1, 1, 'float32', 2);
  const y = tf.conv2d(x, f, stride, pad);
  const c = tf.randomUniform(y.shape, -1, 1, 'float32', 3);
  if (conv3d) {
    const g = tf.grad((ff: tf.Tensor) => tf.sum(tf.mul(tf.conv3d(x.reshape([2,1,6,5,3]) as tf.Tensor5D, ff as tf.Tensor5D, [1,stride,stride], pad), c.reshape([2,1,...y.shape.slice(1)]))));
    return Array.from(g(f.reshape([1,3,3,3,4])).dataSync().slice(0, 6));
  }
  const g = tf.grad((ff: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(x, ff as tf.Tensor4D, stride, pad), c)));
  return Array.from(g(f).dataSync().slice(0, 6));
});
for (const s of [1, 2]) for (const p of ['same', 'valid'] as const) {
  await tf.setBackend('wasm'); const w = run(s, p); const w3 = run(s, p, true);
  await tf.setBackend('cpu'); const c = run(s, p); const c3 = run(s,p,true);
  console.log(s, p, w.map(v=>v.toFixed(4)).join(' '), '|', c.map(v=>v.toFixed(4)).join(' '), '| 3d', w3.map(v=>v.toFixed(4)).join(' '), '|', c3.map(v=>v.toFixed(4)).join(' '));
}
