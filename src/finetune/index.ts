/**
 * Finetuning as a stage of its own, above the kernel store: the recorder (plain SGD from a run's
 * checkpoint or a user's tfjs layers model, log-probabilities of every tracked point, kernels stored as kernel stores; layout in
 * ./record.ts) and the one way to build a fitness operator from a kernel store (./operator.ts).
 */
export { operatorFromStore, storeBlocks } from './operator.js';
export {
  checkRecordingModel,
  FINETUNE_FORMAT,
  FINETUNE_MANIFEST,
  FINETUNE_MODES,
  FINETUNE_READ_VERSIONS,
  FINETUNE_VERSION,
  type FinetuneArrayFile,
  type FinetuneKernelEntry,
  type FinetuneManifest,
  type FinetuneMode,
  type FinetuneOptions,
  type FinetuneRecording,
  type FinetuneResult,
  finetune,
  finetuneDir,
  minibatchSchedule,
  readFinetuneManifest,
  readFinetuneRecording,
  readRecordingKernel,
} from './record.js';
