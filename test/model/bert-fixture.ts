/**
 * A second, multi-layer multi-head BERT encoder for the import tests, written the way exporters
 * write real ones (models/tiny-bert has one layer and one head, and entk's own short names):
 * - `onnx/model.onnx` as Hugging Face optimum / torch.onnx exports it: Linear weights under
 *   anonymous names (`onnx::MatMul_<n>`, [in, out]), each MatMul's output added to its named bias
 *   (`Add(bias, x)`), node names carrying the module scope (`/encoder/layer.0/attention/self/query/MatMul`),
 *   heads split with Reshape/Transpose, the padding mask filled with float32's lowest value, and
 *   the pooler (on the [CLS] state, a 2-D input) as a Gemm with transB = 1 on `pooler.dense.weight`
 *   [out, in], output `pooler_output`;
 * - `model.safetensors` as a `BertForSequenceClassification` checkpoint: torch names with the
 *   `bert.` prefix, Linear weights [out, in], and a classifier the import must ignore.
 * Weights come from the integer-only seeded RNG of models/onnx-writer.ts.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import {
  DataType,
  encodeModel,
  floatTensor,
  int64Tensor,
  type OnnxInitializer,
  type OnnxNode,
  WeightRng,
} from '../../models/onnx-writer.js';
import { type NdArray, writeSafetensors } from '../../src/io/index.js';

export const FIXTURE = {
  vocab: 40,
  hidden: 16,
  heads: 4,
  layers: 2,
  intermediate: 32,
  positions: 20,
  types: 2,
  eps: 1e-5,
} as const;

/** HF config.json of the fixture. */
export function fixtureConfig(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['BertModel'],
    model_type: 'bert',
    vocab_size: FIXTURE.vocab,
    hidden_size: FIXTURE.hidden,
    num_hidden_layers: FIXTURE.layers,
    num_attention_heads: FIXTURE.heads,
    intermediate_size: FIXTURE.intermediate,
    hidden_act: 'gelu',
    max_position_embeddings: FIXTURE.positions,
    type_vocab_size: FIXTURE.types,
    layer_norm_eps: FIXTURE.eps,
    pad_token_id: 0,
    ...overrides,
  };
}

/** A stored tensor in torch layout (Linear weights [out, in]). */
export interface TorchTensor {
  dims: number[];
  data: Float32Array;
}

/** The fixture's parameters by Hugging Face name (no prefix), torch layout. */
export function fixtureWeights(seed = 7): Map<string, TorchTensor> {
  const { vocab: V, hidden: H, intermediate: I, positions: P, types: T } = FIXTURE;
  const rng = new WeightRng(seed);
  const out = new Map<string, TorchTensor>();
  const add = (name: string, dims: number[], std: number, mean = 0) => {
    const data = rng.normalArray(
      dims.reduce((a, b) => a * b, 1),
      std,
    );
    for (let i = 0; i < data.length; i++) data[i] = data[i]! + mean;
    out.set(name, { dims, data });
  };
  add('embeddings.word_embeddings.weight', [V, H], 1);
  add('embeddings.position_embeddings.weight', [P, H], 0.3);
  add('embeddings.token_type_embeddings.weight', [T, H], 0.3);
  add('embeddings.LayerNorm.weight', [H], 0.2, 1);
  add('embeddings.LayerNorm.bias', [H], 0.1);
  for (let l = 0; l < FIXTURE.layers; l++) {
    const p = `encoder.layer.${l}.`;
    for (const m of [
      'attention.self.query',
      'attention.self.key',
      'attention.self.value',
      'attention.output.dense',
    ]) {
      add(`${p}${m}.weight`, [H, H], 0.5);
      add(`${p}${m}.bias`, [H], 0.1);
    }
    add(`${p}attention.output.LayerNorm.weight`, [H], 0.2, 1);
    add(`${p}attention.output.LayerNorm.bias`, [H], 0.1);
    add(`${p}intermediate.dense.weight`, [I, H], 0.4);
    add(`${p}intermediate.dense.bias`, [I], 0.1);
    add(`${p}output.dense.weight`, [H, I], 0.3);
    add(`${p}output.dense.bias`, [H], 0.1);
    add(`${p}output.LayerNorm.weight`, [H], 0.2, 1);
    add(`${p}output.LayerNorm.bias`, [H], 0.1);
  }
  add('pooler.dense.weight', [H, H], 0.4);
  add('pooler.dense.bias', [H], 0.1);
  return out;
}

