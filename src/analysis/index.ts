/**
 * Kernel analysis: what researchers do with an eNTK once they have it — predictions of the
 * linearised network (closed-form MSE flow, cross-entropy flow), the spectrum (block Lanczos on
 * kernels read from disk once or on every pass), kernel–target alignment and CKA, and a per-run report over
 * checkpoints. Stage: after compare and report (it reuses kernelDrift and the figure machinery),
 * beside experiment; the CLI's `entk analyze` maps onto {@link analyzeRun}.
 */
export {
  centerColumns,
  centeredAlignment,
  centeredFrobenius2,
  fullKernelTargetAlignment,
  kernelTargetAlignment,
  kernelTargetAlignmentDense,
} from './alignment.js';
export {
  type EighOptions,
  type FactoredSymmetricEigen,
  factoredSymmetricEigen,
  type SymmetricEigen,
  symmetricEigen,
} from './eigh.js';
export { type OverTrainingOptions, type OverTrainingSeries, overTrainingFigure } from './figures.js';
export { type TopEigenOptions, type TopEigenResult, topEigenpairs } from './lanczos.js';
export {
  type LayerContribution,
  type LayerContributionsOptions,
  layerContributions,
} from './layers.js';
export {
  denseKernelMatrix,
  type KernelMatrix,
  type KernelMatrixStats,
  kernelMatrixData,
  kernelMatrixStats,
  type NpyKernelMatrixOptions,
  npyKernelMatrix,
} from './matrix.js';
export {
  accuracy,
  type CrossEntropyFlowOptions,
  type CrossEntropyFlowResult,
  crossEntropyFlow,
  crossEntropyLoss,
  type FlowOutputs,
  type KernelSplit,
  type MseFlow,
  type MseFlowOptions,
  mseFlow,
  mseLoss,
  oneHot,
  oneHotKron,
  splitSizes,
} from './predict.js';
export {
  type AnalysisResults,
  type AnalyzeRunOptions,
  analysisReport,
  analyzeRun,
  type CheckpointAnalysis,
  type PredictorComparison,
  scalarKernel,
  storeKernelMatrix,
} from './run.js';
export {
  FULL_SPECTRUM_MAX,
  type KernelSpectrum,
  type KernelSpectrumOptions,
  kernelSpectrum,
} from './spectrum.js';
