/**
 * Fixes to @tensorflow/tfjs-backend-wasm 4.22 that training (and any backward pass) needs:
 *
 * 1. Transposed matmuls: the wasm `BatchMatMul` / `_FusedMatMul` kernels are 10–18× slower with
 *    `transposeA`/`transposeB` than on pre-transposed operands (measured here: [1437,256]·[256,256]ᵀ
 *    62 ms vs 5 ms). Every matmul gradient uses the transposed forms, so backprop through a Dense
 *    layer was dominated by them. The wrapper materialises the transpose with the wasm `Transpose`
 *    kernel and calls the original kernel untransposed — same maths, same results up to float32
 *    summation order, for every caller in the process.
 * 2. `Conv2DBackpropFilter` (the gradient of a Conv2D's kernel) is not implemented on wasm; it is
 *    registered here (NHWC, dilation 1, padding 'same' / 'valid' / number). Stride 1 runs the wasm
 *    `Conv3DBackpropFilterV2` kernel on a depth-1 view ([n, h, w, c] read as [n, 1, h, w, c]);
 *    other strides run plain JS loops, because that wasm kernel is wrong for strides > 1 in
 *    tfjs 4.22 (checked against the cpu backend: relative errors ~1).
 *
 * 3. `UnsortedSegmentSum` (the gradient of `gather` with respect to its params, i.e. of an Embedding
 *    layer's weights, needed by the Jacobian eNTK path) is not implemented on wasm; registered here
 *    as plain JS loops with float64 sums.
 * 4. `MaxPoolGrad` and `MaxPool3DGrad` are wrong on wasm: windows whose maximum is 0 or tied lose
 *    their gradient, overlapping windows are misrouted (a Conv2D → ReLU → BatchNormalization →
 *    MaxPooling2D model's eNTK was off by 3.5e-2). Replaced by JS loops routing each window's dy
 *    to its argmax exactly as the cpu backend does (first maximum in 2-D, last in 3-D). 2-D windows
 *    of 2 × 2 that neither overlap nor need padding take a loop of their own: same routing, same bits.
 * 5. `DepthwiseConv2dNativeBackpropInput` / `…BackpropFilter` (DepthwiseConv2D, SeparableConv2D)
 *    are not implemented on wasm; registered here as JS loops with float64 sums.
 *
 * 6. `Identity` and `Cast` to the same dtype copy the tensor on wasm, and tfjs calls Identity to save
 *    every tensor a gradient will need (`saveTensorsForBackwardMode`): a backward pass copied all its
 *    activations (a third of the kernel time of the transformer eNTK's backward pass). Replaced by
 *    a counted reference to the same data, as the wasm Reshape and the cpu Identity kernels do
 *    (tfjs tensors are immutable). Other casts keep the stock kernel.
 *
 * 7. `Conv2D`, `FusedConv2D`, `DepthwiseConv2dNative`, `FusedDepthwiseConv2D` with 'same' padding
 *    are wrong on wasm when the padding TensorFlow's rule gives is negative (clamped to 0): stride >
 *    kernel and (out − 1)·s + k < size, e.g. size 3, kernel 2, stride 3 (relative error 1 against
 *    cpu: the wasm kernel hands 'same' to XNNPACK, which pads differently). There the call is
 *    rewritten with the same padding given explicitly (the clamped top/bottom/left/right tfjs
 *    computes), which the wasm kernels handle; every other call is unchanged. The gradients of these
 *    ops (Conv2DBackpropInput / Filter, the depthwise ones above) are right in that case.
 *
 * test/backend/gradient-conformance.test.ts compares every forward and gradient op of the supported
 * layers with the cpu backend; ./trust.ts refuses layers whose kernels a backend is not trusted with.
 *
 * `installWasmKernelFixes()` is idempotent and cheap; it acts only once the wasm backend's kernels
 * are registered (call it after `initBackend`). buildModel, loadModel and train call it.
 */
