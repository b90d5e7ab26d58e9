/**
 * Max-pooling by argmax indices: entk's MaxPool gradient kernel for the wasm backend
 * (./wasm-kernels.ts, V = 1), and the eNTK's replicated batch (src/kernel/structured.ts): every point is repeated V times
 * (row n·V + i differentiated through logit i), and each copy's max-pool routes its cotangent to
 * the same positions — the point's own argmax. So the argmax is found once per point, from the
 * points' input values, and the replicated gradient is a scatter of dy by those indices: no max-pool
 * forward and no MaxPoolGrad on V copies. The argmax rule is tfjs's: the first maximum in row-major
 * window order (a strict `>` from −∞; a window of NaNs routes nothing), windows clipped by the
 * padding.
 */
import * as tf from '@tensorflow/tfjs';

/** A MaxPooling1D/2D call's geometry on NHWC inputs (1-D: height 1). */
export interface PoolGeometry {
  inShape: [number, number, number]; // [H, W, C]
  outShape: [number, number, number]; // [oh, ow, C]
  filter: [number, number];
  strides: [number, number];
  /** Top and left padding. */
  pad: [number, number];
}

/** The geometry of a MaxPooling2D (or 1D, as height 1) layer on inputs of `inShape` (no batch). */
export function poolGeometry(
  inShape: [number, number, number],
  filter: [number, number],
  strides: [number, number],
  padding: 'valid' | 'same',
): PoolGeometry {
  return geometryOfInfo(tf.backend_util.computePool2DInfo([1, ...inShape], filter, strides, 1, padding));
}

/** The geometry of a pooling as tfjs describes it (backend_util.computePool2DInfo). */
export function geometryOfInfo(info: tf.backend_util.Conv2DInfo): PoolGeometry {
  return {
    inShape: [info.inHeight, info.inWidth, info.inChannels],
    outShape: [info.outHeight, info.outWidth, info.inChannels],
    filter: [info.filterHeight, info.filterWidth],
    strides: [info.strideHeight, info.strideWidth],
    pad: [info.padInfo.top, info.padInfo.left],
  };
}

/**
 * For every point and output element (oh, ow, c) of its pooling, the index within the point's input
 * (H·W·C entries) of the window's first maximum, or −1 (a window of NaNs). x: [b, H, W, C].
 */
export function maxPoolArgmax(x: ArrayLike<number>, b: number, g: PoolGeometry): Int32Array {
  const [H, W, C] = g.inShape;
  const [oh, ow] = g.outShape;
  const [fh, fw] = g.filter;
  const [sh, sw] = g.strides;
  const [top, left] = g.pad;
  const index = new Int32Array(b * oh * ow * C);
  let e = 0;
  for (let n = 0; n < b; n++) {
    const base = n * H * W * C;
    for (let y = 0; y < oh; y++) {
      const r0 = Math.max(0, y * sh - top);
      const r1 = Math.min(H, y * sh - top + fh);
      for (let z = 0; z < ow; z++) {
        const c0 = Math.max(0, z * sw - left);
        const c1 = Math.min(W, z * sw - left + fw);
        for (let d = 0; d < C; d++, e++) {
          let best = Number.NEGATIVE_INFINITY;
          let at = -1;
          for (let r = r0; r < r1; r++) {
            for (let c = c0; c < c1; c++) {
              const k = (r * W + c) * C + d;
              if (x[base + k]! > best) {
                best = x[base + k]!;
                at = k;
              }
            }
          }
          index[e] = at;
        }
      }
    }
  }
  return index;
}

/**
 * The input gradient of the replicated max-pool: dx[r][index[n][e]] += dy[r][e] for every row
 * r = n·V + i and output element e, summed in float64 where windows overlap (then rounded once, as
 * the backend kernel does), written directly where they cannot. dy: [b·V, oh·ow·C] values. Into
 * `into` when given (its first b·V·H·W·C entries), else a new array.
 */
export function replicatedMaxPoolGradient(
  dy: ArrayLike<number>,
  index: Int32Array,
  V: number,
  g: PoolGeometry,
  into?: Float32Array,
): Float32Array {
  const [H, W, C] = g.inShape;
  const inSize = H * W * C;
  const outSize = g.outShape[0] * g.outShape[1] * C;
  const rows = dy.length / outSize;
  const overlap = g.strides[0] < g.filter[0] || g.strides[1] < g.filter[1];
  // (`into`: a reused array of at least that length, zeroed here — fresh memory is slow on first touch.)
  const dx = into ? into.subarray(0, rows * inSize).fill(0) : new Float32Array(rows * inSize);
  const sums = overlap ? new Float64Array(inSize) : null;
  for (let r = 0; r < rows; r++) {
    const point = Math.floor(r / V) * outSize;
    const [dxRow, dyRow] = [r * inSize, r * outSize];
    if (sums) {
      sums.fill(0);
      for (let e = 0; e < outSize; e++) {
        const at = index[point + e]!;
        if (at >= 0) sums[at]! += dy[dyRow + e]!;
      }
      for (let k = 0; k < inSize; k++) dx[dxRow + k] = sums[k]!;
      continue;
    }
    for (let e = 0; e < outSize; e++) {
      const at = index[point + e]!;
      if (at >= 0) dx[dxRow + at] = 0 + dy[dyRow + e]!; // (0 + dy as the kernel: −0 → +0)
    }
  }
  return dx;
}
