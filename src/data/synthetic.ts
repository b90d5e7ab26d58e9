/**
 * Seeded synthetic data: a mixture of V isotropic unit-variance Gaussians in d dimensions, one per
 * class, with the class means placed deterministically from the seed. V = 3 in 2-D gives three
 * overlapping blobs on an equilateral triangle — a small problem whose probabilities live on the
 * 2-simplex, which is what the simplex pictures of the dynamics need.
 */
import { assertArgument, InvalidArgumentError } from '../errors.js';
import { formatBytes, Rng } from '../util/index.js';
import { rowId } from './table.js';
import type { Dataset } from './types.js';

/** Options of syntheticGaussianMixture. */
export interface SyntheticOptions {
  /** Number of classes V (≥ 2). */
  numClasses: number;
  /** Input dimension d (≥ 1). */
  dim: number;
  /** Examples per class (≥ 1); n = V * perClass. */
  perClass: number;
  /**
   * Distance between neighbouring class means, in units of the within-class standard deviation
   * (which is 1). Default 3: two neighbouring classes overlap with Bayes error Φ(-3/2) ≈ 6.7 %.
   */
  separation?: number;
  /** Seed of the means' orientation and of the samples. */
  seed: number;
}

/** Default synthetic settings (also the defaults of the `synthetic:` spec string). */
export const SYNTHETIC_DEFAULTS = { numClasses: 3, dim: 2, perClass: 100, separation: 3, seed: 0 } as const;

/**
 * Limits of the synthetic generator, checked before anything is generated: V ≤ 1000 classes,
 * d ≤ 100000 dimensions, n = V·perClass ≤ 10⁶ examples, n·d ≤ 2²⁸ values (1 GB of float32) and
 * V²·d ≤ 2³² for the simplex means.
 */
export const SYNTHETIC_LIMITS = {
  numClasses: 1000,
  dim: 100_000,
  examples: 1_000_000,
  values: 2 ** 28,
  meanWork: 2 ** 32,
} as const;

function checkOptions(o: SyntheticOptions): Required<SyntheticOptions> {
  const separation = o.separation ?? SYNTHETIC_DEFAULTS.separation;
  const L = SYNTHETIC_LIMITS;
  assertArgument(
    Number.isInteger(o.numClasses) && o.numClasses >= 2 && o.numClasses <= L.numClasses,
    'numClasses',
    o.numClasses,
    `an integer ≥ 2 and ≤ ${L.numClasses} (synthetic classes=)`,
  );
  assertArgument(
    Number.isInteger(o.dim) && o.dim >= 1 && o.dim <= L.dim,
    'dim',
    o.dim,
    `an integer ≥ 1 and ≤ ${L.dim} (synthetic dim=)`,
  );
  assertArgument(
    Number.isInteger(o.perClass) && o.perClass >= 1,
    'perClass',
    o.perClass,
    'an integer ≥ 1 (synthetic per-class=)',
  );
  assertArgument(
    Number.isFinite(separation) && separation >= 0,
    'separation',
    separation,
    'a finite number ≥ 0',
  );
  assertArgument(Number.isInteger(o.seed) && o.seed >= 0, 'seed', o.seed, 'a non-negative integer');
  const n = o.numClasses * o.perClass;
  if (n > L.examples) {
    throw new InvalidArgumentError(
      'numClasses*perClass (synthetic classes= × per-class=)',
      n,
      `at most ${L.examples} examples`,
    );
  }
  if (n * o.dim > L.values) {
    throw new InvalidArgumentError(
      'numClasses*perClass*dim (synthetic classes= × per-class= × dim=)',
      n * o.dim,
      `at most ${L.values} feature values (${formatBytes(L.values * 4)} as float32)`,
    );
  }
  // The simplex means cost a Gram–Schmidt of V−1 vectors of length d: about V²·d operations.
  if (o.numClasses <= o.dim + 1 && o.numClasses * o.numClasses * o.dim > L.meanWork) {
    throw new InvalidArgumentError(
      'numClasses²*dim (synthetic classes=² × dim=)',
      o.numClasses * o.numClasses * o.dim,
      `at most ${L.meanWork} (the class means are an orthonormal frame of classes−1 vectors in dim dimensions)`,
    );
  }
  return { numClasses: o.numClasses, dim: o.dim, perClass: o.perClass, separation, seed: o.seed };
}