import * as tf from '@tensorflow/tfjs';
import './quiet.js';
import { UnsupportedError } from '../errors.js';
import { installGradientFixes } from './gradients.js';
import { geometryOfInfo, maxPoolArgmax, replicatedMaxPoolGradient } from './max-pool.js';

const MARK = Symbol.for('entk.wasmKernelFix');

type KernelFunc = tf.KernelConfig['kernelFunc'];
type Args = Parameters<KernelFunc>[0];
type Info = tf.TensorInfo;

function isMarked(config: tf.KernelConfig | undefined): boolean {
  return Boolean(config && (config.kernelFunc as unknown as Record<symbol, boolean>)[MARK]);
}

function mark<T extends object>(fn: T): T {
  (fn as unknown as Record<symbol, boolean>)[MARK] = true;
  return fn;
}

interface WasmBackendLike {
  incRef(dataId: object): void;
  disposeData(dataId: object): boolean;
  readSync(dataId: object): ArrayLike<number>;
  makeOutput(shape: number[], dtype: tf.DataType): Info;
  typedArrayFromHeap(info: Info): Float32Array | Int32Array;
}

/** dW[p, q, i, o] = Σ_{n,y,z} x[n, y·sh + p − top, z·sw + q − left, i] · dy[n, y, z, o] (float64 sums). */
function conv2dFilterGradJs(
  backend: WasmBackendLike,
  x: Info,
  dy: Info,
  strides: [number, number],
  pad: 'same' | 'valid' | number,
  filterShape: [number, number, number, number],
): Info {
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    strides,
    1,
    pad,
  );
  const [n, h, w, ci] = x.shape as [number, number, number, number];
  const [kh, kw, , co] = filterShape;
  const [, oh, ow] = dy.shape as [number, number, number, number];
  const xs = backend.readSync(x.dataId);
  const ds = backend.readSync(dy.dataId);
  const acc = new Float64Array(kh * kw * ci * co);
  const { top, left } = info.padInfo;
  for (let b = 0; b < n; b++)
    for (let y = 0; y < oh; y++)
      for (let z = 0; z < ow; z++) {
        const dyBase = ((b * oh + y) * ow + z) * co;
        for (let p = 0; p < kh; p++) {
          const iy = y * strides[0] + p - top;
          if (iy < 0 || iy >= h) continue;
          for (let q = 0; q < kw; q++) {
            const iz = z * strides[1] + q - left;
            if (iz < 0 || iz >= w) continue;
            const xBase = ((b * h + iy) * w + iz) * ci;
            for (let i = 0; i < ci; i++) {
              const xv = xs[xBase + i]!;
              if (xv === 0) continue;
              const outBase = ((p * kw + q) * ci + i) * co;
              for (let o = 0; o < co; o++) acc[outBase + o]! += xv * ds[dyBase + o]!;
            }
          }
        }
      }
  const out = backend.makeOutput([...filterShape], 'float32');
  backend.typedArrayFromHeap(out).set(acc);
  return out;
}

function wrapTransposedMatMul(kernelName: string): void {
  const original = tf.getKernel(kernelName, 'wasm');
  const transposeKernel = tf.getKernel('Transpose', 'wasm');
  if (!original || !transposeKernel || isMarked(original)) return;
  const run = original.kernelFunc;
  const transpose = transposeKernel.kernelFunc;
  const kernelFunc = mark((args: Args) => {
    const attrs = args.attrs as { transposeA?: boolean; transposeB?: boolean };
    if (!attrs.transposeA && !attrs.transposeB) return run(args);
    const inputs = { ...(args.inputs as Record<string, Info>) };
    const backend = args.backend as unknown as WasmBackendLike;
    const temporaries: Info[] = [];
    const swapLast = (x: Info): Info => {
      const r = x.shape.length;
      const perm = [...Array(r).keys()];
      [perm[r - 2], perm[r - 1]] = [perm[r - 1]!, perm[r - 2]!];
      const out = transpose({ inputs: { x }, backend: args.backend, attrs: { perm } }) as Info;
      temporaries.push(out);
      return out;
    };
    if (attrs.transposeA) inputs.a = swapLast(inputs.a!);
    if (attrs.transposeB) inputs.b = swapLast(inputs.b!);
    try {
      return run({ ...args, inputs, attrs: { ...args.attrs, transposeA: false, transposeB: false } });
    } finally {
      for (const t of temporaries) backend.disposeData(t.dataId);
    }
  });
  tf.unregisterKernel(kernelName, 'wasm');
  tf.registerKernel({ kernelName, backendName: 'wasm', setupFunc: original.setupFunc, kernelFunc });
}

