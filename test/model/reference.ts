// Plain float64 reference implementations, used only by tests.

/**
 * erf in float64: Maclaurin series for |x| <= 3 (error < 1e-13), and for |x| > 3
 * 1 − erfc(|x|) with erfc's continued fraction
 * erfc(x) = exp(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))) evaluated bottom-up.
 */
export function erf64(x: number): number {
  const ax = Math.abs(x);
  if (ax > 3) {
    let f = ax;
    for (let k = 80; k >= 1; k--) f = ax + k / 2 / f;
    return Math.sign(x) * (1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f);
  }
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / n;
    const add = term / (2 * n + 1);
    sum += add;
    if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

export function gelu64(x: number): number {
  return 0.5 * x * (1 + erf64(x / Math.SQRT2));
}

export const activations64: Record<string, (x: number) => number> = {
  relu: (x) => Math.max(0, x),
  tanh: Math.tanh,
  gelu: gelu64,
  erf: erf64,
  linear: (x) => x,
};

/**
 * h = scale * (a @ W) + biasScale * b for a: [n, k] row-major, W: [k, m] row-major, b: [m] (float64).
 */
export function dense64(
  a: ArrayLike<number>,
  n: number,
  k: number,
  W: ArrayLike<number>,
  m: number,
  b: ArrayLike<number> | null,
  scale = 1,
  biasScale = 1,
): Float64Array {
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += a[i * k + t]! * W[t * m + j]!;
      out[i * m + j] = scale * s + (b ? biasScale * b[j]! : 0);
    }
  }
  return out;
}

/** Max |a - b| / max(1, |b|) over all entries. */
export function maxRelError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < b.length; i++)
    worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / Math.max(1, Math.abs(b[i]!)));
  return worst;
}

/** Deterministic pseudo-random floats in [-1, 1) for test inputs (LCG; no dependence on src/). */
export function testValues(count: number, seed = 1): Float32Array {
  const out = new Float32Array(count);
  let s = seed >>> 0;
  for (let i = 0; i < count; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}
