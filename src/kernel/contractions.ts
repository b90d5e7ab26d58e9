/**
 * The contraction table (like the implementation table of ./index.ts): which block computer
 * contracts the factors for each resolved contraction, and how an option resolves to one. No tfjs
 * import: worker threads use this table too, and the 'tfjs' entry is provided by a thread once it
 * has loaded tfjs (the main thread in ./engine.ts, a worker when a job asks for it, ./worker.ts).
 */

import { UnsupportedError } from '../errors.js';
import { ChunkedGramComputer, isJacobianChunks } from './chunked.js';
import { type BlockComputer, type ContractionMode, JsBlockComputer, type TermMeta } from './terms.js';
import type { NtkAccumulation, NtkContraction, ResolvedNtkContraction } from './types.js';
import { WasmBlockComputer, wasmContractionAvailable } from './wasm-terms.js';

/** A block computer class: (terms, V, mode, capacity in bytes of cached factors). */
export type ComputerClass = new (
  terms: TermMeta[],
  V: number,
  mode: ContractionMode,
  capacity: number,
) => BlockComputer;

/** The table: float64 in plain JS, entk's WebAssembly SIMD kernels, tf.matMul (once provided). */
const CONTRACTIONS: Record<ResolvedNtkContraction, ComputerClass | null> = {
  js: JsBlockComputer,
  wasm: WasmBlockComputer,
  tfjs: null,
};

/** Provide the tfjs contraction's computer (./tf-terms.ts) in a thread that has loaded tfjs. */
export function provideTfContraction(computer: ComputerClass): void {
  CONTRACTIONS.tfjs = computer;
}

/**
 * The contraction a computation uses: float64 in JS, float32 per the option (see NTK_CONTRACTIONS);
 * 'auto' prefers entk's wasm kernels except on the native tfjs-node backend (`backendName`).
 */
export function resolveContraction(
  accumulation: NtkAccumulation,
  contraction: NtkContraction,
  backendName: string,
): ResolvedNtkContraction {
  if (accumulation === 'float64') return 'js';
  if (contraction === 'tfjs') return 'tfjs';
  const available = wasmContractionAvailable();
  if (contraction === 'wasm') {
    if (!available) {
      throw new UnsupportedError("contraction 'wasm' needs WebAssembly SIMD, which this runtime lacks");
    }
    return 'wasm';
  }
  return available && backendName !== 'tensorflow' ? 'wasm' : 'tfjs';
}

/** A block computer for a resolved contraction; `capacity`: bytes of factors it may cache. */
export function makeBlockComputer(
  contraction: ResolvedNtkContraction,
  terms: TermMeta[],
  V: number,
  mode: ContractionMode,
  capacity: number,
): BlockComputer {
  // The Jacobian path's chunk terms: float32 products per chunk, summed in float64 (./chunked.ts).
  if (contraction !== 'js' && isJacobianChunks(terms) && terms.length > 1) {
    return new ChunkedGramComputer(terms, V, mode, (chunk) =>
      makeBlockComputer(contraction, chunk, V, mode, capacity),
    );
  }
  const computer = CONTRACTIONS[contraction];
  if (!computer) throw new Error(`the '${contraction}' contraction was not loaded in this thread`);
  return new computer(terms, V, mode, capacity);
}