type ConvAttrs = {
  strides: number | [number, number];
  dilations?: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dataFormat?: 'NHWC' | 'NCHW';
};

/**
 * The explicit padding equal to 'same' when TensorFlow's rule gives a negative total padding along
 * an axis ((out − 1)·s + (k − 1)·d + 1 < size, clamped to 0 by tfjs), else null (fix 7).
 */
export function negativeSamePadding(
  xShape: number[],
  filterShape: number[],
  attrs: ConvAttrs,
  depthwise: boolean,
): tf.backend_util.ExplicitPadding | null {
  if (attrs.pad !== 'same' || (attrs.dataFormat ?? 'NHWC') !== 'NHWC') return null;
  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    attrs.dilations ?? 1,
    'same',
    attrs.dimRoundingMode,
    depthwise,
  );
  const rows = (info.outHeight - 1) * info.strideHeight + info.effectiveFilterHeight - info.inHeight;
  const cols = (info.outWidth - 1) * info.strideWidth + info.effectiveFilterWidth - info.inWidth;
  if (rows >= 0 && cols >= 0) return null;
  const { top, bottom, left, right } = info.padInfo;
  return [
    [0, 0],
    [top, bottom],
    [left, right],
    [0, 0],
  ];
}

function wrapSamePadding(kernelName: string, depthwise: boolean): void {
  const original = tf.getKernel(kernelName, 'wasm');
  if (!original || isMarked(original)) return;
  const run = original.kernelFunc;
  const kernelFunc = mark((args: Args) => {
    const { x, filter } = args.inputs as { x: Info; filter: Info };
    const explicit = negativeSamePadding(
      x.shape,
      filter.shape,
      args.attrs as unknown as ConvAttrs,
      depthwise,
    );
    if (!explicit) return run(args);
    return run({ ...args, attrs: { ...args.attrs, pad: explicit } as unknown as tf.NamedAttrMap });
  });
  tf.unregisterKernel(kernelName, 'wasm');
  tf.registerKernel({ kernelName, backendName: 'wasm', setupFunc: original.setupFunc, kernelFunc });
}

