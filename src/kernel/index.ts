/**
 * src/kernel: the empirical NTK (the folder's entry point; see src/architecture.ts). The public
 * function and its implementation table: ./ntk.ts.
 */

export { analyzeModel, leafLayers, type TokenIdInput } from './analyze.js';
export { checkTokenIds } from './engine.js';
export { terminateNtkWorkers } from './job.js';
export { DEFAULT_NTK_MEMORY_BUDGET, empiricalNtkFn, logitsFunction, modelLogits } from './ntk.js';
export { type PerLayerNtk, type PerLayerNtkOptions, perLayerNtk } from './per-layer.js';
export type { FiniteDifferenceOptions } from './reference.js';
export { finiteDifferenceJacobian, finiteDifferenceNtk } from './reference.js';
export type { LayerRule } from './structured.js';
export { planStructured } from './structured.js';
export * from './types.js';
