/**
 * Custom tfjs layers used by entk's model presets, each registered with
 * `tf.serialization.registerClass` so that models containing them save and load in the standard
 * TensorFlow.js layers format (`model.json` + weights) through `tf.loadLayersModel`.
 *
 * Layer contract relied upon by the eNTK engine (src/kernel):
 * - `ScaledDense` is a parameterised layer with NO activation inside:
 *   `h = weightScale · (a @ kernel) + biasScale · bias`, kernel of shape [fanIn, units], bias [units].
 *   Under the NTK parameterisation weightScale = 1/sqrt(fanIn) and the weights are N(0, 1).
 * - `Scale` multiplies its input by a constant `factor` (the output scale of a model).
 * - `ElementwiseActivation` applies an element-wise function tfjs's `Activation` layer lacks
 *   ('erf'), or 'gelu' (exact, x·Φ(x)) for callers that want it outside tfjs's Activation.
 * All three are parameter-free apart from ScaledDense's kernel and bias.
 */
import * as tf from '@tensorflow/tfjs';
import { assertArgument, InvalidArgumentError } from '../errors.js';

/** Arguments of {@link ScaledDense}. */
export interface ScaledDenseArgs {
  /** Number of output units (> 0). */
  units: number;
  /**
   * Multiplier of `a @ kernel`. Default: 1/sqrt(fanIn), fixed when the layer is built (the NTK
   * parameterisation). Always written explicitly into the saved config.
   */
  weightScale?: number;
  /** Multiplier of the bias. Default 1. */
  biasScale?: number;
  /** Whether the layer has a bias. Default true. */
  useBias?: boolean;
  /** Standard tfjs layer arguments. */
  name?: string;
  inputShape?: tf.Shape;
  batchInputShape?: tf.Shape;
  trainable?: boolean;
}

/**
 * Dense layer with explicit forward-pass scales: `h = weightScale · (a @ kernel) + biasScale · bias`.
 *
 * Input `a` of shape [n, fanIn] (or [..., fanIn], applied to the last axis); output [n, units].
 * Weights are created as zeros and are meant to be set by `buildModel` (seeded) or by loading.
 */
export class ScaledDense extends tf.layers.Layer {
  static className = 'ScaledDense';
  /** Number of output units. */
  readonly units: number;
  /** Bias multiplier. */
  readonly biasScale: number;
  /** Whether a bias is present. */
  readonly useBias: boolean;
  private weightScaleValue: number | undefined;
  private kernel: tf.LayerVariable | null = null;
  private bias: tf.LayerVariable | null = null;

  constructor(args: ScaledDenseArgs) {
    super(args);
    assertArgument(
      Number.isInteger(args.units) && args.units > 0,
      'ScaledDense.units',
      args.units,
      'a positive integer',
    );
    if (args.weightScale !== undefined) {
      assertArgument(
        Number.isFinite(args.weightScale),
        'ScaledDense.weightScale',
        args.weightScale,
        'a finite number',
      );
    }
    const biasScale = args.biasScale ?? 1;
    assertArgument(Number.isFinite(biasScale), 'ScaledDense.biasScale', biasScale, 'a finite number');
    this.units = args.units;
    this.weightScaleValue = args.weightScale;
    this.biasScale = biasScale;
    this.useBias = args.useBias ?? true;
    this.supportsMasking = true;
  }