function registerConv2DBackpropFilter(): void {
  const existing = tf.getKernel('Conv2DBackpropFilter', 'wasm');
  const conv3d = tf.getKernel('Conv3DBackpropFilterV2', 'wasm');
  if (existing || !conv3d) return;
  const run = conv3d.kernelFunc;
  const kernelFunc = mark((args: Args) => {
    const { x, dy } = args.inputs as { x: Info; dy: Info };
    const attrs = args.attrs as {
      strides: number | [number, number];
      pad: 'same' | 'valid' | number | number[][];
      dataFormat?: string;
      filterShape: [number, number, number, number];
    };
    if (attrs.dataFormat && attrs.dataFormat !== 'NHWC') {
      throw new UnsupportedError(`Conv2DBackpropFilter on wasm: dataFormat ${attrs.dataFormat} (only NHWC)`);
    }
    if (typeof attrs.pad !== 'string' && typeof attrs.pad !== 'number') {
      throw new UnsupportedError(
        'Conv2DBackpropFilter on wasm: explicit padding (use same, valid or a number)',
      );
    }
    const [sh, sw] = typeof attrs.strides === 'number' ? [attrs.strides, attrs.strides] : attrs.strides;
    if (sh !== 1 || sw !== 1) {
      return conv2dFilterGradJs(
        args.backend as unknown as WasmBackendLike,
        x,
        dy,
        [sh, sw],
        attrs.pad,
        attrs.filterShape,
      );
    }
    const x5: Info = { ...x, shape: [x.shape[0]!, 1, ...x.shape.slice(1)] };
    const dy5: Info = { ...dy, shape: [dy.shape[0]!, 1, ...dy.shape.slice(1)] };
    const out = run({
      inputs: { x: x5, dy: dy5 },
      backend: args.backend,
      attrs: { strides: [1, sh, sw], pad: attrs.pad, filterShape: [1, ...attrs.filterShape] },
    }) as Info;
    return { dataId: out.dataId, shape: [...attrs.filterShape], dtype: out.dtype };
  });
  tf.registerKernel({ kernelName: 'Conv2DBackpropFilter', backendName: 'wasm', kernelFunc });
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

/** The same data under a new tensor (reference counted): Identity, and Cast to the same dtype. */
function shareData(x: Info, backend: WasmBackendLike): Info {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/** Zero-copy Identity and same-dtype Cast on wasm (fix 6); strings and other casts as before. */
function registerSharingIdentity(): void {
  for (const name of ['Identity', 'Cast']) {
    const stock = tf.getKernel(name, 'wasm');
    if (!stock || isMarked(stock)) continue;
    const kernelFunc = (args: Args) => {
      const x = (args.inputs as { x: Info }).x;
      const same = name === 'Identity' || (args.attrs as { dtype?: string }).dtype === x.dtype;
      return same && x.dtype !== 'string'
        ? shareData(x, args.backend as unknown as WasmBackendLike)
        : stock.kernelFunc(args);
    };
    replaceKernel(name, kernelFunc as unknown as tf.KernelFunc);
  }
}

/**
 * Install the wasm kernel fixes (no-op on other backends or before the wasm backend is loaded),
 * and the backend-independent gradient overrides of ./gradients.ts.
 */
export function installWasmKernelFixes(): void {
  installGradientFixes();
  wrapTransposedMatMul('BatchMatMul');
  wrapTransposedMatMul('_FusedMatMul');
  registerConv2DBackpropFilter();
  registerUnsortedSegmentSum();
  wrapSamePadding('Conv2D', false);
  wrapSamePadding('FusedConv2D', false);
  wrapSamePadding('DepthwiseConv2dNative', true);
  wrapSamePadding('FusedDepthwiseConv2D', true);
  // Replaced (wrong on wasm 4.22) or added (missing on wasm 4.22): plain JS kernels, see below.
  replaceKernel('MaxPoolGrad', maxPoolGrad as unknown as tf.KernelFunc);
  replaceKernel('MaxPool3DGrad', maxPool3DGrad as unknown as tf.KernelFunc);
  replaceKernel('DepthwiseConv2dNativeBackpropInput', depthwiseBackpropInput as unknown as tf.KernelFunc);
  replaceKernel('DepthwiseConv2dNativeBackpropFilter', depthwiseBackpropFilter as unknown as tf.KernelFunc);
  registerSharingIdentity();
}

/** The names of the kernels this module registers or replaces on wasm (for tests and reports). */
export const WASM_FIXED_KERNELS = [
  'BatchMatMul',
  '_FusedMatMul',
  'Conv2DBackpropFilter',
  'UnsortedSegmentSum',
  'MaxPoolGrad',
  'MaxPool3DGrad',
  'DepthwiseConv2dNativeBackpropInput',
  'DepthwiseConv2dNativeBackpropFilter',
  'Identity',
  'Cast',
  'Conv2D',
  'FusedConv2D',
  'DepthwiseConv2dNative',
  'FusedDepthwiseConv2D',
] as const;

/** Register `kernelFunc` for `kernelName` on wasm, replacing a stock kernel (once the backend is loaded). */
function replaceKernel(kernelName: string, kernelFunc: tf.KernelFunc): void {
  // The wasm backend registers Transpose with its other kernels: its absence means "not loaded".
  if (!tf.getKernel('Transpose', 'wasm')) return;
  const existing = tf.getKernel(kernelName, 'wasm');
  if (isMarked(existing)) return;
  if (existing) tf.unregisterKernel(kernelName, 'wasm');
  tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: mark(kernelFunc) });
}

