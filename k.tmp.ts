import * as tf from '@tensorflow/tfjs';
import { initBackend } from './src/backend/index.js';
import { empiricalNtkFn } from './src/kernel/index.js';
import { buildModel, resolveModelSpec } from './src/model/index.js';
import { tokenBatch } from './test/model/transformer-fixtures.js';

await initBackend();
const model = buildModel(resolveModelSpec('transformer-tiny'), {
  inputShape: [64],
  numClasses: 3,
  seed: 0,
  vocabSize: 950,
});
const x = tf.tensor(tokenBatch(8, 32, 950, 1), [8, 64]);
const names = model.layers.filter((l) => l.trainableWeights.length).map((l) => l.name);
for (const n of names) {
  const k = await empiricalNtkFn(model, { parameters: [n], output: 'trace', progress: false })(x);
  const d = k.data;
  let diag = 0,
    off = 0;
  for (let i = 0; i < 8; i++)
    for (let j = 0; j < 8; j++) i === j ? (diag += d[i * 8 + j]!) : (off += d[i * 8 + j]!);
  console.log(n.padEnd(28), (diag / 8).toFixed(2), (off / 56).toFixed(2));
}
