/**
 * Chunked float32 contraction with a float64 sum over chunks, for the Jacobian path's terms (one
 * 'gram' term per chunk of parameter columns, ./jacobian.ts): K = Σ_c J_c J_cᵀ, each J_c J_cᵀ by the
 * float32 block computer of the chosen contraction (wasm SIMD or tfjs) over ≤ 2048 columns, the sum
 * in float64, rounded to float32 once at the end. The float32 error is then that of a 2048-long
 * product, whatever P (a single float32 sum over all P columns erred ∝ P). No tfjs import: worker
 * threads run it too.
 */
import type { BlockComputer, BlockInput, BlockOutput, ContractionMode, TermMeta } from './terms.js';
import { ownedBlock } from './terms.js';

/** Whether `terms` are the Jacobian path's chunk terms (./jacobian.ts). */
export function isJacobianChunks(terms: TermMeta[]): boolean {
  return terms.length > 0 && terms.every((t) => t.kind === 'gram' && t.layer === '*');
}

export class ChunkedGramComputer implements BlockComputer {
  /** One inner computer per distinct chunk width (all chunks but the last share one). */
  private readonly inner = new Map<number, BlockComputer>();

  constructor(
    private readonly terms: TermMeta[],
    private readonly V: number,
    private readonly mode: ContractionMode,
    private readonly make: (terms: TermMeta[]) => BlockComputer,
  ) {}

  /** Flops of inner computers already released. */
  private releasedFlops = 0;

  get flops(): number {
    let f = this.releasedFlops;
    for (const c of this.inner.values()) f += c.flops;
    return f;
  }

  private computer(t: TermMeta): BlockComputer {
    let c = this.inner.get(t.width);
    if (!c) {
      c = this.make([t]);
      this.inner.set(t.width, c);
    }
    return c;
  }

  compute(row: BlockInput, col: BlockInput, transpose: boolean): BlockOutput {
    const per = this.mode === 'full' ? this.V : 1;
    const rows = row.points * per;
    const cols = col.points * per;
    const acc = new Float64Array(rows * cols);
    this.terms.forEach((t, k) => {
      // Chunk keys keep the inner caches apart and a block against itself recognisable.
      const block = this.computer(t).compute(
        { key: `${row.key}#${k}`, points: row.points, terms: [row.terms[k]!] },
        { key: `${col.key}#${k}`, points: col.points, terms: [col.terms[k]!] },
        false,
      );
      try {
        const d = block.data;
        for (let e = 0; e < acc.length; e++) acc[e] = acc[e]! + d[e]!;
      } finally {
        block.done();
      }
    });
    return ownedBlock(Float32Array.from(acc), rows, cols, transpose);
  }

  release(): void {
    for (const c of this.inner.values()) {
      this.releasedFlops += c.flops;
      c.release();
    }
    this.inner.clear();
  }
}
