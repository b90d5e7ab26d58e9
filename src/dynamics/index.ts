/**
 * Learning dynamics predicted from the eNTK (docs/theory.md#lazy-training): the fitness operator, equation (1),
 * POP-MU, POP-ODE (logit and simplex forms) with a Dormand–Prince 5(4) integrator, and the
 * linearised-network reference. Plain float64 over typed arrays (WebAssembly SIMD in the hot loop).
 */
export {
  type Dopri5Options,
  dopri5,
  ODE_TOLERANCES,
  type OdeRhs,
  type OdeSolution,
  type OdeStats,
  TIGHT_ODE_TOLERANCES,
} from './dopri5.js';
export {
  equationOne,
  fitness,
  type LinearizedGdOptions,
  linearizedGd,
} from './linearized.js';
export { FitnessOperator, type KernelBlocks, type OperatorOptions } from './operator.js';
export {
  logitRhs,
  type OneStepOptions,
  type OperatorSchedule,
  oneStepPredict,
  type PopMuOptions,
  type PopOdeOptions,
  type PopOdeResult,
  popMu,
  popOde,
  replicatorRhs,
} from './predictors.js';
export {
  addStepWeights,
  type BatchSchedule,
  type DynamicsProblem,
  logSoftmax,
  logSoftmaxRow,
  type StepOptions,
  scheduleWeights,
  softmax,
  type Trajectory,
} from './types.js';
