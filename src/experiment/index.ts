/**
 * Experiments: a YAML/JSON configuration of studies run end to end — train → checkpoints →
 * kernels → finetune → predictions → metrics → report — resumably, with a report section per
 * study. `entk experiment <config>` and `entk demo` are the command-line forms.
 */

export { parseConfigText, readConfigFile } from '../util/index.js';
export {
  CONFIGS_DIR,
  configError,
  type ExperimentConfig,
  type ExperimentConfigInput,
  experimentConfigSchema,
  type FinetuneSettings,
  type LoadExperimentConfigOptions,
  listPresetConfigs,
  loadExperimentConfig,
  mergeConfigs,
  type PointSpecs,
  readExperimentConfigFile,
  resolveConfigPath,
  resolveExperimentConfig,
  STUDY_NAMES,
  type StudyName,
} from './config.js';
export {
  loadPredictions,
  METHODS,
  type Method,
  type MethodScore,
  ONE_STEP_PATH_LABEL,
  type PredictionOptions,
  type Predictions,
  type RecordingScores,
  SIGN_THRESHOLD,
  scoreRecording,
  scoreTrajectory,
  totalChange,
  writePredictions,
} from './predict.js';
export {
  type ExperimentResult,
  formatSummary,
  type RunExperimentOptions,
  runExperiment,
  summaryTable,
} from './runner.js';
export { canonicalJson, hashOf, type StageEvent, type StageOptions, StageRunner } from './stages.js';
export {
  type CheckpointsStudyConfig,
  type DiscretisationStudyConfig,
  type LazinessStudyConfig,
  type NegativeGradientsStudyConfig,
  type RegisteredStudy,
  type ReplicatorStudyConfig,
  type Squeeze,
  STUDIES,
  type StudyConfigOf,
  squeeze,
} from './studies/index.js';
export {
  type BaseRun,
  defineStudy,
  type Study,
  type StudyDefaults,
  type StudyRun,
  type SummaryRow,
} from './study.js';
