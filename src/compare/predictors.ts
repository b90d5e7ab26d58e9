/**
 * The predictor registry: every lazy-training predictor entk runs on a finetune recording, in one
 * table — its name (file names, `entk predict --predictors`, summaries), its label (report tables,
 * figure legends, results.json), its kind (what its array holds) and how it runs. `entk predict`,
 * `entk compare` and the experiments all read this table; a new predictor is one entry here.
 *
 * | name                  | label              | kind        | what                                                  |
 * |-----------------------|--------------------|-------------|-------------------------------------------------------|
 * | `one-step`            | one-step           | increments  | equation (1) per recorded interval, K frozen           |
 * | `one-step-refreshed`  | one-step refreshed | increments  | the same with the refreshed K_t                        |
 * | `pop-mu`              | POP-MU             | trajectory  | POP-MU over the whole run, K frozen                    |
 * | `pop-mu-refreshed`    | refreshed          | trajectory  | POP-MU with piecewise-constant refreshed K_t           |
 * | `pop-ode`             | POP-ODE            | trajectory  | POP-ODE, logit form (DOPRI5), schedule-averaged weights |
 * | `pop-ode-simplex`     | POP-ODE simplex    | trajectory  | POP-ODE, the note's simplex form                       |
 *
 * A trajectory holds log π at the recorded steps, [T, P, V]; increments hold the predicted
 * Δ log π between consecutive records, [T−1, P, V]. P = N finetune points then M observation points.
 */
import {
  type BatchSchedule,
  type DynamicsProblem,
  type FitnessOperator,
  type OperatorSchedule,
  oneStepPredict,
  popMu,
  popOde,
  type Trajectory,
} from '../dynamics/index.js';
import { InvalidArgumentError } from '../errors.js';

/** What a predictor's array holds: log π at the recorded steps, or Δ log π per recorded interval. */
export type PredictorKind = 'trajectory' | 'increments';

/** Everything a predictor runs on (one recording). */
export interface PredictorInput {
  /** The kernel frozen at the checkpoint. */
  frozen: FitnessOperator;
  /** The kernels refreshed along the run (piecewise constant); `frozen` when there are none. */
  refreshed: OperatorSchedule;
  /** y_u of the finetune points and log π of every tracked point at the checkpoint. */
  problem: DynamicsProblem;
  /** The recorded trajectory (the one-step predictors start each interval from its state). */
  actual: Trajectory;
  /** η of the run (< 0: gradient ascent). */
  learningRate: number;
  /** The run's batch schedule. */
  schedule: BatchSchedule;
  /** POP-ODE tolerances. */
  rtol: number;
  atol: number;
}

/** The one result type of every predictor: its array (shape by kind) and solver statistics, if any. */
export interface PredictorResult {
  data: Float64Array;
  stats?: Record<string, number>;
}

/** A registry entry. */
export interface Predictor {
  name: string;
  label: string;
  kind: PredictorKind;
  /** Needs the kernels refreshed along the run (recordings with `refreshEvery`). */
  refreshed: boolean;
  run: (input: PredictorInput) => PredictorResult;
}

const lastStep = (tr: Trajectory) => tr.steps[tr.steps.length - 1]!;

const oneStep = (ops: OperatorSchedule, i: PredictorInput): PredictorResult => ({
  data: oneStepPredict(ops, i.problem.labels, i.actual, {
    learningRate: i.learningRate,
    schedule: i.schedule,
  }),
});

const mu = (ops: OperatorSchedule, i: PredictorInput): PredictorResult => ({
  data: popMu(ops, i.problem, {
    learningRate: i.learningRate,
    steps: lastStep(i.actual),
    schedule: i.schedule,
    record: i.actual.steps,
  }).logProbs,
});

const ode = (form: 'logit' | 'simplex', i: PredictorInput): PredictorResult => {
  const r = popOde(i.frozen, i.problem, {
    learningRate: i.learningRate,
    steps: lastStep(i.actual),
    record: i.actual.steps,
    // minibatch runs: the flow of the schedule's averaged weights (scheduleWeights)
    schedule: i.schedule,
    rtol: i.rtol,
    atol: i.atol,
    form,
  });
  return { data: r.trajectory.logProbs, stats: { ...r.stats } };
};

/** The predictors, in the order they run and are listed. */
export const PREDICTOR_TABLE = [
  {
    name: 'one-step',
    label: 'one-step',
    kind: 'increments',
    refreshed: false,
    run: (i) => oneStep(i.frozen, i),
  },
  {
    name: 'one-step-refreshed',
    label: 'one-step refreshed',
    kind: 'increments',
    refreshed: true,
    run: (i) => oneStep(i.refreshed, i),
  },
  { name: 'pop-mu', label: 'POP-MU', kind: 'trajectory', refreshed: false, run: (i) => mu(i.frozen, i) },
  {
    name: 'pop-mu-refreshed',
    label: 'refreshed',
    kind: 'trajectory',
    refreshed: true,
    run: (i) => mu(i.refreshed, i),
  },
  { name: 'pop-ode', label: 'POP-ODE', kind: 'trajectory', refreshed: false, run: (i) => ode('logit', i) },
  {
    name: 'pop-ode-simplex',
    label: 'POP-ODE simplex',
    kind: 'trajectory',
    refreshed: false,
    run: (i) => ode('simplex', i),
  },
] as const satisfies readonly Predictor[];

/** A predictor's name. */
export type PredictorName = (typeof PREDICTOR_TABLE)[number]['name'];
/** A predictor's label. */
export type PredictorLabel = (typeof PREDICTOR_TABLE)[number]['label'];

/** The predictor names, in table order. */
export const PREDICTORS: readonly PredictorName[] = PREDICTOR_TABLE.map((p) => p.name);

/** A registry entry by name. */
export type PredictorEntry = (typeof PREDICTOR_TABLE)[number];
/** The label of the predictor named N. */
export type LabelOf<N extends PredictorName> = Extract<PredictorEntry, { name: N }>['label'];

/** The registry entry of `name` (InvalidArgumentError naming `argument` for an unknown name). */
export function predictor(name: string, argument = 'predictor'): PredictorEntry {
  const entry = PREDICTOR_TABLE.find((p) => p.name === name);
  if (!entry) throw new InvalidArgumentError(argument, name, `one of ${PREDICTORS.join(', ')}`);
  return entry;
}

/** The label of a predictor (what tables, legends and results.json call it). */
export function predictorLabel<N extends PredictorName>(name: N): LabelOf<N> {
  return predictor(name).label as LabelOf<N>;
}
