/**
 * A kernel missing from @tensorflow/tfjs-backend-wasm 4.22 that the general (Jacobian) eNTK path
 * needs: `UnsortedSegmentSum`, the gradient of `gather` with respect to its params — i.e. of an
 * Embedding layer's weights. Plain JS loops (float64 sums) over the backend's memory; registered
 * once, and only when the wasm backend is loaded. (src/model/wasm-kernels.ts installs the others.)
 */
import * as tf from '@tensorflow/tfjs';

type Info = tf.TensorInfo;

interface WasmBackendLike {
  readSync(dataId: object): ArrayLike<number>;
  makeOutput(shape: number[], dtype: tf.DataType): Info;
  typedArrayFromHeap(info: Info): Float32Array | Int32Array;
}

/** out[s, ...] = Σ_{k: ids[k] = s} x[k, ...] (ids outside [0, numSegments) are dropped, as in TF). */
function unsortedSegmentSum(args: { inputs: unknown; backend: unknown; attrs?: unknown }): Info {
  const { x, segmentIds } = args.inputs as { x: Info; segmentIds: Info };
  const { numSegments } = args.attrs as { numSegments: number };
  const backend = args.backend as WasmBackendLike;
  const outer = segmentIds.shape.reduce((a, b) => a * b, 1);
  const size = x.shape.reduce((a, b) => a * b, 1);
  const inner = outer === 0 ? 0 : size / outer;
  const xs = backend.readSync(x.dataId);
  const ids = backend.readSync(segmentIds.dataId);
  const acc = new Float64Array(numSegments * inner);
  for (let k = 0; k < outer; k++) {
    const s = ids[k]!;
    if (s < 0 || s >= numSegments) continue;
    for (let j = 0; j < inner; j++) acc[s * inner + j]! += xs[k * inner + j]!;
  }
  const out = backend.makeOutput([numSegments, ...x.shape.slice(segmentIds.shape.length)], x.dtype);
  backend.typedArrayFromHeap(out).set(acc);
  return out;
}

/** Register the missing wasm kernels (idempotent; no-op when wasm is not loaded). */
export function installKernelWasmFixes(): void {
  if (!tf.getKernel('Transpose', 'wasm')) return;
  if (!tf.getKernel('UnsortedSegmentSum', 'wasm')) {
    tf.registerKernel({
      kernelName: 'UnsortedSegmentSum',
      backendName: 'wasm',
      kernelFunc: unsortedSegmentSum as unknown as tf.KernelFunc,
    });
  }
}
