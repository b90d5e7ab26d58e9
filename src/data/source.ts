/**
 * Which file a data spec reads, so that a run (split.json) and an experiment's stage keys can
 * record the content of the data (its sha256, src/train/run.ts) and notice when it changed under
 * the same name (an edited CSV, a replaced shipped file).
 */
import { join } from 'node:path';
import { BUILTIN_DATASET_INFO, builtinName, DATA_DIR } from './builtin.js';
import { dataFileFormat } from './files.js';
import { isSyntheticSpec, resolveDataPath } from './load.js';

/**
 * The file `spec` loads: the shipped file of a built-in dataset, or the resolved data file (see
 * resolveDataPath). Null for synthetic data (generated from the spec alone) and for a file that
 * does not exist (loading it reports the error).
 */
export async function dataSourceFile(spec: string): Promise<string | null> {
  const builtin = builtinName(spec);
  if (builtin) return join(DATA_DIR, BUILTIN_DATASET_INFO[builtin].file);
  if (isSyntheticSpec(spec) || dataFileFormat(spec) === null) return null;
  return resolveDataPath(spec);
}
