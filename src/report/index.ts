/**
 * Reports: figures as Vega-Lite specs rendered server-side to SVG (and PNG through resvg), and a
 * self-contained HTML report with results.json holding every number shown.
 */

export {
  blockAverage,
  classSortedOrder,
  DEFAULT_MAX_CELLS,
  type KernelHeatmapOptions,
  kernelHeatmapFigure,
} from './figures/heatmap.js';
export {
  type DriftPoint,
  type ErrorOverStepsOptions,
  type ErrorSeries,
  errorOverStepsFigure,
  type KernelDriftOptions,
  kernelDriftFigure,
} from './figures/lines.js';
export {
  type PredictedVsActualOptions,
  predictedVsActualFigure,
  type ScatterSeries,
} from './figures/scatter.js';
export {
  type DiscretisationVsStepSizeOptions,
  discretisationVsStepSizeFigure,
  type LazinessVsWidthOptions,
  type LogLogSlopeOptions,
  lazinessVsWidthFigure,
  logLogSlopeFigure,
  type ReferenceSlope,
} from './figures/slope.js';
export {
  TERNARY_VERTICES,
  type TernaryOptions,
  type TernaryTrajectory,
  ternaryFigure,
  ternaryProject,
} from './figures/ternary.js';
export {
  LOG_PROBABILITY_FLOOR,
  type TrajectoriesOptions,
  type TrajectoryPoint,
  type TrajectorySeries,
  trajectoriesFigure,
} from './figures/trajectories.js';
export {
  escapeHtml,
  fillTemplate,
  formatNumber,
  jsonNumber,
  jsonPointer,
  MISSING_TEXT,
  parseTemplate,
  resolveJsonPointer,
  type TemplatePart,
} from './format.js';
export { categoryColours, methodColours, methodDashes, OKABE_ITO } from './palette.js';
export { encodePngRgb, PNG_SIGNATURE, pngSize } from './png.js';
export {
  baseConfig,
  FIGURE_FONT,
  FIGURE_ID_PATTERN,
  type Figure,
  type FigureHtmlOptions,
  type FigureOptions,
  figureHtml,
  makeFigure,
  type PngOptions,
  renderSvg,
  scopeSvgIds,
  svgSize,
  svgToPng,
} from './render.js';
export {
  type FigureFiles,
  figureFiles,
  formatTableText,
  type RenderHtmlOptions,
  type Report,
  type ReportColumn,
  type ReportResults,
  type ReportRow,
  type ReportSection,
  type ReportTable,
  renderReportHtml,
  reportResults,
  validateReport,
} from './report.js';
export { type WriteReportOptions, type WrittenReport, writeReport } from './write.js';
