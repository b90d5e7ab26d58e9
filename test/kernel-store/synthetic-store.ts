// A small synthetic kernel store (manifest and arrays) for the store, integrity and fuzz tests.
import type { NdArray } from '../../src/io/index.js';
import type { KernelManifestInput, WriteKernelStoreInput } from '../../src/kernel-store/index.js';
import { Rng } from '../../src/util/rng.js';

/**
 * A synthetic store's manifest and arrays: N points, V outputs, a random kernel of `kind` and `dtype`
 * (values are arbitrary here), seeded by `seed`.
 */
export function syntheticStore(
  N = 5,
  V = 3,
  kind: 'full' | 'diagonal' | 'trace' = 'full',
  dtype: 'float32' | 'float64' = 'float32',
  seed = 7,
) {
  const rng = new Rng(seed);
  const shape = kind === 'full' ? [N * V, N * V] : kind === 'diagonal' ? [N, V, V] : [N, N];
  const size = shape.reduce((a, b) => a * b, 1);
  const kernel = dtype === 'float32' ? new Float32Array(size) : new Float64Array(size);
  for (let k = 0; k < size; k++) kernel[k] = rng.normal();
  const manifest: KernelManifestInput = {
    run: {
      dir: null,
      data: 'synthetic',
      dataOptions: {},
      split: { seed: 0, testFraction: 0.2 },
      standardized: true,
    },
    model: {
      spec: { kind: 'linear' },
      preset: 'linear',
      layers: [{ name: 'logits', className: 'Dense', outputShape: [null, V], parameters: 2 * V + V }],
      parameterCount: 3 * V,
      inputShape: [2],
      numOutputs: V,
      classNames: Array.from({ length: V }, (_, i) => `c${i}`),
    },
    checkpoint: { id: 'step-000010', step: 10, epoch: 1, metrics: null },
    points: {
      name: 'pts',
      spec: 'train:all',
      seed: 0,
      count: N,
      ids: Array.from({ length: N }, (_, i) => `p${i}`),
      sources: Array.from({ length: N }, () => 'train' as const),
    },
    kernel: {
      kind,
      implementation: 'structured',
      accumulation: dtype,
      parameters: 'all',
      layers: ['logits'],
      parameterCount: 3 * V,
      backend: 'wasm',
      threads: 1,
      blockSize: 4,
      timings: { total: 1.5 },
    },
    shard: null,
  };
  const kernelArray = { dtype, shape, data: kernel } as NdArray;
  const arrays: WriteKernelStoreInput['arrays'] & { kernel: NdArray } = {
    kernel: kernelArray,
    inputs: { dtype: 'float32', shape: [N, 2], data: Float32Array.from({ length: N * 2 }, (_, k) => k / 3) },
    labels: { dtype: 'int32', shape: [N], data: Int32Array.from({ length: N }, (_, k) => k % V) },
    logits: { dtype: 'float32', shape: [N, V], data: Float32Array.from({ length: N * V }, (_, k) => k - 4) },
    probabilities: {
      dtype: 'float64',
      shape: [N, V],
      data: Float64Array.from({ length: N * V }, () => 1 / V),
    },
  };
  return { manifest, arrays };
}
