/**
 * Model specifications and the named presets registry.
 *
 * A {@link ModelSpec} describes an architecture independently of the data; `buildModel` turns it
 * into a `tf.Sequential` once the input shape and the number of classes are known.
 */
import { z } from 'zod';
import { InvalidArgumentError } from '../errors.js';

/**
 * 'standard': `h = a W + b` with Glorot/He-initialised W (tfjs `Dense`).
 * 'ntk': `h = a W / sqrt(fan_in) + b` with W ~ N(0, 1), b = 0 initially (entk `ScaledDense`),
 * the parameterisation under which the NTK has a finite infinite-width limit (docs/theory.md#laziness-gap).
 */
export type Parameterization = 'standard' | 'ntk';
export const PARAMETERIZATIONS = ['standard', 'ntk'] as const;

/** Hidden-layer non-linearities. 'gelu' is the exact x·Φ(x); 'erf' is the error function. */
export type ActivationName = 'relu' | 'tanh' | 'gelu' | 'erf';
export const ACTIVATIONS = ['relu', 'tanh', 'gelu', 'erf'] as const;

/** Multi-layer perceptron: Dense → activation per hidden width, then a Dense to the logits. */
export interface MlpSpec {
  kind: 'mlp';
  /** Hidden-layer widths, e.g. [256, 256]; [] gives a linear model. */
  widths: number[];
  /** Hidden non-linearity. */
  activation: ActivationName;
  /** Weight parameterisation (see {@link Parameterization}). */
  parameterization: Parameterization;
  /** Constant multiplier of the logits (a `Scale` layer); default 1 (no layer). */
  outputScale?: number;
}

/** Linear softmax model: one Dense layer, logits = Wᵀx + b (docs/theory.md#closed-forms: K(x,x') = (xᵀx' + 1) I_V). */
export interface LinearSpec {
  kind: 'linear';
}

/** Small CNN for small images (8×8×1 digits): [Conv2D 3×3 'same' → activation → MaxPool 2×2]* → Flatten → [Dense → activation]* → Dense. */
export interface CnnSpec {
  kind: 'cnn';
  /** Filters of each convolution block; default [16, 32]. */
  filters?: number[];
  /** Hidden dense widths after flattening; default [64]. */
  dense?: number[];
  /** Non-linearity; default 'relu'. */
  activation?: ActivationName;
}

export type ModelSpec = MlpSpec | LinearSpec | CnnSpec;

const positiveInt = z.number().int().positive();

/** zod schema of {@link ModelSpec} (strict: unknown keys are errors). */
export const modelSpecSchema = z.discriminatedUnion('kind', [
  z
    .object({
      kind: z.literal('mlp'),
      widths: z.array(positiveInt),
      activation: z.enum(ACTIVATIONS),
      parameterization: z.enum(PARAMETERIZATIONS),
      outputScale: z.number().finite().optional(),
    })
    .strict(),
  z.object({ kind: z.literal('linear') }).strict(),
  z
    .object({
      kind: z.literal('cnn'),
      filters: z.array(positiveInt).min(1).optional(),
      dense: z.array(positiveInt).optional(),
      activation: z.enum(ACTIVATIONS).optional(),
    })
    .strict(),
]);

/**
 * Named presets. Widths follow the project's reference MLP (64→256→256→10 on digits); the NTK
 * presets are wider because the NTK parameterisation is meant for the wide regime.
 */
export const MODEL_PRESETS: Readonly<Record<string, ModelSpec>> = Object.freeze({
  /** Default: 2 hidden layers of 256, ReLU, standard parameterisation. */
  mlp: { kind: 'mlp', widths: [256, 256], activation: 'relu', parameterization: 'standard' },
  /** One hidden layer of 64 (fast; tests, quick kernels). */
  'mlp-small': { kind: 'mlp', widths: [64], activation: 'relu', parameterization: 'standard' },
  'mlp-tanh': { kind: 'mlp', widths: [256, 256], activation: 'tanh', parameterization: 'standard' },
  'mlp-gelu': { kind: 'mlp', widths: [256, 256], activation: 'gelu', parameterization: 'standard' },
  /** NTK parameterisation, 2 × 512, ReLU. */
  'mlp-ntk': { kind: 'mlp', widths: [512, 512], activation: 'relu', parameterization: 'ntk' },
  /** NTK parameterisation, 2 × 512, erf (the classic infinite-width kernel non-linearity). */
  'mlp-ntk-erf': { kind: 'mlp', widths: [512, 512], activation: 'erf', parameterization: 'ntk' },
  /** NTK parameterisation, 2 × 2048, ReLU: the lazy regime. */
  'mlp-wide': { kind: 'mlp', widths: [2048, 2048], activation: 'relu', parameterization: 'ntk' },
  /** Linear softmax regression. */
  linear: { kind: 'linear' },
  /** Small CNN for 8×8×1 digits. */
  cnn: { kind: 'cnn', filters: [16, 32], dense: [64], activation: 'relu' },
});

