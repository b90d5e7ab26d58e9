import * as tf from '@tensorflow/tfjs';
import { initBackend } from './src/backend/index.js';
import { train } from './src/train/index.js';
import { rmSync } from 'node:fs';
await initBackend();
const variants = JSON.parse(process.argv[2]!);
for (const v of variants) {
  const out = `/tmp/entk-mt/run-${Math.random().toString(36).slice(2)}`;
  const before = tf.memory().numTensors;
  const r = await train({ data: 'digits', ...v }, { outDir: out });
  console.log(JSON.stringify(v), 'steps', r.totalSteps, 'time', r.seconds.toFixed(2), 'test acc', r.metrics.testAccuracy.toFixed(4), 'train loss', r.metrics.trainLoss.toFixed(4), 'ckpts', r.checkpoints.length, 'leak', tf.memory().numTensors - before);
  rmSync(out, { recursive: true });
}
