/**
 * tfjs optimisers built from an {@link OptimizerConfig}, and exact save/restore of their state.
 *
 * State = the optimiser's own `getWeights()` (iteration count first, then its slot variables in
 * the order of the model's trainable weights: momentum accumulators; Adam's first then second
 * moments) plus, for Adam, the running powers β1^t, β2^t (tfjs recomputes them with `pow` on
 * `setWeights`, which can differ in the last float32 bit from the running products; saving them
 * makes a resumed run bitwise identical to an uninterrupted one).
 *
 * Files: `optimizer.json` ({ className, config, iterations, extra, weightsManifest }) and
 * `optimizer.bin` (slot variables, float32, manifest order). Gradients must always be applied as
 * an array in the order of `model.trainableWeights` (slot variables are matched by position).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { CorruptFileError } from '../errors.js';
import { numElements } from '../io/index.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/index.js';
import { OPTIMIZER_DEFAULTS, type OptimizerConfig } from './config.js';

export const OPTIMIZER_JSON = 'optimizer.json';
export const OPTIMIZER_BIN = 'optimizer.bin';

/** Contents of `optimizer.json`. */
export interface OptimizerStateFile {
  /** tfjs class name: 'SGD' | 'Momentum' | 'Adam'. */
  className: string;
  /** The entk optimiser settings. */
  config: OptimizerConfig;
  /** Number of updates applied so far (= the checkpoint's step). */
  iterations: number;
  /** Extra exact state (Adam: accBeta1 = β1^(t+1), accBeta2 = β2^(t+1) as float32 values). */
  extra: Record<string, number>;
  /** Slot variables, in order, stored in optimizer.bin. */
  weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
}

/** A fresh tfjs optimiser for `config` (settings missing from it take OPTIMIZER_DEFAULTS). */
export function createOptimizer(config: OptimizerConfig): tf.Optimizer {
  const d = OPTIMIZER_DEFAULTS;
  switch (config.name) {
    case 'sgd':
      return tf.train.sgd(config.learningRate);
    case 'momentum':
      return tf.train.momentum(config.learningRate, config.momentum ?? d.momentum, false);
    case 'adam':
      return tf.train.adam(
        config.learningRate,
        config.beta1 ?? d.beta1,
        config.beta2 ?? d.beta2,
        config.epsilon ?? d.epsilon,
      );
  }
}

interface AdamInternals {
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
}

/**
 * Dispose an optimiser completely (tfjs's MomentumOptimizer.dispose forgets the learning-rate
 * scalar it inherits from SGDOptimizer).
 */
export function disposeOptimizer(optimizer: tf.Optimizer): void {
  optimizer.dispose();
  const c = (optimizer as unknown as { c?: tf.Tensor }).c;
  if (c && !c.isDisposed) c.dispose();
}

/**
 * Write the optimiser's state into `dir` (optimizer.json + optimizer.bin), each file atomically.
 * `weightNames` (the model's trainable weights' original names, e.g. 'dense_1/kernel') give the
 * slot variables canonical names ('dense_1/kernel/momentum'); tfjs's own names carry per-process
 * de-duplication suffixes ('dense_1/kernel_1/momentum').
 */
export async function saveOptimizerState(
  optimizer: tf.Optimizer,
  config: OptimizerConfig,
  dir: string,
  weightNames?: string[],
): Promise<void> {
  const named = await optimizer.getWeights();
  const [iter, ...slots] = named;
  const iterations = iter ? (await iter.tensor.data())[0]! : 0;
  // getWeights returns a fresh 'iter' scalar (ours to dispose); slot tensors are the live variables.
  if (iter) iter.tensor.dispose();
  const renamed = slots.map((s, i) => {
    const suffix = s.name.slice(s.name.lastIndexOf('/') + 1);
    const base =
      weightNames && weightNames.length > 0 ? `${weightNames[i % weightNames.length]}/${suffix}` : s.name;
    return { name: `slot_${i}/${base}`, tensor: s.tensor };
  });
  const { data, specs } = await tf.io.encodeWeights(renamed);
  const extra: Record<string, number> = {};
  if (config.name === 'adam') {
    const internals = optimizer as unknown as AdamInternals;
    extra.accBeta1 = (await internals.accBeta1.data())[0]!;
    extra.accBeta2 = (await internals.accBeta2.data())[0]!;
  }
  const file: OptimizerStateFile = {
    className: optimizer.getClassName(),
    config,
    iterations,
    extra,
    weightsManifest: [{ paths: [OPTIMIZER_BIN], weights: specs }],
  };
  await writeFileAtomic(path.join(dir, OPTIMIZER_BIN), new Uint8Array(tf.io.CompositeArrayBuffer.join(data)));
  await writeJsonAtomic(path.join(dir, OPTIMIZER_JSON), file);
}

/** Read `optimizer.json` from a checkpoint directory. */
export async function readOptimizerStateFile(dir: string): Promise<OptimizerStateFile> {
  const file = path.join(dir, OPTIMIZER_JSON);
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as OptimizerStateFile;
  } catch (error) {
    throw new CorruptFileError(
      file,
      `cannot read optimizer state (${(error as Error).message.split('\n')[0]})`,
    );
  }
}

/**
 * A tfjs optimiser for `config` with the state saved in `dir` restored exactly. Throws
 * CorruptFileError if the saved state is of another optimiser or truncated.
 */
export async function loadOptimizer(config: OptimizerConfig, dir: string): Promise<tf.Optimizer> {
  const state = await readOptimizerStateFile(dir);
  const jsonFile = path.join(dir, OPTIMIZER_JSON);
  const className = createOptimizer(config);
  const expectedClass = className.getClassName();
  disposeOptimizer(className);
  if (state.className !== expectedClass) {
    throw new CorruptFileError(jsonFile, `holds a ${state.className} state, the run uses ${expectedClass}`);
  }
  const specs = state.weightsManifest?.[0]?.weights ?? [];
  const binFile = path.join(dir, OPTIMIZER_BIN);
  const bytes = await fs.readFile(binFile).catch(() => {
    throw new CorruptFileError(binFile, 'missing');
  });
  const expected = specs.reduce((s, w) => s + 4 * numElements(w.shape), 0);
  if (bytes.byteLength !== expected) {
    throw new CorruptFileError(binFile, `${bytes.byteLength} bytes, optimizer.json describes ${expected}`);
  }
  const optimizer = createOptimizer(config);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const map = tf.io.decodeWeights(buffer, specs);
  const values: { name: string; tensor: tf.Tensor }[] = [
    { name: 'iter', tensor: tf.scalar(state.iterations, 'int32') },
    ...specs.map((s) => ({ name: s.name.replace(/^slot_\d+\//, ''), tensor: map[s.name]! })),
  ];
  await optimizer.setWeights(values);
  tf.dispose(values.map((v) => v.tensor));
  if (config.name === 'adam') {
    const internals = optimizer as unknown as AdamInternals;
    const b1 = tf.scalar(state.extra.accBeta1!);
    const b2 = tf.scalar(state.extra.accBeta2!);
    internals.accBeta1.assign(b1);
    internals.accBeta2.assign(b2);
    tf.dispose([b1, b2]);
  }
  return optimizer;
}
