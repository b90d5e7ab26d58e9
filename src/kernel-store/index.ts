/**
 * The kernel store: eNTK kernels of a run's checkpoints over named point sets, with the points,
 * the model's logits/probabilities and a verified manifest; computing, sharding, merging,
 * exporting. The dynamics and report stages read kernels through this API.
 */
export {
  type ComputedKernelKind,
  type ComputedStore,
  type ComputeKernelStoresOptions,
  computeKernelStores,
  logitsAndProbabilities,
  parseShard,
  type ShardSpec,
  selectCheckpoints,
  shardDir,
  shardRows,
  summarizeModel,
} from './compute.js';
export {
  INDEX_CONVENTION,
  KERNEL_KINDS,
  KERNEL_STORE_FORMAT,
  KERNEL_STORE_VERSION,
  type KernelKind,
  type KernelManifest,
  MANIFEST_JSON,
  type ManifestArray,
  type ManifestLayer,
  manifestSchema,
  parseManifest,
  STORE_ARRAYS,
  type StoreArrayName,
} from './manifest.js';
export { findShardSets, type MergedStore, type MergeOptions, mergeKernelShards } from './merge.js';
export {
  defaultPointSetName,
  type PointSet,
  type PointSource,
  type PointTerm,
  parsePointSpec,
  type ResolvePointsOptions,
  resolvePoints,
} from './points.js';
export {
  type ExportKernelStoreOptions,
  expectedShapes,
  exportKernelStore,
  type KernelArraySource,
  type KernelManifestInput,
  type KernelStore,
  type KernelStoreEntry,
  kernelBlock,
  listKernelStores,
  pointIndices,
  type ReadKernelStoreOptions,
  readKernelManifest,
  readKernelRows,
  readKernelStore,
  readStoreArray,
  storeRows,
  verifyKernelStore,
  type WriteKernelStoreInput,
  writeKernelStore,
} from './store.js';
