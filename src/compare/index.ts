/**
 * Comparing actual finetune trajectories with the lazy-training predictors: metrics (this file's
 * exports) and the prediction/comparison pipeline over a run directory.
 */
export {
  alignSteps,
  type ChangeAgreement,
  changeAgreement,
  discretisationGap,
  type ErrorSummary,
  finalKl,
  type GapCurve,
  intervalChanges,
  lazinessGap,
  type TrajectoryErrorSet,
  type TrajectoryErrors,
  trajectoryErrors,
} from './metrics.js';
export {
  COMPARISON_JSON,
  type CompareOptions,
  type Comparison,
  compareRecording,
  PREDICTIONS_DIR,
  PREDICTIONS_FORMAT,
  type PredictionEntry,
  type PredictionsManifest,
  type PredictOptions,
  predictRecording,
  readPredictions,
  type SubsetComparison,
  selectPoints,
  summarizeComparison,
  type TrajectoryComparison,
} from './pipeline.js';
export {
  type LabelOf,
  PREDICTOR_TABLE,
  PREDICTORS,
  type Predictor,
  type PredictorEntry,
  type PredictorInput,
  type PredictorKind,
  type PredictorLabel,
  type PredictorName,
  type PredictorResult,
  predictor,
  predictorLabel,
} from './predictors.js';
