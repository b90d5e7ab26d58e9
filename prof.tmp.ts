import * as tf from '@tensorflow/tfjs';
import { initBackend } from './src/backend/index.js';
import { buildModel, resolveModelSpec } from './src/model/index.js';

await initBackend(process.env.B ?? 'wasm');
console.log(tf.getBackend());
const model = buildModel(resolveModelSpec('transformer-tiny'), {
  inputShape: [64],
  numClasses: 3,
  seed: 0,
  vocabSize: 950,
});
const n = 32,
  L = 32;
const x = new Float32Array(n * 2 * L);
for (let i = 0; i < n; i++)
  for (let t = 0; t < L; t++) {
    const len = 10;
    x[i * 2 * L + t] = t < len ? (t * 7 + i) % 950 : 0;
    x[i * 2 * L + L + t] = t < len ? 1 : 0;
  }
const xt = tf.tensor(x, [n, 2 * L]);
const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
for (let r = 0; r < 3; r++) {
  let t0 = performance.now();
  tf.tidy(() => (model.predict(xt) as tf.Tensor).dataSync());
  const f = performance.now() - t0;
  t0 = performance.now();
  tf.tidy(() => {
    const { grads } = tf.variableGrads(() => tf.sum(model.apply(xt) as tf.Tensor) as tf.Scalar, vars);
    Object.values(grads)[0]!.dataSync();
  });
  console.log('fwd', f.toFixed(1), 'fwd+bwd', (performance.now() - t0).toFixed(1));
}
// profile ops
const prof = await tf.profile(() =>
  tf.tidy(() => {
    const { grads } = tf.variableGrads(() => tf.sum(model.apply(xt) as tf.Tensor) as tf.Scalar, vars);
    return Object.values(grads)[0]!;
  }),
);
const agg = new Map<string, number>();
for (const k of prof.kernels) agg.set(k.name, (agg.get(k.name) ?? 0) + (k.kernelTimeMs as number));
console.log([...agg.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12));
const cnt = new Map<string, { n: number; ms: number }>();
for (const k of prof.kernels) {
  if (k.name !== 'Slice' && k.name !== 'Add' && k.name !== 'Tile') continue;
  const key = `${k.name} ${JSON.stringify(k.inputShapes)}->${JSON.stringify(k.outputShapes)}`;
  const e = cnt.get(key) ?? { n: 0, ms: 0 };
  e.n++;
  e.ms += k.kernelTimeMs as number;
  cnt.set(key, e);
}
console.log([...cnt.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 10));
