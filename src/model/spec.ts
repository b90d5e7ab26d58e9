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

/** Where a transformer's LayerNorms sit: after each residual sum (BERT) or before each sub-layer. */
export const TRANSFORMER_NORMS = ['post', 'pre'] as const;
/** How a transformer's token states become one vector: the first ([CLS]) token, or the masked mean. */
export const TRANSFORMER_POOLINGS = ['cls', 'mean'] as const;

/**
 * Transformer encoder classifier (src/model/transformer.ts), BERT-compatible in its post-LN form.
 * Inputs are `2·maxLength` numbers per example: token ids, then the attention mask (1 = token,
 * 0 = padding). Logits = head(pool(blocks(embed(ids)))).
 */
export interface TransformerSpec {
  kind: 'transformer';
  /** Encoder blocks. */
  layers: number;
  /** Hidden size (divisible by `heads`). */
  width: number;
  /** Attention heads (head size width / heads; scores scaled by 1/√(head size)). */
  heads: number;
  /** MLP hidden size = mlpRatio · width (a positive integer). */
  mlpRatio: number;
  /** Sequence length (positions 0..maxLength−1; texts padded/truncated to it). */
  maxLength: number;
  /** Token vocabulary size; omitted: taken from the tokenizer (BuildModelOptions.vocabSize). */
  vocabSize?: number;
  /** Token-type (segment) vocabulary; 0 = no token-type embedding (BERT: 2; every token has type 0). */
  typeVocabSize: number;
  /** 'post' (BERT: LN after each residual sum) or 'pre' (LN before each sub-layer, plus a final LN). */
  norm: 'post' | 'pre';
  /** LayerNorm after the embedding sum (BERT: true). */
  embeddingNorm: boolean;
  /** 'cls' (first token) or 'mean' (masked mean over tokens). */
  pooling: 'cls' | 'mean';
  /** BERT pooler: Dense(width) → tanh on the pooled vector before the head. */
  pooler: boolean;
  /** LayerNorm ε (BERT: 1e-12). */
  layerNormEpsilon: number;
  /** MLP non-linearity: exact GELU x·Φ(x) (erf), as BERT. */
  activation: 'gelu';
}

export type ModelSpec = MlpSpec | LinearSpec | CnnSpec | TransformerSpec;

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
  z
    .object({
      kind: z.literal('transformer'),
      layers: positiveInt,
      width: positiveInt,
      heads: positiveInt,
      mlpRatio: positiveInt,
      maxLength: positiveInt,
      vocabSize: positiveInt.optional(),
      typeVocabSize: z.number().int().nonnegative(),
      norm: z.enum(TRANSFORMER_NORMS),
      embeddingNorm: z.boolean(),
      pooling: z.enum(TRANSFORMER_POOLINGS),
      pooler: z.boolean(),
      layerNormEpsilon: z.number().finite().positive(),
      activation: z.literal('gelu'),
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
  /** Transformer: 2 post-LN (BERT) blocks, width 64, 4 heads, MLP 256, 32 tokens, CLS pooling. */
  'transformer-tiny': transformerPreset({ layers: 2, width: 64, heads: 4, maxLength: 32 }),
  /** The same with pre-LN blocks (LN before each sub-layer, a final LN) and masked-mean pooling. */
  'transformer-tiny-pre': transformerPreset({
    layers: 2,
    width: 64,
    heads: 4,
    maxLength: 32,
    norm: 'pre',
    embeddingNorm: false,
    pooling: 'mean',
  }),
  /** 4 post-LN blocks, width 128, 4 heads, MLP 512, 64 tokens. */
  'transformer-small': transformerPreset({ layers: 4, width: 128, heads: 4, maxLength: 64 }),
});

/** A BERT-style transformer spec: post-LN, embedding LN, 2 token types, CLS pooling, no pooler, ε 1e-12. */
function transformerPreset(
  s: Pick<TransformerSpec, 'layers' | 'width' | 'heads' | 'maxLength'> & Partial<TransformerSpec>,
): TransformerSpec {
  // Keys in the schema's order, so that a parsed copy stringifies the same (presetNameOf).
  return {
    kind: 'transformer',
    layers: s.layers,
    width: s.width,
    heads: s.heads,
    mlpRatio: s.mlpRatio ?? 4,
    maxLength: s.maxLength,
    typeVocabSize: s.typeVocabSize ?? 2,
    norm: s.norm ?? 'post',
    embeddingNorm: s.embeddingNorm ?? true,
    pooling: s.pooling ?? 'cls',
    pooler: s.pooler ?? false,
    layerNormEpsilon: s.layerNormEpsilon ?? 1e-12,
    activation: 'gelu',
  };
}

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
  const spec = parsed.data;
  if (spec.kind === 'transformer' && spec.width % spec.heads !== 0) {
    throw new InvalidArgumentError(
      `${argument}.heads`,
      spec.heads,
      `a divisor of width (${spec.width}): the head size is width / heads`,
    );
  }
  return structuredClone(spec) as ModelSpec;
}

/** The preset name whose spec equals `spec`, or null. */
export function presetNameOf(spec: ModelSpec): string | null {
  const key = JSON.stringify(spec);
  for (const [name, preset] of Object.entries(MODEL_PRESETS)) if (JSON.stringify(preset) === key) return name;
  return null;
}