function transpose(t: TorchTensor): Float32Array {
  const [rows, cols] = t.dims as [number, number];
  const out = new Float32Array(t.data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = t.data[r * cols + c]!;
  return out;
}

/** Options of {@link fixtureOnnx}. */
export interface FixtureOnnxOptions {
  /**
   * Storage of the named float initialisers: 'raw' (raw_data, default), 'float_data', or
   * `{ external: location }` (all in one external file, returned as `external`).
   */
  storage?: 'raw' | 'float_data' | { external: string };
  /**
   * Linear weights under their torch names in torch layout [out, in], transposed by a Transpose
   * node before the MatMul (an export without constant folding), instead of anonymous [in, out].
   */
  transposed?: boolean;
  /** Dense biases under anonymous names too (`onnx::Add_<n>`): the weights can then not be named. */
  anonymousBiases?: boolean;
}

/** The fixture encoder as an optimum-style ONNX graph (see the module comment). */
export function fixtureOnnx(
  weights: Map<string, TorchTensor>,
  options: FixtureOnnxOptions = {},
): { onnx: Uint8Array; external: Uint8Array | null } {
  const { hidden: H, heads: NH } = FIXTURE;
  const dh = H / NH;
  const w = (name: string) => weights.get(name)!;
  const externalParts: Float32Array[] = [];
  let externalOffset = 0;
  const named = (name: string): OnnxInitializer => {
    const t = floatTensor(name, w(name).dims, w(name).data);
    const storage = options.storage ?? 'raw';
    if (typeof storage === 'string') return { ...t, storage };
    externalParts.push(w(name).data);
    externalOffset += w(name).data.length * 4;
    return {
      ...t,
      storage: { location: storage.external, offset: externalOffset - w(name).data.length * 4 },
    };
  };
  const initializers: OnnxInitializer[] = [];
  const nodes: OnnxNode[] = [];
  const n = (
    op: string,
    inputs: string[],
    outputs: string[],
    name: string,
    attributes?: OnnxNode['attributes'],
  ) => nodes.push({ op, inputs, outputs, name, attributes });
  let anon = 100;
  for (const name of [
    'embeddings.word_embeddings.weight',
    'embeddings.position_embeddings.weight',
    'embeddings.token_type_embeddings.weight',
    'embeddings.LayerNorm.weight',
    'embeddings.LayerNorm.bias',
  ])
    initializers.push(named(name));
  initializers.push(
    int64Tensor('const.zero', [], [0]),
    int64Tensor('const.one', [], [1]),
    int64Tensor('const.axes12', [2], [1, 2]),
    int64Tensor('const.split', [4], [0, 0, NH, dh]),
    int64Tensor('const.merge', [3], [0, 0, H]),
    floatTensor('const.scale', [], Float32Array.of(1 / Math.sqrt(dh))),
    floatTensor('const.onef', [], Float32Array.of(1)),
    floatTensor('const.half', [], Float32Array.of(0.5)),
    floatTensor('const.sqrt2', [], Float32Array.of(Math.SQRT2)),
    floatTensor('const.lowest', [], Float32Array.of(-3.4028234663852886e38)),
  );
  const eps = { epsilon: { float: FIXTURE.eps }, axis: { int: -1 } };
  // Embeddings and the additive mask.
  n(
    'Gather',
    ['embeddings.word_embeddings.weight', 'input_ids'],
    ['/embeddings/word'],
    '/embeddings/word_embeddings/Gather',
    { axis: { int: 0 } },
  );
  n(
    'Gather',
    ['embeddings.token_type_embeddings.weight', 'token_type_ids'],
    ['/embeddings/type'],
    '/embeddings/token_type_embeddings/Gather',
    { axis: { int: 0 } },
  );
  n('Shape', ['input_ids'], ['/embeddings/shape'], '/embeddings/Shape');
  n('Gather', ['/embeddings/shape', 'const.one'], ['/embeddings/seq'], '/embeddings/Gather_1', {
    axis: { int: 0 },
  });
  n(
    'Range',
    ['const.zero', '/embeddings/seq', 'const.one'],
    ['/embeddings/position_ids'],
    '/embeddings/Range',
  );
  n(
    'Gather',
    ['embeddings.position_embeddings.weight', '/embeddings/position_ids'],
    ['/embeddings/pos'],
    '/embeddings/position_embeddings/Gather',
    { axis: { int: 0 } },
  );
  n('Add', ['/embeddings/word', '/embeddings/type'], ['/embeddings/sum1'], '/embeddings/Add');
  n('Add', ['/embeddings/sum1', '/embeddings/pos'], ['/embeddings/sum'], '/embeddings/Add_1');
  n(
    'LayerNormalization',
    ['/embeddings/sum', 'embeddings.LayerNorm.weight', 'embeddings.LayerNorm.bias'],
    ['h.0'],
    '/embeddings/LayerNorm/LayerNormalization',
    eps,
  );
  n('Cast', ['attention_mask'], ['/mask/f'], '/Cast', { to: { int: DataType.FLOAT } });
  n('Sub', ['const.onef', '/mask/f'], ['/mask/inv'], '/Sub');
  n('Mul', ['/mask/inv', 'const.lowest'], ['/mask/fill'], '/Mul');
  n('Unsqueeze', ['/mask/fill', 'const.axes12'], ['/mask/add'], '/Unsqueeze');
  // Encoder layers.
  const linear = (x: string, module: string, scope: string, out: string) => {
    const t = w(`${module}.weight`);
    const weight = `onnx::MatMul_${anon++}`;
    if (options.transposed) {
      initializers.push(named(`${module}.weight`));
      n('Transpose', [`${module}.weight`], [weight], `${scope}/Transpose`, { perm: { ints: [1, 0] } });
    } else initializers.push(floatTensor(weight, [t.dims[1]!, t.dims[0]!], transpose(t)));
    const bias = options.anonymousBiases ? `onnx::Add_${anon + 1000}` : `${module}.bias`;
    initializers.push({ ...named(`${module}.bias`), name: bias });
    n('MatMul', [x, weight], [`${scope}/MatMul_output_0`], `${scope}/MatMul`);
    n('Add', [bias, `${scope}/MatMul_output_0`], [out], `${scope}/Add`);
  };
  for (let l = 0; l < FIXTURE.layers; l++) {
    const p = `encoder.layer.${l}.`;
    const s = `/encoder/layer.${l}`;
    const x = `h.${l}`;
    for (const which of ['query', 'key', 'value']) {
      linear(x, `${p}attention.self.${which}`, `${s}/attention/self/${which}`, `${s}/${which}`);
      n(
        'Reshape',
        [`${s}/${which}`, 'const.split'],
        [`${s}/${which}.4d`],
        `${s}/attention/self/Reshape_${which}`,
      );
    }
    n('Transpose', [`${s}/query.4d`], [`${s}/q`], `${s}/attention/self/Transpose`, {
      perm: { ints: [0, 2, 1, 3] },
    });
    n('Transpose', [`${s}/key.4d`], [`${s}/kT`], `${s}/attention/self/Transpose_1`, {
      perm: { ints: [0, 2, 3, 1] },
    });
    n('Transpose', [`${s}/value.4d`], [`${s}/v`], `${s}/attention/self/Transpose_2`, {
      perm: { ints: [0, 2, 1, 3] },
    });
    n('MatMul', [`${s}/q`, `${s}/kT`], [`${s}/scores.raw`], `${s}/attention/self/MatMul`);
    n('Mul', [`${s}/scores.raw`, 'const.scale'], [`${s}/scores.scaled`], `${s}/attention/self/Mul`);
    n('Add', [`${s}/scores.scaled`, '/mask/add'], [`${s}/scores`], `${s}/attention/self/Add`);
    n('Softmax', [`${s}/scores`], [`${s}/probs`], `${s}/attention/self/Softmax`, { axis: { int: -1 } });
    n('MatMul', [`${s}/probs`, `${s}/v`], [`${s}/context.4d`], `${s}/attention/self/MatMul_1`);
    n('Transpose', [`${s}/context.4d`], [`${s}/context.t`], `${s}/attention/self/Transpose_3`, {
      perm: { ints: [0, 2, 1, 3] },
    });
    n('Reshape', [`${s}/context.t`, 'const.merge'], [`${s}/context`], `${s}/attention/self/Reshape_3`);
    linear(`${s}/context`, `${p}attention.output.dense`, `${s}/attention/output/dense`, `${s}/attn.out`);
    n('Add', [`${s}/attn.out`, x], [`${s}/attn.res`], `${s}/attention/output/Add`);
    initializers.push(
      named(`${p}attention.output.LayerNorm.weight`),
      named(`${p}attention.output.LayerNorm.bias`),
    );
    n(
      'LayerNormalization',
      [`${s}/attn.res`, `${p}attention.output.LayerNorm.weight`, `${p}attention.output.LayerNorm.bias`],
      [`${s}/h1`],
      `${s}/attention/output/LayerNorm/LayerNormalization`,
      eps,
    );
    linear(`${s}/h1`, `${p}intermediate.dense`, `${s}/intermediate/dense`, `${s}/ffn.pre`);
    n('Div', [`${s}/ffn.pre`, 'const.sqrt2'], [`${s}/gelu.div`], `${s}/intermediate/intermediate_act_fn/Div`);
    n('Erf', [`${s}/gelu.div`], [`${s}/gelu.erf`], `${s}/intermediate/intermediate_act_fn/Erf`);
    n('Add', [`${s}/gelu.erf`, 'const.onef'], [`${s}/gelu.add`], `${s}/intermediate/intermediate_act_fn/Add`);
    n(
      'Mul',
      [`${s}/ffn.pre`, `${s}/gelu.add`],
      [`${s}/gelu.mul`],
      `${s}/intermediate/intermediate_act_fn/Mul`,
    );
    n(
      'Mul',
      [`${s}/gelu.mul`, 'const.half'],
      [`${s}/ffn.act`],
      `${s}/intermediate/intermediate_act_fn/Mul_1`,
    );
    linear(`${s}/ffn.act`, `${p}output.dense`, `${s}/output/dense`, `${s}/ffn.out`);
    n('Add', [`${s}/ffn.out`, `${s}/h1`], [`${s}/ffn.res`], `${s}/output/Add`);
    initializers.push(named(`${p}output.LayerNorm.weight`), named(`${p}output.LayerNorm.bias`));
    const next = l === FIXTURE.layers - 1 ? 'last_hidden_state' : `h.${l + 1}`;
    n(
      'LayerNormalization',
      [`${s}/ffn.res`, `${p}output.LayerNorm.weight`, `${p}output.LayerNorm.bias`],
      [next],
      `${s}/output/LayerNorm/LayerNormalization`,
      eps,
    );
  }
  // Pooler: tanh(h[:, 0] Wᵀ + b) as torch exports a Linear on a 2-D input (Gemm, transB = 1).
  initializers.push(named('pooler.dense.weight'), named('pooler.dense.bias'));
  n('Gather', ['last_hidden_state', 'const.zero'], ['/pooler/cls'], '/pooler/Gather', { axis: { int: 1 } });
  n(
    'Gemm',
    ['/pooler/cls', 'pooler.dense.weight', 'pooler.dense.bias'],
    ['/pooler/dense'],
    '/pooler/dense/Gemm',
    {
      alpha: { float: 1 },
      beta: { float: 1 },
      transB: { int: 1 },
    },
  );
  n('Tanh', ['/pooler/dense'], ['pooler_output'], '/pooler/activation/Tanh');
  const io = (name: string) => ({ name, elemType: DataType.INT64, shape: ['batch_size', 'sequence_length'] });
  const onnx = encodeModel({
    name: 'main_graph',
    producer: 'entk test/model/bert-fixture.ts',
    irVersion: 8,
    opset: 17,
    nodes,
    initializers,
    inputs: [io('input_ids'), io('attention_mask'), io('token_type_ids')],
    outputs: [
      { name: 'last_hidden_state', elemType: DataType.FLOAT, shape: ['batch_size', 'sequence_length', H] },
      { name: 'pooler_output', elemType: DataType.FLOAT, shape: ['batch_size', H] },
    ],
  });
  const external =
    externalParts.length > 0
      ? new Uint8Array(
          Buffer.concat(externalParts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength))),
        )
      : null;
  return { onnx, external };
}

