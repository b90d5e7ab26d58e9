/** What a study hands the runner: its stage keys, its summary rows and how to draw its section. */

import type { Trajectory } from '../dynamics/index.js';
import type { ReportSection } from '../report/index.js';
import type { StudyName } from './config.js';

/** One row of the summary table: a measured number next to what theory says. */
export interface SummaryRow {
  /** Key in results.json (unique in the table). */
  key: string;
  /** Row label. */
  label: string;
  /** The measured value (null when not measurable). */
  measured: number | null;
  /** The theoretical / ideal value (null when there is none). */
  theory: number | null;
}

/** A study after its stages ran. */
export interface StudyRun {
  name: StudyName;
  /** Keys of the stages whose outputs the section reads (inputs of the report stage). */
  keys: string[];
  /** Rows of the summary table. */
  summary: SummaryRow[];
  /** Draw the report section from the stored outputs. */
  section: () => Promise<ReportSection>;
}

/** Rows [T, V] of one tracked point `p` of a trajectory, as probabilities. */
export function pointProbabilities(tr: Trajectory, p: number): Float64Array {
  const { numPoints: P, numClasses: V } = tr;
  const T = tr.steps.length;
  const out = new Float64Array(T * V);
  for (let t = 0; t < T; t++)
    for (let i = 0; i < V; i++) out[t * V + i] = Math.exp(tr.logProbs[(t * P + p) * V + i]!);
  return out;
}
