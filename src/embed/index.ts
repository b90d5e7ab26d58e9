/**
 * Frozen pretrained backbones through transformers.js: text / image feature extraction with an
 * on-disk feature cache, text Dataset → feature Dataset, tokenisation for entk's transformer
 * (text Dataset → token ids + mask), and loading user-supplied tfjs layers models with a
 * structured-eNTK support report.
 */
export {
  BACKBONE_DTYPES,
  type BackboneDtype,
  BackboneNotFoundError,
  type BackboneTask,
  defaultCacheDir,
  defaultModelsDir,
  findLocalModelDir,
  fingerprintFiles,
  type ResolveBackboneOptions,
  type ResolvedBackbone,
  requiredBackboneFiles,
  resolveBackbone,
  validateBackboneDir,
} from './backbone.js';
export {
  type CacheLookup,
  FEATURE_CACHE_FORMAT,
  featureCacheFile,
  featureCacheKey,
  hashTexts,
  readCachedFeatures,
} from './cache.js';
export {
  addBackboneOptions,
  type BackboneCliOptions,
  type BackboneConfig,
  BackboneConfigSchema,
  backboneConfigFromCli,
  type EmbedDatasetOptions,
  embedDataset,
  embedOptionsFromConfig,
  parseBackboneConfig,
} from './dataset.js';
export {
  type Embeddings,
  type EmbedOptions,
  embedImages,
  embedTexts,
  type ImageInput,
  POOLINGS,
  type Pooling,
} from './embed.js';
export { disposeBackbones } from './extractor.js';
export {
  resolveTokenizerDir,
  TOKENIZER_FILES,
  type TokenizedTexts,
  type TokenizeOptions,
  tokenizeDataset,
  tokenizeTexts,
} from './tokenize.js';
export {
  formatSupportReport,
  type LayerSupport,
  loadUserModel,
  type ModelSupportReport,
  resolveModelJson,
  structuredSupportReport,
  unsupportedLines,
} from './user-model.js';
