/**
 * float32 block contraction through tf.matMul on the tfjs backend (contraction 'tfjs'): the plain
 * products of ./terms.ts, the Gram scaling as a broadcast multiply. Kept apart from ./terms.ts so that
 * worker threads import tfjs only when a job asks for this contraction.
 */
import * as tf from '@tensorflow/tfjs';
import {
  addIdentity,
  addPairTerm,
  type BlockComputer,
  type BlockInput,
  type BlockOutput,
  type ContractionMode,
  isPairTerm,
  ownedBlock,
  type TermMeta,
} from './terms.js';

/** float32 contraction on the tfjs backend, caching uploaded (and transposed) factors. */
export class TfBlockComputer implements BlockComputer {
  flops = 0;
  private cache = new Map<string, { tensors: Array<tf.Tensor | null>; bytes: number }>();
  private cachedBytes = 0;

  constructor(
    private readonly terms: TermMeta[],
    private readonly V: number,
    private readonly mode: ContractionMode,
    /** Bytes of factors kept on the backend between blocks. */
    private readonly capacity: number,
  ) {}

  private cached(key: string, make: () => Array<tf.Tensor | null>): Array<tf.Tensor | null> {
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit.tensors;
    }
    const tensors = make();
    const bytes = tensors.reduce((s, t) => s + (t ? t.size * 4 : 0), 0);
    // Evict least recently used entries (never the one being added).
    for (const [k, v] of this.cache) {
      if (this.cachedBytes + bytes <= this.capacity) break;
      tf.dispose(v.tensors.filter((t): t is tf.Tensor => t != null));
      this.cachedBytes -= v.bytes;
      this.cache.delete(k);
    }
    this.cache.set(key, { tensors, bytes });
    this.cachedBytes += bytes;
    return tensors;
  }

  /** Row factors: per term [a (b×dIn) | null, d (b·V×w, or b×V·w for trace) | null]. */
  private rowTensors(input: BlockInput): Array<tf.Tensor | null> {
    const b = input.points;
    const V = this.V;
    return this.cached(`r:${input.key}`, () =>
      this.terms.flatMap((t, k) => {
        if (isPairTerm(t)) return [null, null];
        const f = input.terms[k]!;
        const a = t.kind !== 'gram' ? tf.tensor2d(f.a!, [b, t.dIn]) : null;
        const d =
          t.kind !== 'identity'
            ? tf.tensor2d(f.d!, this.mode === 'full' ? [b * V, t.width] : [b, V * t.width])
            : null;
        return [a, d];
      }),
    );
  }

  /** Column factors, transposed once so that every product is a plain (untransposed) matMul. */
  private colTensors(input: BlockInput): Array<tf.Tensor | null> {
    const c = input.points;
    const V = this.V;
    return this.cached(`c:${input.key}`, () =>
      this.terms.flatMap((t, k) => {
        if (isPairTerm(t)) return [null, null];
        const f = input.terms[k]!;
        const a = t.kind !== 'gram' ? tf.tidy(() => tf.transpose(tf.tensor2d(f.a!, [c, t.dIn]))) : null;
        const d =
          t.kind !== 'identity'
            ? tf.tidy(() =>
                tf.transpose(tf.tensor2d(f.d!, this.mode === 'full' ? [c * V, t.width] : [c, V * t.width])),
              )
            : null;
        return [a, d];
      }),
    );
  }

  compute(row: BlockInput, col: BlockInput, transpose: boolean): BlockOutput {
    const r = row.points;
    const c = col.points;
    const V = this.V;
    const R = this.rowTensors(row);
    const C = this.colTensors(col);
    const full = this.mode === 'full';
    let hasSum = false;
    let hasIdentity = false;
    const results = tf.tidy(() => {
      let sum: tf.Tensor | null = null;
      let gid: tf.Tensor | null = null;
      const gramOf = (t: TermMeta, k: number): tf.Tensor => {
        if (t.sw2 === 0) return tf.fill([r, c], t.sb2);
        let g = tf.matMul(R[2 * k] as tf.Tensor2D, C[2 * k] as tf.Tensor2D);
        this.flops += 2 * r * c * t.dIn;
        if (t.sw2 !== 1) g = tf.mul(g, t.sw2);
        if (t.sb2 !== 0) g = tf.add(g, t.sb2);
        return g;
      };
      this.terms.forEach((t, k) => {
        if (isPairTerm(t)) return; // added in JS below
        if (t.kind === 'identity') {
          const g = gramOf(t, k);
          gid = gid ? tf.add(gid, g) : g;
          return;
        }
        let d: tf.Tensor = tf.matMul(R[2 * k + 1] as tf.Tensor2D, C[2 * k + 1] as tf.Tensor2D);
        this.flops += 2 * r * c * V * V * t.width * (full ? 1 : 1 / V);
        if (full) d = d.reshape([r, V, c, V]);
        if (t.kind === 'factored') {
          const g = gramOf(t, k);
          d = tf.mul(d, full ? g.reshape([r, 1, c, 1]) : g);
        }
        sum = sum ? tf.add(sum, d) : d;
      });
      const kept: tf.Tensor[] = [];
      if (sum) {
        hasSum = true;
        kept.push(full ? sum : tf.mul(sum, 1 / V));
      }
      if (gid) {
        hasIdentity = true;
        kept.push(gid);
      }
      return kept;
    });
    const rows = full ? r * V : r;
    const cols = full ? c * V : c;
    const acc = hasSum ? results[0]!.reshape([rows, cols]) : tf.zeros([rows, cols]);
    if (hasSum) results[0]!.dispose();
    const identityG = hasIdentity ? results[hasSum ? 1 : 0]! : null;
    const addG = (target: Float32Array) => {
      if (identityG) {
        const g = identityG.dataSync() as Float32Array;
        if (full) addIdentity(target, g, r, c, V);
        else for (let e = 0; e < r * c; e++) target[e] = target[e]! + g[e]!;
      }
      // Pair terms (sparse embedding gradients, max-pooled convolutions) in plain JS.
      this.terms.forEach((t, k) => {
        if (!isPairTerm(t)) return;
        const half = row.key === col.key && 'mirror';
        addPairTerm(target, cols, t, V, full, row.terms[k]!, col.terms[k]!, r, c, half);
      });
    };
    const view = heapView(acc);
    if (view) {
      // wasm: read (and complete) the block in place, transpose it on the backend.
      addG(view);
      const transposed = transpose ? tf.transpose(acc) : null;
      const data = heapView(acc)!;
      const tView = transposed ? heapView(transposed)! : null;
      return {
        data,
        transposed: tView,
        owned: false,
        done: () => tf.dispose([acc, transposed, identityG].filter((t): t is tf.Tensor => t != null)),
      };
    }
    const data = acc.dataSync() as Float32Array;
    addG(data);
    tf.dispose([acc, identityG].filter((t): t is tf.Tensor => t != null));
    return ownedBlock(data, rows, cols, transpose);
  }

  release(): void {
    for (const v of this.cache.values()) tf.dispose(v.tensors.filter((t): t is tf.Tensor => t != null));
    this.cache.clear();
    this.cachedBytes = 0;
  }
}

/**
 * A zero-copy view of a tensor's values in backend memory (wasm), or null on backends without one.
 * Valid until the tensor is disposed or the backend allocates (wasm memory may grow and move).
 */
export function heapView(t: tf.Tensor): Float32Array | null {
  const backend = tf.backend() as unknown as { typedArrayFromHeap?: (info: tf.TensorInfo) => Float32Array };
  if (typeof backend.typedArrayFromHeap !== 'function' || t.dtype !== 'float32') return null;
  return backend.typedArrayFromHeap({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });
}
