/**
 * Keep tfjs quiet on import: its pure-JS cpu backend prints a "Hi, looks like you are running
 * TensorFlow.js in Node.js" banner (to stderr) on its first tensor in Node — for example when a
 * user builds a model before `initBackend`. A library must not write to its user's terminal, so
 * the banner's one-shot flag is cleared on every cpu backend instance tfjs creates (the engine
 * makes a new one from its registered factory each time it initialises backends). Every other
 * tfjs warning is left alone. (tfjs-backend-cpu 4.22: `MathBackendCPU.firstUse`.)
 */
import * as tf from '@tensorflow/tfjs';

type CpuBackend = { firstUse?: boolean };
const quiet = (backend: CpuBackend | null | undefined): void => {
  if (backend && typeof backend.firstUse === 'boolean') backend.firstUse = false;
};
const registry = (tf.engine() as unknown as { registryFactory?: Record<string, { factory: () => unknown }> })
  .registryFactory;
const entry = registry?.cpu;
if (entry) {
  const make = entry.factory;
  entry.factory = () => {
    const backend = make() as CpuBackend;
    quiet(backend);
    return backend;
  };
}
quiet(tf.findBackend('cpu') as unknown as CpuBackend);
