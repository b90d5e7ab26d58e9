/**
 * Datasets: the shipped real datasets (data/), CSV/JSONL loaders for user data, the seeded synthetic
 * Gaussian mixture, and pure transforms (stratified split/sample, subsets, standardisation, reshape).
 *
 * Shapes: a Dataset with n examples holds x: Float32Array of length n * prod(inputShape), row-major
 * (example i's features at x[i*d ... (i+1)*d), d = prod(inputShape)), y: Int32Array [n] of class
 * indices into classNames, ids: string[n] (stable through every transform), optional text: string[n].
 */
export type { BuiltinDatasetInfo, BuiltinDatasetName } from './builtin.js';
export {
  BUILTIN_DATASET_INFO,
  BUILTIN_DATASETS,
  builtinName,
  DATA_DIR,
  loadBuiltinDataset,
} from './builtin.js';
export {
  DATA_FILE_EXTENSIONS,
  dataFileFormat,
  datasetFromText,
  datasetNameFromPath,
  decodeDataBytes,
  loadDataFile,
  parseCsvTable,
  parseJsonlTable,
} from './files.js';
export { isSyntheticSpec, loadDataset, parseSyntheticSpec, resolveDataPath } from './load.js';
export { dataSourceFile } from './source.js';
export type { SyntheticOptions } from './synthetic.js';
export {
  SYNTHETIC_DEFAULTS,
  SYNTHETIC_LIMITS,
  syntheticClassMeans,
  syntheticGaussianMixture,
} from './synthetic.js';
export type { LoadOptions } from './table.js';
export { rowId, tableToDataset } from './table.js';
export type { SplitOptions } from './transforms.js';
export {
  applyStandardization,
  classCounts,
  featureSize,
  fitStandardization,
  numExamples,
  selectByIds,
  stratifiedSample,
  stratifiedSplit,
  subset,
  withInputShape,
} from './transforms.js';
export type { Dataset, Standardization } from './types.js';