type Pool2DAttrs = {
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
};

/**
 * Gradient of MaxPool: each window's dy goes to the first position (row-major in the window) that
 * holds its maximum, as on the cpu backend and in TensorFlow. The wasm kernel of tfjs 4.22 drops
 * windows whose maximum is 0 or tied (an all-zero 4×4 input pooled 2×2 routed 1 0 0 0 …, not
 * 1 0 1 0 …) and misroutes overlapping windows.
 */
function maxPoolGrad(args: { inputs: unknown; backend: unknown; attrs?: unknown }): Info {
  const { dy, input } = args.inputs as { dy: Info; input: Info };
  const { filterSize, strides, pad, dimRoundingMode } = args.attrs as Pool2DAttrs;
  const backend = args.backend as WasmBackendLike;
  const info = tf.backend_util.computePool2DInfo(
    input.shape as [number, number, number, number],
    filterSize,
    strides,
    1,
    pad,
    dimRoundingMode,
  );
  const { batchSize, inHeight: h, inWidth: w, outHeight: oh, outWidth: ow } = info;
  const { strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw } = info;
  const { top, left } = info.padInfo;
  // Read and write the wasm heap in place (no allocation happens below, so the views stay valid).
  const out = backend.makeOutput([...input.shape], 'float32');
  const xs = backend.typedArrayFromHeap(input);
  const ds = backend.typedArrayFromHeap(dy);
  const target = backend.typedArrayFromHeap(out);
  // 2 × 2 windows that neither overlap nor leave the input (the common case) by a loop of their own;
  // any other: argmax per window, then dy scattered by it (./max-pool.ts; float64 sums).
  const inside = top === 0 && left === 0 && (oh - 1) * sh + 2 <= h && (ow - 1) * sw + 2 <= w;
  if (fh === 2 && fw === 2 && sh >= 2 && sw >= 2 && inside) {
    maxPoolGrad2x2(xs, ds, target, info);
    return out;
  }
  const g = geometryOfInfo(info);
  replicatedMaxPoolGradient(ds, maxPoolArgmax(xs, batchSize, g), 1, g, target as Float32Array);
  return out;
}

/**
 * {@link maxPoolGrad} for 2 × 2 windows that neither overlap nor leave the input (stride ≥ 2, no
 * padding used: e.g. 2 × 2 stride 2 'valid'), into `dx` (the output, zeroed here slab by slab): the
 * same routing as maxPoolArgmax (dy to the first maximum in row-major window order, `>` from −∞, so
 * no position for an all-NaN or all-−∞ window), the four comparisons written out.
 */
function maxPoolGrad2x2(
  xs: Float32Array | Int32Array,
  ds: Float32Array | Int32Array,
  dx: Float32Array | Int32Array,
  info: tf.backend_util.Conv2DInfo,
): void {
  const { batchSize, inHeight: h, inWidth: w, inChannels: ch, outHeight: oh, outWidth: ow } = info;
  const { strideHeight: sh, strideWidth: sw } = info;
  const slab = h * w * ch;
  const outSlab = oh * ow * ch;
  // at[o]: output o's maximum in its slab.
  const at = new Int32Array(outSlab);
  for (let b = 0; b < batchSize; b++) {
    const x0 = b * slab;
    let o = 0;
    for (let y = 0; y < oh; y++)
      for (let z = 0; z < ow; z++) {
        const corner = x0 + (y * sh * w + z * sw) * ch;
        for (let d = 0; d < ch; d++, o++) {
          const i0 = corner + d;
          const i1 = i0 + ch;
          const i2 = i0 + w * ch;
          const i3 = i2 + ch;
          let best = Number.NEGATIVE_INFINITY;
          let k = -1;
          const v0 = xs[i0]!;
          if (v0 > best) {
            best = v0;
            k = i0;
          }
          const v1 = xs[i1]!;
          if (v1 > best) {
            best = v1;
            k = i1;
          }
          const v2 = xs[i2]!;
          if (v2 > best) {
            best = v2;
            k = i2;
          }
          if (xs[i3]! > best) k = i3;
          at[o] = k < 0 ? -1 : k - x0;
        }
      }
    const d0 = b * outSlab;
    dx.fill(0, x0, x0 + slab);
    for (let q = 0; q < outSlab; q++) {
      const k = at[q]!;
      if (k >= 0) dx[x0 + k]! += ds[d0 + q]!;
    }
  }
}

