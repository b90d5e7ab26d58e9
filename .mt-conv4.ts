import * as tf from '@tensorflow/tfjs';
import { initBackend } from './src/backend/index.js';
import { maxRelError } from './test/model/reference.js';
const out: Record<string, Float32Array> = {};
for (const backend of ['cpu', 'wasm']) {
  await initBackend(backend);
  for (const s of [[1,1,1],[1,2,2],[1,2,1],[1,1,2]] as [number,number,number][]) {
    const got = tf.tidy(() => {
      const x = tf.randomUniform([2, 1, 6, 5, 3], -1, 1, 'float32', 1) as tf.Tensor5D;
      const f = tf.randomUniform([1, 3, 3, 3, 4], -1, 1, 'float32', 2) as tf.Tensor5D;
      const y = tf.conv3d(x, f, s, 'valid');
      const c = tf.randomUniform(y.shape, -1, 1, 'float32', 3);
      return tf.grad((ff: tf.Tensor) => tf.sum(tf.mul(tf.conv3d(x, ff as tf.Tensor5D, s, 'valid'), c)))(f).dataSync() as Float32Array;
    });
    const key = s.join(',');
    if (out[key]) console.log(key, maxRelError(got, out[key]!)); else out[key] = got;
  }
}
