/**
 * Study outputs on disk: trajectories and prediction arrays as float64 .npy files (readable with
 * numpy.load), with their step indices in a JSON sidecar. Every write is atomic.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Trajectory } from '../dynamics/index.js';
import { CorruptFileError } from '../errors.js';
import { readNpy, writeNpy } from '../io/index.js';
import { writeJsonAtomic } from '../util/atomic.js';

/**
 * Write a trajectory as `<file>.npy` (log π, float64 [T, P, V]) and `<file>.steps.json` (the
 * recorded step indices). `file` is given without extension.
 */
export async function saveTrajectory(file: string, trajectory: Trajectory): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const T = trajectory.steps.length;
  await writeNpy(`${file}.npy`, {
    dtype: 'float64',
    shape: [T, trajectory.numPoints, trajectory.numClasses],
    data: trajectory.logProbs,
  });
  await writeJsonAtomic(`${file}.steps.json`, trajectory.steps);
}

/** Read a trajectory written by {@link saveTrajectory}. */
export async function loadTrajectory(file: string): Promise<Trajectory> {
  const array = await readNpy(`${file}.npy`);
  const steps = JSON.parse(await fs.readFile(`${file}.steps.json`, 'utf8')) as number[];
  if (array.shape.length !== 3 || array.shape[0] !== steps.length || array.dtype !== 'float64') {
    throw new CorruptFileError(
      `${file}.npy`,
      `expected float64 [${steps.length}, P, V], found ${array.dtype} [${array.shape.join(', ')}]`,
    );
  }
  return {
    numPoints: array.shape[1]!,
    numClasses: array.shape[2]!,
    steps,
    logProbs: array.data as Float64Array,
  };
}

/** Write a float64 array as `<file>.npy`. */
export async function saveArray(file: string, data: Float64Array, shape: number[]): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await writeNpy(`${file}.npy`, { dtype: 'float64', shape, data });
}

/** Read a float64 array written by {@link saveArray} (any float dtype is converted). */
export async function loadArray(file: string): Promise<{ data: Float64Array; shape: number[] }> {
  const array = await readNpy(`${file}.npy`);
  const data =
    array.data instanceof Float64Array ? array.data : Float64Array.from(array.data as ArrayLike<number>);
  return { data, shape: [...array.shape] };
}
