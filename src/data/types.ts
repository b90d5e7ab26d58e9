/**
 * The in-memory dataset every stage consumes. Examples are rows; features are stored row-major
 * in one Float32Array so that they become a tfjs tensor of shape [n, ...inputShape] without copies.
 */
export interface Dataset {
  /** Short name ('digits', 'iris', a file's base name, 'synthetic-gmm'...). */
  name: string;
  /** Stable id of every example (kept through splits, subsets and shuffles), length n. */
  ids: string[];
  /** Features, row-major, length n * prod(inputShape). */
  x: Float32Array;
  /** Integer labels in [0, classNames.length), length n. */
  y: Int32Array;
  /** Shape of one example's input, e.g. [64] for digits as vectors. */
  inputShape: number[];
  /** Names of the V labels, in label-index order. */
  classNames: string[];
  /** Names of the feature columns (length prod(inputShape)), where known. */
  featureNames: string[];
  /** Raw text of every example, for text datasets fed to a frozen backbone (src/embed). */
  text?: string[];
}

/** Per-feature standardisation fitted on a training split: x' = (x - mean) / std. */
export interface Standardization {
  mean: number[];
  std: number[];
}