/**
 * Gradient of MaxPool3D: dy to the last position (depth, row, column order) holding the window's
 * maximum, as on the cpu backend (its `>=` comparison). The wasm kernel of tfjs 4.22 drops
 * all-zero windows like its 2-D sibling.
 */
function maxPool3DGrad(args: { inputs: unknown; backend: unknown; attrs?: unknown }): Info {
  const { dy, input } = args.inputs as { dy: Info; input: Info };
  const { filterSize, strides, pad, dimRoundingMode } = args.attrs as {
    filterSize: number | [number, number, number];
    strides: number | [number, number, number];
    pad: 'valid' | 'same' | number;
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
  };
  const backend = args.backend as WasmBackendLike;
  const info = tf.backend_util.computePool3DInfo(
    input.shape as [number, number, number, number, number],
    filterSize,
    strides,
    1,
    pad,
    dimRoundingMode,
  );
  const { batchSize, inDepth: D, inHeight: h, inWidth: w, inChannels: ch } = info;
  const { outDepth: od, outHeight: oh, outWidth: ow } = info;
  const { strideDepth: st, strideHeight: sh, strideWidth: sw } = info;
  const { filterDepth: fd, filterHeight: fh, filterWidth: fw } = info;
  const { front, top, left } = info.padInfo;
  const xs = backend.readSync(input.dataId);
  const ds = backend.readSync(dy.dataId);
  const dx = new Float64Array(xs.length);
  let o = 0;
  for (let b = 0; b < batchSize; b++)
    for (let t = 0; t < od; t++) {
      const p0 = Math.max(0, t * st - front);
      const p1 = Math.min(D, t * st - front + fd);
      for (let y = 0; y < oh; y++) {
        const r0 = Math.max(0, y * sh - top);
        const r1 = Math.min(h, y * sh - top + fh);
        for (let z = 0; z < ow; z++) {
          const c0 = Math.max(0, z * sw - left);
          const c1 = Math.min(w, z * sw - left + fw);
          for (let d = 0; d < ch; d++, o++) {
            let best = Number.NEGATIVE_INFINITY;
            let at = -1;
            for (let p = p0; p < p1; p++)
              for (let r = r0; r < r1; r++)
                for (let c = c0; c < c1; c++) {
                  const k = (((b * D + p) * h + r) * w + c) * ch + d;
                  if (xs[k]! >= best) {
                    best = xs[k]!;
                    at = k;
                  }
                }
            if (at >= 0) dx[at]! += ds[o]!;
          }
        }
      }
    }
  const out = backend.makeOutput([...input.shape], 'float32');
  backend.typedArrayFromHeap(out).set(dx);
  return out;
}

type DepthwiseAttrs = {
  strides: number | [number, number];
  dilations: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
};

/**
 * The index map shared by both depthwise gradients: calls `visit(xIndex, dyIndex, wIndex)` for every
 * (input, output, filter) triple of y[b, oy, oz, c·M + m] = Σ_{p,q} x[b, oy·sh + p·dh − top,
 * oz·sw + q·dw − left, c] · w[p, q, c, m] (NHWC, M the channel multiplier).
 */
