/**
 * entk — the one public barrel. Notebooks, the CLI and users import from here; everything not
 * re-exported here is private to its module.
 */
export * from './analysis/index.js';
// The backend: choosing and initialising it, its kernel fixes and trust checks; the max-pool helpers
// it shares with src/kernel stay private.
export {
  assertGradientsTrusted,
  BACKEND_NAMES,
  type BackendInfo,
  type BackendName,
  type BackendRequest,
  backendInfo,
  ENTK_VERSION,
  initBackend,
  installWasmKernelFixes,
  untrustedOps,
} from './backend/index.js';
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
// Reports: the figures, the report writer and figureHtml; the internal helpers (HTML escaping,
// templates and JSON pointers, PNG encoding, SVG id scoping) stay private to src/report.
export {
  baseConfig,
  blockAverage,
  categoryColours,
  classSortedOrder,
  DEFAULT_MAX_CELLS,
  type DiscretisationVsStepSizeOptions,
  type DriftPoint,
  discretisationVsStepSizeFigure,
  type ErrorOverStepsOptions,
  type ErrorSeries,
  errorOverStepsFigure,
  FIGURE_FONT,
  type Figure,
  type FigureHtmlOptions,
  type FigureOptions,
  figureHtml,
  formatTableText,
  type KernelDriftOptions,
  type KernelHeatmapOptions,
  kernelDriftFigure,
  kernelHeatmapFigure,
  type LazinessVsWidthOptions,
  LOG_PROBABILITY_FLOOR,
  type LogLogSlopeOptions,
  lazinessVsWidthFigure,
  logLogSlopeFigure,
  makeFigure,
  methodColours,
  methodDashes,
  OKABE_ITO,
  type PngOptions,
  type PredictedVsActualOptions,
  predictedVsActualFigure,
  type ReferenceSlope,
  type RenderHtmlOptions,
  type Report,
  type ReportColumn,
  type ReportResults,
  type ReportRow,
  type ReportSection,
  type ReportTable,
  renderReportHtml,
  renderSvg,
  reportResults,
  type ScatterSeries,
  svgToPng,
  TERNARY_VERTICES,
  type TernaryOptions,
  type TernaryTrajectory,
  type TrajectoriesOptions,
  type TrajectoryPoint,
  type TrajectorySeries,
  ternaryFigure,
  ternaryProject,
  trajectoriesFigure,
  validateReport,
  type WriteReportOptions,
  type WrittenReport,
  writeReport,
} from './report/index.js';
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
