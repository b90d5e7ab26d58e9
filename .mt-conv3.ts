import * as tf from '@tensorflow/tfjs';
import { initBackend } from './src/backend/index.js';
import { testValues, maxRelError } from './test/model/reference.js';
await initBackend('cpu');
    const [n, h, w, ci, co, k] = [2, 6, 5, 3, 4, 3];
    const xv = testValues(n * h * w * ci, 4);
    const wv = testValues(k * k * ci * co, 5);
    for (const stride of [1, 2]) {
      for (const pad of ['same', 'valid'] as const) {
        const oh = pad === 'same' ? Math.ceil(h / stride) : Math.ceil((h - k + 1) / stride);
        const ow = pad === 'same' ? Math.ceil(w / stride) : Math.ceil((w - k + 1) / stride);
        const padTop = pad === 'same' ? Math.floor(Math.max((oh - 1) * stride + k - h, 0) / 2) : 0;
        const padLeft = pad === 'same' ? Math.floor(Math.max((ow - 1) * stride + k - w, 0) / 2) : 0;
        const cv = testValues(n * oh * ow * co, 6);
        const got = tf.tidy(() => {
          const x = tf.tensor4d(xv, [n, h, w, ci]);
          const c = tf.tensor4d(cv, [n, oh, ow, co]);
          console.log(tf.conv2d(x, tf.tensor4d(wv, [k, k, ci, co]), stride, pad).shape, [n, oh, ow, co]);
          const g = tf.grad((filter: tf.Tensor4D) => tf.sum(tf.mul(tf.conv2d(x, filter, stride, pad), c)));
          return g(tf.tensor4d(wv, [k, k, ci, co])).dataSync();
        });
        console.log(Array.from(xv.slice(0,3)), Array.from(cv.slice(0,3)));
      }
    }
for (const backend of ['cpu', 'wasm']) {
  await initBackend(backend);
  const { installWasmKernelFixes } = await import('./src/model/index.js');
  installWasmKernelFixes();
    for (const stride of [1, 2]) {
      for (const pad of ['same', 'valid'] as const) {
        const oh = pad === 'same' ? Math.ceil(h / stride) : Math.ceil((h - k + 1) / stride);
        const ow = pad === 'same' ? Math.ceil(w / stride) : Math.ceil((w - k + 1) / stride);
        const padTop = pad === 'same' ? Math.floor(Math.max((oh - 1) * stride + k - h, 0) / 2) : 0;
        const padLeft = pad === 'same' ? Math.floor(Math.max((ow - 1) * stride + k - w, 0) / 2) : 0;
        const cv = testValues(n * oh * ow * co, 6);
        const got = tf.tidy(() => {
          const x = tf.tensor4d(xv, [n, h, w, ci]);
          const c = tf.tensor4d(cv, [n, oh, ow, co]);
          const g = tf.grad((filter: tf.Tensor4D) => tf.sum(tf.mul(tf.conv2d(x, filter, stride, pad), c)));
          return g(tf.tensor4d(wv, [k, k, ci, co])).dataSync();
        });
        const expected = new Float64Array(k * k * ci * co);
        for (let b = 0; b < n; b++)
          for (let y = 0; y < oh; y++)
            for (let z = 0; z < ow; z++)
              for (let p = 0; p < k; p++)
                for (let q = 0; q < k; q++) {
                  const iy = y * stride + p - padTop;
                  const iz = z * stride + q - padLeft;
                  if (iy < 0 || iy >= h || iz < 0 || iz >= w) continue;
                  for (let i = 0; i < ci; i++)
                    for (let o = 0; o < co; o++)
                      expected[((p * k + q) * ci + i) * co + o]! +=
                        xv[((b * h + iy) * w + iz) * ci + i]! * cv[((b * oh + y) * ow + z) * co + o]!;
                }
        console.log(backend, stride, pad, maxRelError(got, expected), got.slice(0,3), expected.slice(0,3));
      }
    }
}