/** Human-readable rendering of a zod issue path: `widths[1]`, `optimizer.learningRate`. */
export function formatPath(prefix: string, path: (string | number)[]): string {
  let out = prefix;
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out ? `.${part}` : part;
  return out;
}

/** Value at `path` inside `root` (undefined where missing). */
export function valueAt(root: unknown, path: (string | number)[]): unknown {
  let v: unknown = root;
  for (const part of path) {
    if (v == null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[part];
  }
  return v;
}

/** Turn the first zod issue into an InvalidArgumentError naming the key, the value and what was expected. */
export function zodToArgumentError(prefix: string, error: z.ZodError, input: unknown): InvalidArgumentError {
  const issue = error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!;
    return new InvalidArgumentError(
      formatPath(prefix, [...issue.path, key]),
      valueAt(input, [...issue.path, key]),
      'a known key (this one is not recognised)',
    );
  }
  if (issue.code === 'invalid_union_discriminator') {
    return new InvalidArgumentError(
      formatPath(prefix, issue.path),
      valueAt(input, issue.path),
      `one of ${issue.options.map((o) => JSON.stringify(o)).join(', ')}`,
    );
  }
  return new InvalidArgumentError(
    formatPath(prefix, issue.path),
    valueAt(input, issue.path),
    expectation(issue),
  );
}

function article(word: string): string {
  return /^[aeiou]/i.test(word) ? `an ${word}` : `a ${word}`;
}

/** What a zod issue expected, phrased for `<key>: expected <this>, received <value>`. */
function expectation(issue: z.ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type': {
      const expected = issue.expected.includes('|')
        ? `one of ${issue.expected.replace(/'/g, '').split(' | ').join(', ')}`
        : article(issue.expected);
      return issue.received === 'undefined' ? `${expected} (required)` : expected;
    }
    case 'too_small':
      if (issue.type === 'number') return `a number ${issue.inclusive ? '>=' : '>'} ${issue.minimum}`;
      if (issue.type === 'array') return `at least ${issue.minimum} item(s)`;
      if (issue.type === 'string')
        return issue.minimum === 1 ? 'a non-empty string' : `at least ${issue.minimum} characters`;
      break;
    case 'too_big':
      if (issue.type === 'number') return `a number ${issue.inclusive ? '<=' : '<'} ${issue.maximum}`;
      if (issue.type === 'array') return `at most ${issue.maximum} item(s)`;
      break;
    case 'invalid_enum_value':
      return `one of ${issue.options.join(', ')}`;
    case 'invalid_literal':
      return JSON.stringify(issue.expected);
    case 'not_finite':
      return 'a finite number';
  }
  return issue.message.charAt(0).toLowerCase() + issue.message.slice(1);
}

/**
 * A preset name or a spec object → a validated, deep-copied ModelSpec.
 * Throws InvalidArgumentError for an unknown preset (listing the presets) or a malformed spec
 * (naming the key).
 */
export function resolveModelSpec(nameOrSpec: string | ModelSpec, argument = 'model'): ModelSpec {
  if (typeof nameOrSpec === 'string') {
    const preset = MODEL_PRESETS[nameOrSpec];
    if (!preset || !Object.hasOwn(MODEL_PRESETS, nameOrSpec)) {
      throw new InvalidArgumentError(
        argument,
        nameOrSpec,
        `a model preset (${Object.keys(MODEL_PRESETS).join(', ')}) or a model spec object`,
      );
    }
    return structuredClone(preset);
  }
  const parsed = modelSpecSchema.safeParse(nameOrSpec);
  if (!parsed.success) throw zodToArgumentError(argument, parsed.error, nameOrSpec);
  return structuredClone(parsed.data) as ModelSpec;
}

/** The preset name whose spec equals `spec`, or null. */
export function presetNameOf(spec: ModelSpec): string | null {
  const key = JSON.stringify(spec);
  for (const [name, preset] of Object.entries(MODEL_PRESETS)) if (JSON.stringify(preset) === key) return name;
  return null;
}
