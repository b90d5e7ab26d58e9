/**
 * The one bridge from a kernel store to the dynamics: the blocks K(u, u′) and K(o, u) of a full
 * kernel store over finetune points u and observation points o, and the fitness operator built
 * from them. Used for the kernels a finetune recording stores (./record.ts) and for the kernel
 * stores of a run's checkpoints (src/kernel-store) alike.
 */
import { FitnessOperator, type KernelBlocks, type OperatorOptions } from '../dynamics/index.js';
import { type KernelStore, kernelBlock, pointIndices } from '../kernel-store/index.js';

/**
 * The blocks of a full kernel store the dynamics consume: `train` = K(u, u′) over `trainIds`
 * [N·V, N·V] and `observe` = K(o, u) from `observeIds` to `trainIds` [M·V, N·V] (absent when M = 0),
 * float64, point-major (src/kernel-store `kernelBlock`).
 */
export function storeBlocks(
  store: KernelStore,
  trainIds: readonly string[],
  observeIds: readonly string[],
): KernelBlocks {
  const t = pointIndices(store.manifest, trainIds);
  const o = pointIndices(store.manifest, observeIds);
  return {
    numClasses: store.manifest.model.numOutputs,
    train: kernelBlock(store, t, t),
    ...(o.length > 0 ? { observe: kernelBlock(store, o, t) } : {}),
  };
}

/**
 * The fitness operator of finetune points `trainIds` and observation points `observeIds` from a
 * full kernel store (see {@link storeBlocks}). The caller disposes it.
 */
export function operatorFromStore(
  store: KernelStore,
  trainIds: readonly string[],
  observeIds: readonly string[],
  options: OperatorOptions = {},
): FitnessOperator {
  return new FitnessOperator(storeBlocks(store, trainIds, observeIds), options);
}
