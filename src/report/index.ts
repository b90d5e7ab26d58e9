/**
 * Reports: figures as Vega-Lite specs rendered server-side to SVG (and PNG through resvg), and a
 * self-contained HTML report with results.json holding every number shown.
 */
export { type Numeric, pearson, fitLogLog, type LogLogFit } from './stats.js';
export {
  formatNumber,
  jsonNumber,
  jsonPointer,
  resolveJsonPointer,
  escapeHtml,
  fillTemplate,
  parseTemplate,
  MISSING_TEXT,
  type TemplatePart,
} from './format.js';
export { OKABE_ITO, methodColours, methodDashes, categoryColours } from './palette.js';
export { encodePngRgb, pngSize, PNG_SIGNATURE } from './png.js';
export {
  type Figure,
  type FigureOptions,
  type PngOptions,
  FIGURE_FONT,
  FIGURE_ID_PATTERN,
  baseConfig,
  makeFigure,
  renderSvg,
  svgSize,
  svgToPng,
  scopeSvgIds,
} from './render.js';
export {
  predictedVsActualFigure,
  type PredictedVsActualOptions,
  type ScatterSeries,
} from './figures/scatter.js';
export {
  trajectoriesFigure,
  type TrajectoriesOptions,
  type TrajectoryPoint,
  type TrajectorySeries,
  LOG_PROBABILITY_FLOOR,
} from './figures/trajectories.js';
export {
  errorOverStepsFigure,
  type ErrorOverStepsOptions,
  type ErrorSeries,
  kernelDriftFigure,
  type KernelDriftOptions,
  type DriftPoint,
} from './figures/lines.js';
export {
  kernelHeatmapFigure,
  type KernelHeatmapOptions,
  blockAverage,
  classSortedOrder,
  DEFAULT_MAX_CELLS,
} from './figures/heatmap.js';
export {
  logLogSlopeFigure,
  type LogLogSlopeOptions,
  type ReferenceSlope,
  lazinessVsWidthFigure,
  type LazinessVsWidthOptions,
  discretisationVsStepSizeFigure,
  type DiscretisationVsStepSizeOptions,
} from './figures/slope.js';
export {
  ternaryFigure,
  ternaryProject,
  TERNARY_VERTICES,
  type TernaryOptions,
  type TernaryTrajectory,
} from './figures/ternary.js';
export {
  type Report,
  type ReportSection,
  type ReportTable,
  type ReportColumn,
  type ReportRow,
  type ReportResults,
  type FigureFiles,
  type RenderHtmlOptions,
  figureFiles,
  validateReport,
  reportResults,
  renderReportHtml,
  formatTableText,
} from './report.js';
export { writeReport, type WriteReportOptions, type WrittenReport } from './write.js';
