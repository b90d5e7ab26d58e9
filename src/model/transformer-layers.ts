/**
 * Parameter-free layers of entk's transformer (src/model/transformer.ts), registered with
 * `tf.serialization.registerClass` so that its model.json loads with `tf.loadLayersModel` /
 * `loadModel` like every entk model. They hold no weights, so the eNTK engine's structured path
 * runs them as plain graph nodes (autodiff carries the cotangents through them) while the
 * parameterised layers around them — Dense over positions, LayerNormalization, Embedding — have
 * their own rules (src/kernel/structured.ts).
 *
 * - `TokenInputs` splits the one model input [n, 2L] (token ids, then the attention mask) into
 *   ids, mask, position ids 0..L−1 or token-type ids (all 0), each [n, L] float32.
 * - `AttentionCore` is multi-head scaled dot-product attention without projections:
 *   inputs [q, k, v, mask], q/k/v [n, L, width], mask [n, L] (1 token, 0 padding); per head h
 *   (head size d = width / heads, columns h·d..(h+1)·d−1 as BERT splits them)
 *       P = softmax(Q_h K_hᵀ / √d + b),  b_j = 0 for a token key, −1e9 for a padding key,
 *       O_h = P V_h,  output = concat_h O_h  [n, L, width].
 *   A padding key gets weight exp(−1e9 − max) = 0 exactly, so padding changes neither the outputs
 *   at token positions nor (softmax's gradient p ⊙ (g − ⟨p, g⟩) is 0 there) any cotangent.
 * - `SequencePooling` maps [h [n, L, width], mask [n, L]] to [n, width]: the first position
 *   ('cls') or the masked mean Σ_t m_t h_t / max(Σ_t m_t, 1) ('mean').
 */
import * as tf from '@tensorflow/tfjs';
import { assertArgument, InvalidArgumentError } from '../errors.js';

/** The additive score of a padding key (BERT uses the most negative float; any value ≤ −1e4 gives weight 0). */
export const ATTENTION_MASK_BIAS = -1e9;

/** Parts of the transformer input that {@link TokenInputs} extracts. */
export const TOKEN_INPUT_PARTS = ['ids', 'mask', 'positions', 'types'] as const;
export type TokenInputPart = (typeof TOKEN_INPUT_PARTS)[number];

/** Arguments of {@link TokenInputs}. */
export interface TokenInputsArgs {
  /** 'ids' (columns 0..L−1), 'mask' (columns L..2L−1), 'positions' (0..L−1), 'types' (zeros). */
  part: TokenInputPart;
  /** Sequence length L (the input has 2L columns). */
  length: number;
  name?: string;
  inputShape?: tf.Shape;
  batchInputShape?: tf.Shape;
}

function single(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
  return Array.isArray(inputs) ? inputs[0]! : inputs;
}

function firstShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
  return (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
}

/** [n, 2L] (ids, then mask) → one part [n, L] (float32). Parameter-free. */
export class TokenInputs extends tf.layers.Layer {
  static className = 'TokenInputs';
  readonly part: TokenInputPart;
  readonly length: number;

  constructor(args: TokenInputsArgs) {
    super(args);
    assertArgument(
      (TOKEN_INPUT_PARTS as readonly string[]).includes(args.part),
      'TokenInputs.part',
      args.part,
      `one of ${TOKEN_INPUT_PARTS.join(', ')}`,
    );
    assertArgument(
      Number.isInteger(args.length) && args.length > 0,
      'TokenInputs.length',
      args.length,
      'a positive integer',
    );
    this.part = args.part;
    this.length = args.length;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const shape = firstShape(inputShape);
    if (shape.length !== 2 || (shape[1] != null && shape[1] !== 2 * this.length)) {
      throw new InvalidArgumentError(
        `${this.name} input shape`,
        shape,
        `[batch, ${2 * this.length}] (token ids, then the attention mask)`,
      );
    }
    return [shape[0]!, this.length];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = tf.cast(single(inputs), 'float32');
      const n = x.shape[0]!;
      const L = this.length;
      switch (this.part) {
        case 'ids':
          return x.slice([0, 0], [n, L]);
        case 'mask':
          return x.slice([0, L], [n, L]);
        case 'positions':
          return tf.add(tf.zeros([n, L]), tf.range(0, L, 1, 'float32'));
        default:
          return tf.zeros([n, L]);
      }
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), part: this.part, length: this.length };
  }
}

/** Arguments of {@link AttentionCore}. */
export interface AttentionCoreArgs {
  /** Number of heads (divides the width). */
  heads: number;
  name?: string;
}

