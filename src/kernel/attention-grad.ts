/**
 * Input gradients of the transformer's attention core (src/model/transformer-layers.ts
 * AttentionCore: per head h, P = softmax(Q_h K_hᵀ/√d + b), O_h = P V_h) on the structured path's
 * replicated batch, where row r = n·V + i holds point n: every row's q, k, v and P are point n's,
 * so they are computed once per point and only the cotangents dO differ. Per row and head
 * (reverse mode of the two products and the softmax):
 *
 *   dV = Pᵀ dO,   dP = dO Vᵀ,   dS_ts = P_ts (dP_ts − Σ_u P_tu dP_tu),   dQ = dS K/√d,   dK = dSᵀ Q/√d.
 *
 * Exact zero skipping: a query t whose cotangent row dO_t is zero contributes nothing (dP_t = 0),
 * nor does a key s with P_ts = 0 (a padding key, weight exp(−1e9 − max) = 0). So only the
 * nonzero cotangent rows (the real tokens of a padded text; position 0 alone in the last block of
 * a CLS-pooled model) and their nonzero weights are visited, instead of tfjs recomputing the
 * forward pass on all V copies and back-propagating through all L × L scores with batched products
 * (a scalar loop on tfjs-wasm). Sums run in float64, stored as float32.
 */

/** Shapes: n points, V logits, L positions, width = heads · d. */
export interface AttentionDims {
  n: number;
  V: number;
  L: number;
  width: number;
  heads: number;
}

/**
 * dq, dk, dv [n·V, L, width] (overwritten) from the points' q, k, v [n, L, width], weights p
 * [n, heads, L, L] and the replicated cotangents dy [n·V, L, width].
 */
export function attentionBackward(
  dims: AttentionDims,
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  p: ArrayLike<number>,
  dy: ArrayLike<number>,
  dq: Float32Array,
  dk: Float32Array,
  dv: Float32Array,
): void {
  const { n, V, L, width: W, heads } = dims;
  const d = W / heads;
  const scale = 1 / Math.sqrt(d);
  const size = n * V * L * W;
  dq.fill(0, 0, size);
  dk.fill(0, 0, size);
  dv.fill(0, 0, size);
  const dp = new Float64Array(L);
  const accQ = new Float64Array(d);
  const accK = new Float64Array(L * d);
  const accV = new Float64Array(L * d);
  const touched = new Uint8Array(L);
  for (let r = 0; r < n * V; r++) {
    const pt = Math.floor(r / V);
    for (let h = 0; h < heads; h++) {
      const col = h * d;
      accK.fill(0);
      accV.fill(0);
      touched.fill(0);
      let any = false;
      for (let t = 0; t < L; t++) {
        const go = (r * L + t) * W + col;
        let active = false;
        for (let e = 0; e < d; e++) {
          if (dy[go + e] !== 0) {
            active = true;
            break;
          }
        }
        if (!active) continue;
        any = true;
        const prow = ((pt * heads + h) * L + t) * L;
        // dP_ts = ⟨dO_t, V_s⟩ over keys with P_ts ≠ 0; Σ_u P_tu dP_tu.
        let sum = 0;
        for (let s = 0; s < L; s++) {
          const w = p[prow + s]!;
          if (w === 0) continue;
          const vs = (pt * L + s) * W + col;
          let x = 0;
          for (let e = 0; e < d; e++) x += dy[go + e]! * v[vs + e]!;
          dp[s] = x;
          sum += w * x;
        }
        accQ.fill(0);
        const qt = (pt * L + t) * W + col;
        for (let s = 0; s < L; s++) {
          const w = p[prow + s]!;
          if (w === 0) continue;
          const ds = w * (dp[s]! - sum) * scale;
          const ks = (pt * L + s) * W + col;
          const o = s * d;
          for (let e = 0; e < d; e++) {
            accQ[e] = accQ[e]! + ds * k[ks + e]!;
            accK[o + e] = accK[o + e]! + ds * q[qt + e]!;
            accV[o + e] = accV[o + e]! + w * dy[go + e]!;
          }
          touched[s] = 1;
        }
        const gq = (r * L + t) * W + col;
        for (let e = 0; e < d; e++) dq[gq + e] = accQ[e]!;
      }
      if (!any) continue;
      for (let s = 0; s < L; s++) {
        if (!touched[s]) continue;
        const g = (r * L + s) * W + col;
        for (let e = 0; e < d; e++) {
          dk[g + e] = accK[s * d + e]!;
          dv[g + e] = accV[s * d + e]!;
        }
      }
    }
  }
}
