/**
 * Training: configuration, the checkpointed and exactly resumable training loop, optimiser state,
 * and the run directory every later stage reads (layout documented in ./run.ts).
 */
export type {
  CheckpointSchedule,
  DataOptions,
  OptimizerConfig,
  OptimizerName,
  StepPlan,
  TrainConfig,
  TrainConfigInput,
} from './config.js';
export {
  checkpointSteps,
  DEFAULT_EPOCHS,
  defaultLearningRate,
  OPTIMIZERS,
  planSteps,
  resolveTrainConfig,
  toConfigInput,
  trainConfigSchema,
} from './config.js';
export type { OptimizerStateFile } from './optimizer.js';
export { createOptimizer, disposeOptimizer, loadOptimizer, saveOptimizerState } from './optimizer.js';
export type {
  CheckpointInfo,
  CheckpointState,
  LogEntry,
  Metrics,
  PreparedData,
  Run,
  RunConfigFile,
  SplitFile,
  TokenizerRecord,
} from './run.js';
export {
  CHECKPOINT_ID,
  CHECKPOINT_INDEX,
  CHECKPOINTS_DIR,
  CONFIG_JSON,
  checkpointId,
  dataSha256,
  FINETUNE_DIR,
  hashCheckpointFiles,
  KERNELS_DIR,
  LOGS_DIR,
  loadCheckpointModel,
  modelInputShape,
  openRun,
  prepareRunData,
  readCheckpointIndex,
  readTrainLog,
  runPaths,
  SPLIT_JSON,
  STATE_JSON,
  selectCheckpoint,
  TRAIN_LOG,
  verifyCheckpoint,
} from './run.js';
export type { TrainOptions, TrainProgress, TrainResult } from './train.js';
export { evaluateModel, meanCrossEntropy, readRunConfig, train } from './train.js';