/** `count` orthonormal vectors of length `dim` (count ≤ dim), Gram–Schmidt on seeded Gaussians. */
function randomOrthonormal(rng: Rng, dim: number, count: number): number[][] {
  const basis: number[][] = [];
  while (basis.length < count) {
    const v = Array.from({ length: dim }, () => rng.normal());
    for (const b of basis) {
      let dot = 0;
      for (let k = 0; k < dim; k++) dot += v[k]! * b[k]!;
      for (let k = 0; k < dim; k++) v[k]! -= dot * b[k]!;
    }
    let sq = 0;
    for (const t of v) sq += t * t;
    const norm = Math.sqrt(sq);
    if (norm < 1e-6) continue; // (practically never) a draw inside the span: draw again
    basis.push(v.map((t) => t / norm));
  }
  return basis;
}

/**
 * The class means of the mixture, [V][d], all at distance `separation` from their neighbours and
 * centred at the origin:
 * - V ≤ d + 1: the vertices of a regular simplex with edge `separation` (every pair of means equally
 *   far apart), in a random orientation drawn from the seed;
 * - d = 1 < V - 1: equally spaced points on the line, `separation` apart;
 * - 2 ≤ d < V - 1: the vertices of a regular V-gon with edge `separation` in a random 2-D plane.
 */
export function syntheticClassMeans(o: SyntheticOptions): number[][] {
  const { numClasses: V, dim: d, separation, seed } = checkOptions(o);
  const rng = new Rng(seed).fork('synthetic/means');
  if (V <= d + 1) {
    // Helmert basis of the hyperplane orthogonal to (1,...,1) in R^V: vertex i (the centred unit
    // vector e_i) has coordinate h_k[i] along h_k = (1,...,1,-k,0,...,0)/sqrt(k(k+1)) (k ones).
    const frame = randomOrthonormal(rng, d, V - 1);
    const scale = separation / Math.SQRT2; // the centred e_i are sqrt(2) apart
    return Array.from({ length: V }, (_, i) => {
      const mean = new Array<number>(d).fill(0);
      for (let k = 1; k < V; k++) {
        const h = i < k ? 1 / Math.sqrt(k * (k + 1)) : i === k ? -k / Math.sqrt(k * (k + 1)) : 0;
        if (h === 0) continue;
        for (let t = 0; t < d; t++) mean[t]! += scale * h * frame[k - 1]![t]!;
      }
      return mean;
    });
  }
  if (d === 1) {
    const sign = rng.uniform() < 0.5 ? -1 : 1;
    return Array.from({ length: V }, (_, i) => [sign * separation * (i - (V - 1) / 2)]);
  }
  const [u, v] = randomOrthonormal(rng, d, 2) as [number[], number[]];
  const radius = separation / (2 * Math.sin(Math.PI / V));
  return Array.from({ length: V }, (_, i) => {
    const angle = (2 * Math.PI * i) / V;
    return u.map((ut, t) => radius * (Math.cos(angle) * ut + Math.sin(angle) * v[t]!));
  });
}

/**
 * A seeded Gaussian-mixture classification dataset: class c has `perClass` examples
 * x = mean_c + N(0, I_d) (means from syntheticClassMeans). Examples are class-major (all of class 0,
 * then class 1, ...); ids `synthetic-gmm-0000`...; inputShape [d]; classNames 'class_0'...;
 * featureNames 'x0'.... Same options → bit-identical dataset.
 */
export function syntheticGaussianMixture(o: SyntheticOptions): Dataset {
  const opts = checkOptions(o);
  const { numClasses: V, dim: d, perClass } = opts;
  const means = syntheticClassMeans(opts);
  const rng = new Rng(opts.seed).fork('synthetic/samples');
  const n = V * perClass;
  const x = new Float32Array(n * d);
  const y = new Int32Array(n);
  for (let c = 0; c < V; c++) {
    for (let j = 0; j < perClass; j++) {
      const i = c * perClass + j;
      y[i] = c;
      for (let t = 0; t < d; t++) x[i * d + t] = means[c]![t]! + rng.normal();
    }
  }
  const name = 'synthetic-gmm';
  return {
    name,
    ids: Array.from({ length: n }, (_, i) => rowId(name, i, n)),
    x,
    y,
    inputShape: [d],
    classNames: Array.from({ length: V }, (_, c) => `class_${c}`),
    featureNames: Array.from({ length: d }, (_, t) => `x${t}`),
  };
}
