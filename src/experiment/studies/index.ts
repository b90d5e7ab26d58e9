/**
 * The study registry, in report order. A new study is a module next to this file exporting
 * `defineStudy({ name, title, schema, usesBase, resolve, run })` (see ../study.ts) and one line
 * here; the configuration schema and its resolution (../config.ts), the runner (../runner.ts) and
 * the report's summary all loop over this list.
 */
import { analysisStudy } from './analysis.js';
import { checkpointsStudy } from './checkpoints.js';
import { discretisationStudy } from './discretisation.js';
import { lazinessStudy } from './laziness.js';
import { negativeGradientsStudy } from './negative-gradients.js';
import { replicatorStudy } from './replicator.js';

export const STUDIES = [
  checkpointsStudy,
  lazinessStudy,
  discretisationStudy,
  negativeGradientsStudy,
  replicatorStudy,
  analysisStudy,
] as const;

/** A registered study. */
export type RegisteredStudy = (typeof STUDIES)[number];
/** The study names (keys under `studies:`), in report order. */
export type StudyName = RegisteredStudy['name'];
/** The resolved configuration of the study named N. */
export type StudyConfigOf<N extends StudyName> = ReturnType<Extract<RegisteredStudy, { name: N }>['resolve']>;

/** The study names, in report order. */
export const STUDY_NAMES: readonly StudyName[] = STUDIES.map((s) => s.name);

export type { AnalysisStudyConfig } from './analysis.js';
export type { CheckpointsStudyConfig } from './checkpoints.js';
export type { DiscretisationStudyConfig } from './discretisation.js';
export type { LazinessStudyConfig } from './laziness.js';
export type { NegativeGradientsStudyConfig } from './negative-gradients.js';
export { type Squeeze, squeeze } from './negative-gradients.js';
export type { ReplicatorStudyConfig } from './replicator.js';