/** The fixture as a `BertModel` safetensors checkpoint (`bert.` prefix, a pooler, torch layout). */
export async function writeFixtureSafetensors(
  file: string,
  weights: Map<string, TorchTensor>,
): Promise<void> {
  const { hidden: H } = FIXTURE;
  const tensors: Record<string, NdArray> = {};
  for (const [name, t] of weights)
    tensors[`bert.${name}`] = { dtype: 'float32', shape: t.dims, data: t.data };
  tensors['classifier.weight'] = { dtype: 'float32', shape: [3, H], data: new Float32Array(3 * H) };
  tensors['classifier.bias'] = { dtype: 'float32', shape: [3], data: new Float32Array(3) };
  await writeSafetensors(file, tensors);
}

/** Write a fixture model directory: config.json plus onnx/model.onnx and/or model.safetensors. */
export async function writeFixtureDir(
  dir: string,
  formats: {
    onnx?: boolean | FixtureOnnxOptions;
    safetensors?: boolean;
    config?: Record<string, unknown>;
  } = { onnx: true },
  weights = fixtureWeights(),
): Promise<string> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'config.json'), `${JSON.stringify(fixtureConfig(formats.config), null, 2)}\n`);
  if (formats.onnx) {
    mkdirSync(path.join(dir, 'onnx'), { recursive: true });
    const options = formats.onnx === true ? {} : formats.onnx;
    const { onnx, external } = fixtureOnnx(weights, options);
    writeFileSync(path.join(dir, 'onnx', 'model.onnx'), onnx);
    if (external && typeof options.storage === 'object')
      writeFileSync(path.join(dir, 'onnx', options.storage.external), external);
  }
  if (formats.safetensors) await writeFixtureSafetensors(path.join(dir, 'model.safetensors'), weights);
  return dir;
}