/** Multi-head scaled dot-product attention over [q, k, v, mask] (see the module comment). Parameter-free. */
export class AttentionCore extends tf.layers.Layer {
  static className = 'AttentionCore';
  readonly heads: number;

  constructor(args: AttentionCoreArgs) {
    super(args);
    assertArgument(
      Number.isInteger(args.heads) && args.heads > 0,
      'AttentionCore.heads',
      args.heads,
      'a positive integer',
    );
    this.heads = args.heads;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const shapes = inputShape as tf.Shape[];
    if (!Array.isArray(shapes[0]) || shapes.length !== 4) {
      throw new InvalidArgumentError(`${this.name} inputs`, inputShape, '[query, key, value, mask]');
    }
    const q = shapes[0];
    const width = q[2];
    if (q.length !== 3 || width == null || width % this.heads !== 0) {
      throw new InvalidArgumentError(
        `${this.name} query shape`,
        q,
        `[batch, length, width] with width divisible by ${this.heads} heads`,
      );
    }
    return q;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const [q, k, v, mask] = inputs as tf.Tensor[];
      return attentionCore(q!, k!, v!, mask!, this.heads);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), heads: this.heads };
  }
}

/** [n, L, width] → [n, heads, L, d]: head h owns columns h·d..(h+1)·d−1. */
function splitHeads(t: tf.Tensor, heads: number): tf.Tensor4D {
  const [n, L, width] = t.shape as [number, number, number];
  return t.reshape([n, L, heads, width / heads]).transpose([0, 2, 1, 3]) as tf.Tensor4D;
}

/**
 * The attention weights P = softmax(Q_h K_hᵀ / √d + b) of every head: q, k [n, L, width], mask
 * [n, L] → [n, heads, L (query), L (key)].
 */
export function attentionProbabilities(
  q: tf.Tensor,
  k: tf.Tensor,
  mask: tf.Tensor,
  heads: number,
): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, L, width] = q.shape as [number, number, number];
    const d = width / heads;
    const scores = tf.mul(
      tf.matMul(splitHeads(q, heads), splitHeads(k, heads), false, true),
      1 / Math.sqrt(d),
    );
    const bias = tf.mul(tf.sub(tf.cast(mask, 'float32'), 1), -ATTENTION_MASK_BIAS).reshape([n, 1, 1, L]);
    return tf.softmax(tf.add(scores, bias)) as tf.Tensor4D;
  });
}

/** The attention core as a function: q, k, v [n, L, width], mask [n, L] → [n, L, width]. */
export function attentionCore(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  mask: tf.Tensor,
  heads: number,
): tf.Tensor {
  return tf.tidy(() => {
    const [n, L, width] = q.shape as [number, number, number];
    return tf
      .matMul(attentionProbabilities(q, k, mask, heads), splitHeads(v, heads))
      .transpose([0, 2, 1, 3])
      .reshape([n, L, width]);
  });
}

/** Pooling modes of {@link SequencePooling}. */
export const SEQUENCE_POOLINGS = ['cls', 'mean'] as const;
export type SequencePoolingMode = (typeof SEQUENCE_POOLINGS)[number];

/** Arguments of {@link SequencePooling}. */
export interface SequencePoolingArgs {
  mode: SequencePoolingMode;
  name?: string;
}

/** [h [n, L, width], mask [n, L]] → [n, width]: first position or masked mean. Parameter-free. */
export class SequencePooling extends tf.layers.Layer {
  static className = 'SequencePooling';
  readonly mode: SequencePoolingMode;

  constructor(args: SequencePoolingArgs) {
    super(args);
    assertArgument(
      (SEQUENCE_POOLINGS as readonly string[]).includes(args.mode),
      'SequencePooling.mode',
      args.mode,
      `one of ${SEQUENCE_POOLINGS.join(', ')}`,
    );
    this.mode = args.mode;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const h = firstShape(inputShape);
    return [h[0]!, h[h.length - 1]!];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const [h, mask] = (Array.isArray(inputs) ? inputs : [inputs]) as tf.Tensor[];
      const [n, L, width] = h!.shape as [number, number, number];
      if (this.mode === 'cls') return h!.slice([0, 0, 0], [n, 1, width]).reshape([n, width]);
      if (!mask) throw new InvalidArgumentError(`${this.name} inputs`, 1, '[states, mask] for mean pooling');
      const m = tf.cast(mask, 'float32');
      const sum = tf.sum(tf.mul(h!, m.reshape([n, L, 1])), 1);
      return tf.div(sum, tf.maximum(tf.sum(m, 1, true), 1));
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), mode: this.mode };
  }
}

tf.serialization.registerClass(TokenInputs);
tf.serialization.registerClass(AttentionCore);
tf.serialization.registerClass(SequencePooling);