function depthwiseTriples(
  xShape: number[],
  filterShape: number[],
  attrs: DepthwiseAttrs,
  visit: (xi: number, di: number, wi: number) => void,
): void {
  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    attrs.dilations,
    attrs.pad,
    attrs.dimRoundingMode,
    true,
  );
  const { batchSize, inHeight: h, inWidth: w, inChannels: ci, outHeight: oh, outWidth: ow } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const { filterHeight: fh, filterWidth: fw, outChannels: co } = info;
  const M = co / ci;
  const { top, left } = info.padInfo;
  for (let b = 0; b < batchSize; b++)
    for (let y = 0; y < oh; y++)
      for (let p = 0; p < fh; p++) {
        const r = y * sh + p * dh - top;
        if (r < 0 || r >= h) continue;
        for (let z = 0; z < ow; z++)
          for (let q = 0; q < fw; q++) {
            const c = z * sw + q * dw - left;
            if (c < 0 || c >= w) continue;
            const xBase = ((b * h + r) * w + c) * ci;
            const dBase = ((b * oh + y) * ow + z) * co;
            const wBase = (p * fw + q) * ci * M;
            for (let k = 0; k < ci; k++)
              for (let m = 0; m < M; m++) visit(xBase + k, dBase + k * M + m, wBase + k * M + m);
          }
      }
}

/**
 * A depthwise-convolution gradient of shape `outShape`, summed in float64 over the (x, dy, w) index
 * triples of the convolution (`depthwiseTriples`): `add(out, xi, di, wi)` adds one product.
 */
function depthwiseGradient(
  backend: WasmBackendLike,
  xShape: number[],
  filterShape: number[],
  attrs: DepthwiseAttrs,
  outShape: number[],
  add: (out: Float64Array, xi: number, di: number, wi: number) => void,
): Info {
  const sums = new Float64Array(outShape.reduce((a, b) => a * b, 1));
  depthwiseTriples(xShape, filterShape, attrs, (xi, di, wi) => add(sums, xi, di, wi));
  const out = backend.makeOutput([...outShape], 'float32');
  backend.typedArrayFromHeap(out).set(sums);
  return out;
}

/** dx of a depthwise convolution (float64 sums); missing on wasm in tfjs 4.22. */
function depthwiseBackpropInput(args: { inputs: unknown; backend: unknown; attrs?: unknown }): Info {
  const { dy, filter } = args.inputs as { dy: Info; filter: Info };
  const attrs = args.attrs as DepthwiseAttrs & { inputShape: number[] };
  const backend = args.backend as WasmBackendLike;
  const ds = backend.readSync(dy.dataId);
  const ws = backend.readSync(filter.dataId);
  return depthwiseGradient(
    backend,
    attrs.inputShape,
    filter.shape,
    attrs,
    attrs.inputShape,
    (dx, xi, di, wi) => {
      dx[xi]! += ds[di]! * ws[wi]!;
    },
  );
}

/** dW of a depthwise convolution (float64 sums); missing on wasm in tfjs 4.22. */
function depthwiseBackpropFilter(args: { inputs: unknown; backend: unknown; attrs?: unknown }): Info {
  const { x, dy } = args.inputs as { x: Info; dy: Info };
  const attrs = args.attrs as DepthwiseAttrs & { filterShape: number[] };
  const backend = args.backend as WasmBackendLike;
  const xs = backend.readSync(x.dataId);
  const ds = backend.readSync(dy.dataId);
  return depthwiseGradient(
    backend,
    x.shape,
    attrs.filterShape,
    attrs,
    attrs.filterShape,
    (dw, xi, di, wi) => {
      dw[wi]! += xs[xi]! * ds[di]!;
    },
  );
}

function registerUnsortedSegmentSum(): void {
  if (!tf.getKernel('Transpose', 'wasm') || tf.getKernel('UnsortedSegmentSum', 'wasm')) return;
  tf.registerKernel({
    kernelName: 'UnsortedSegmentSum',
    backendName: 'wasm',
    kernelFunc: mark(unsortedSegmentSum as unknown as tf.KernelFunc),
  });
}