  /** Multiplier of `a @ kernel` (1/sqrt(fanIn) unless given explicitly). Known once built. */
  get weightScale(): number {
    if (this.weightScaleValue === undefined) {
      throw new InvalidArgumentError('ScaledDense.weightScale', undefined, 'the layer to be built first');
    }
    return this.weightScaleValue;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const fanIn = shape[shape.length - 1];
    if (fanIn == null) {
      throw new InvalidArgumentError('ScaledDense input shape', shape, 'a known last dimension');
    }
    if (this.weightScaleValue === undefined) this.weightScaleValue = 1 / Math.sqrt(fanIn);
    this.kernel = this.addWeight('kernel', [fanIn, this.units], 'float32', tf.initializers.zeros());
    if (this.useBias) this.bias = this.addWeight('bias', [this.units], 'float32', tf.initializers.zeros());
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    return [...shape.slice(0, -1), this.units];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const a = Array.isArray(inputs) ? inputs[0]! : inputs;
      const fanIn = a.shape[a.shape.length - 1]!;
      const flat = a.rank === 2 ? (a as tf.Tensor2D) : a.reshape([-1, fanIn]);
      let h: tf.Tensor = tf.matMul(flat as tf.Tensor2D, this.kernel!.read() as tf.Tensor2D);
      if (this.weightScale !== 1) h = tf.mul(h, this.weightScale);
      if (this.bias) {
        const b = this.biasScale === 1 ? this.bias.read() : tf.mul(this.bias.read(), this.biasScale);
        h = tf.add(h, b);
      }
      return a.rank === 2 ? h : h.reshape([...a.shape.slice(0, -1), this.units]);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      units: this.units,
      weightScale: this.weightScale,
      biasScale: this.biasScale,
      useBias: this.useBias,
    };
  }
}

/** Arguments of {@link Scale}. */
export interface ScaleArgs {
  /** Constant multiplier (finite). */
  factor: number;
  name?: string;
  inputShape?: tf.Shape;
  batchInputShape?: tf.Shape;
}

/** Parameter-free layer `y = factor · x` (any shape). Used as a model's output scale. */
export class Scale extends tf.layers.Layer {
  static className = 'Scale';
  /** The constant multiplier. */
  readonly factor: number;

  constructor(args: ScaleArgs) {
    super(args);
    assertArgument(Number.isFinite(args.factor), 'Scale.factor', args.factor, 'a finite number');
    this.factor = args.factor;
    this.supportsMasking = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => tf.mul(Array.isArray(inputs) ? inputs[0]! : inputs, this.factor));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), factor: this.factor };
  }
}

/** Element-wise functions provided by {@link ElementwiseActivation}. */
export const ELEMENTWISE_FUNCTIONS = ['erf', 'gelu'] as const;
export type ElementwiseFunction = (typeof ELEMENTWISE_FUNCTIONS)[number];

/** Arguments of {@link ElementwiseActivation}. */
export interface ElementwiseActivationArgs {
  /** 'erf' (the error function) or 'gelu' (exact: x·Φ(x) = x·(1 + erf(x/√2))/2). */
  fn: ElementwiseFunction;
  name?: string;
  inputShape?: tf.Shape;
  batchInputShape?: tf.Shape;
}

/** Apply an element-wise function `fn` (see {@link ElementwiseFunction}); any shape. */
export function applyElementwise(fn: ElementwiseFunction, x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    if (fn === 'erf') return tf.erf(x);
    return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
  });
}

/** Parameter-free activation layer for functions tfjs's `Activation` layer lacks (config `{ fn }`). */
export class ElementwiseActivation extends tf.layers.Layer {
  static className = 'ElementwiseActivation';
  /** The element-wise function. */
  readonly fn: ElementwiseFunction;

  constructor(args: ElementwiseActivationArgs) {
    super(args);
    assertArgument(
      (ELEMENTWISE_FUNCTIONS as readonly string[]).includes(args.fn),
      'ElementwiseActivation.fn',
      args.fn,
      `one of ${ELEMENTWISE_FUNCTIONS.join(', ')}`,
    );
    this.fn = args.fn;
    this.supportsMasking = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return applyElementwise(this.fn, Array.isArray(inputs) ? inputs[0]! : inputs);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), fn: this.fn };
  }
}

tf.serialization.registerClass(ScaledDense);
tf.serialization.registerClass(Scale);
tf.serialization.registerClass(ElementwiseActivation);
