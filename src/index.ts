/**
 * entk — the one public barrel. Notebooks, the CLI and users import from here; everything not
 * re-exported here is private to its module.
 */
export * from './analysis/index.js';
export * from './backend/index.js';
export * from './compare/index.js';
export * from './data/index.js';
export * from './dynamics/index.js';
export * from './embed/index.js';
export * from './errors.js';
export * from './experiment/index.js';
export * from './finetune/index.js';
export * from './io/index.js';
export * from './kernel/index.js';
export * from './kernel-store/index.js';
export * from './model/index.js';
export * from './report/index.js';
export * from './train/index.js';
export {
  checkOutputDir,
  cleanStaleTemporaries,
  fitLogLog,
  isOutputOfKind,
  type KernelDrift,
  kernelDrift,
  klDivergence,
  type LogLogFit,
  logLogSlope,
  type Numeric,
  type OutputKind,
  type OutputOptions,
  pearson,
  Rng,
  ranks,
  type SlopeFit,
  signAgreement,
  spearman,
  withOutputLock,
  writeOutputDir,
} from './util/index.js';
