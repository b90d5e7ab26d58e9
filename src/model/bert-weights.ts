/**
 * Pretrained BERT-style encoder weights from a local model directory (the Hugging Face /
 * transformers.js layout): `config.json` plus `model.safetensors` (or a sharded
 * `model.safetensors.index.json`) or `onnx/model.onnx` (or `model.onnx`), mapped onto one neutral
 * structure — embeddings, embedding LayerNorm, and per layer the Q/K/V/O, intermediate and output
 * dense layers with their two LayerNorms — with every shape checked against `config.json`.
 *
 * Names: the Hugging Face parameter names (`embeddings.word_embeddings.weight`,
 * `encoder.layer.0.attention.self.query.weight`, …), with or without the `bert.` prefix; the
 * layer-less short forms of entk's tiny generated models (`attention.query.weight`,
 * `intermediate.weight`, `output.LayerNorm.bias`, …) are accepted for a one-layer model.
 * ONNX exports often store a Linear's weight under an anonymous name (`onnx::MatMul_123`): such a
 * weight is named after the bias its MatMul's output is added to (`….query.bias` → `….query.weight`).
 *
 * Layouts: every dense kernel is returned [in, out] (y = x W + b). safetensors holds torch
 * `nn.Linear` weights [out, in] (transposed here); an ONNX MatMul's weight is [in, out], unless it
 * reaches the MatMul through a Transpose node (exports without constant folding), then [out, in].
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CorruptFileError, InvalidArgumentError, UnsupportedError } from '../errors.js';
import { type NdArray, type OnnxModel, type OnnxNode, readOnnxModel, readSafetensors } from '../io/index.js';
import { exists, isDirectory, readJsonFile, resolveInside } from '../util/index.js';

/** The architecture hyper-parameters read from `config.json` (Hugging Face `BertConfig` names in comments). */
export interface BertConfig {
  /** vocab_size */
  vocabSize: number;
  /** hidden_size */
  hiddenSize: number;
  /** num_hidden_layers */
  numLayers: number;
  /** num_attention_heads */
  numHeads: number;
  /** intermediate_size */
  intermediateSize: number;
  /** max_position_embeddings */
  maxPositions: number;
  /** type_vocab_size */
  typeVocabSize: number;
  /** layer_norm_eps (default 1e-12, BertConfig's default) */
  layerNormEps: number;
  /** hidden_act: only 'gelu' (the exact erf GELU). */
  hiddenAct: 'gelu';
  /** pad_token_id (default 0). */
  padTokenId: number;
}

/** A dense layer: y = x · kernel + bias, kernel [in, out] row-major. */
export interface DenseWeights {
  kernel: Float32Array;
  bias: Float32Array;
}

/** LayerNorm scale γ and shift β ([hidden]). */
export interface NormWeights {
  gamma: Float32Array;
  beta: Float32Array;
}

/** One post-LN encoder layer. */
export interface BertLayerWeights {
  query: DenseWeights;
  key: DenseWeights;
  value: DenseWeights;
  /** attention.output.dense */
  attentionOutput: DenseWeights;
  /** attention.output.LayerNorm */
  attentionNorm: NormWeights;
  /** intermediate.dense (hidden → intermediate, then GELU) */
  intermediate: DenseWeights;
  /** output.dense (intermediate → hidden) */
  output: DenseWeights;
  /** output.LayerNorm */
  outputNorm: NormWeights;
}

/** A whole encoder's weights (no task head; the pooler when the checkpoint has one). */
export interface BertWeights {
  config: BertConfig;
  /** Where they came from: the format and the files read. */
  source: { format: 'safetensors' | 'onnx'; files: string[] };
  /** [vocabSize, hidden] */
  wordEmbeddings: Float32Array;
  /** [maxPositions, hidden] */
  positionEmbeddings: Float32Array;
  /** [typeVocabSize, hidden] */
  tokenTypeEmbeddings: Float32Array;
  embeddingNorm: NormWeights;
  layers: BertLayerWeights[];
  /** BERT's pooler (pooler.dense, [hidden, hidden], then tanh on the [CLS] state), or null when absent. */
  pooler: DenseWeights | null;
}

/** Which weight file {@link readBertWeights} reads. */
export type BertWeightSource = 'auto' | 'safetensors' | 'onnx';
export const BERT_WEIGHT_SOURCES = ['auto', 'safetensors', 'onnx'] as const;

/** Weight files looked for, in this order, by `source: 'auto'`. */
export const BERT_WEIGHT_FILES = {
  safetensors: ['model.safetensors', 'model.safetensors.index.json'],
  onnx: ['onnx/model.onnx', 'model.onnx'],
} as const;

const CONFIG_JSON = 'config.json';

/** Read and validate `<dir>/config.json` as a BERT encoder configuration. */
export async function readBertConfig(dir: string): Promise<BertConfig> {
  const file = path.join(dir, CONFIG_JSON);
  const raw = await readJsonFile<Record<string, unknown>>(file);
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new CorruptFileError(file, 'not a JSON object');
  }
  const type = raw.model_type;
  if (type !== undefined && type !== 'bert') {
    throw new UnsupportedError(
      `${file}: model_type ${JSON.stringify(type)} is not supported (expected "bert": BERT and MiniLM-style post-LayerNorm encoders with absolute positions)`,
    );
  }
  const positive = (key: string, fallback?: number): number => {
    const v = raw[key] ?? fallback;
    if (!Number.isSafeInteger(v) || (v as number) < 1) {
      throw new CorruptFileError(
        file,
        `${key}: expected a positive integer, received ${JSON.stringify(v) ?? 'nothing'}`,
      );
    }
    return v as number;
  };
  const config: BertConfig = {
    vocabSize: positive('vocab_size'),
    hiddenSize: positive('hidden_size'),
    numLayers: positive('num_hidden_layers'),
    numHeads: positive('num_attention_heads'),
    intermediateSize: positive('intermediate_size'),
    maxPositions: positive('max_position_embeddings'),
    typeVocabSize: positive('type_vocab_size', 2),
    layerNormEps: 1e-12,
    hiddenAct: 'gelu',
    padTokenId: 0,
  };
  const eps = raw.layer_norm_eps ?? 1e-12;
  if (typeof eps !== 'number' || !(eps > 0) || !Number.isFinite(eps)) {
    throw new CorruptFileError(
      file,
      `layer_norm_eps: expected a positive number, received ${JSON.stringify(eps)}`,
    );
  }
  config.layerNormEps = eps;
  const pad = raw.pad_token_id ?? 0;
  if (!Number.isSafeInteger(pad) || (pad as number) < 0) {
    throw new CorruptFileError(
      file,
      `pad_token_id: expected an integer >= 0, received ${JSON.stringify(pad)}`,
    );
  }
  config.padTokenId = pad as number;
  const act = raw.hidden_act ?? 'gelu';
  if (act !== 'gelu') {
    throw new UnsupportedError(
      `${file}: hidden_act ${JSON.stringify(act)} is not supported (expected "gelu", the exact erf GELU of the tfjs transformer)`,
    );
  }
  const positions = raw.position_embedding_type ?? 'absolute';
  if (positions !== 'absolute') {
    throw new UnsupportedError(
      `${file}: position_embedding_type ${JSON.stringify(positions)} is not supported (expected "absolute")`,
    );
  }
  if (config.hiddenSize % config.numHeads !== 0) {
    throw new CorruptFileError(
      file,
      `hidden_size ${config.hiddenSize} is not a multiple of num_attention_heads ${config.numHeads}`,
    );
  }
  return config;
}

/** The Hugging Face names of every parameter the encoder needs, for `numLayers` layers. */
export function bertParameterNames(numLayers: number): string[] {
  const names = [
    'embeddings.word_embeddings.weight',
    'embeddings.position_embeddings.weight',
    'embeddings.token_type_embeddings.weight',
    'embeddings.LayerNorm.weight',
    'embeddings.LayerNorm.bias',
  ];
  for (let i = 0; i < numLayers; i++) {
    const p = `encoder.layer.${i}.`;
    for (const sub of [
      'attention.self.query',
      'attention.self.key',
      'attention.self.value',
      'attention.output.dense',
      'attention.output.LayerNorm',
      'intermediate.dense',
      'output.dense',
      'output.LayerNorm',
    ]) {
      names.push(`${p}${sub}.weight`, `${p}${sub}.bias`);
    }
  }
  return names;
}

const LAYER = String.raw`(?:encoder\.layer\.(\d+)\.)?`;
const WB = '(weight|bias|gamma|beta)';

/** name patterns → canonical name (m[1]: the layer index or undefined, last group: weight/bias). */
const NAME_RULES: Array<[RegExp, (layer: string, m: RegExpExecArray) => string]> = [
  [
    /^embeddings\.(word_embeddings|position_embeddings|token_type_embeddings)\.weight$/,
    (_, m) => `embeddings.${m[1]}.weight`,
  ],
  [new RegExp(`^embeddings\\.LayerNorm\\.${WB}$`), (_, m) => `embeddings.LayerNorm.${wb(m[1]!)}`],
  [
    new RegExp(`^${LAYER}attention\\.(?:self\\.)?(query|key|value)\\.(weight|bias)$`),
    (l, m) => `${l}attention.self.${m[2]}.${m[3]}`,
  ],
  [
    new RegExp(`^${LAYER}attention\\.output\\.(?:dense\\.)?(weight|bias)$`),
    (l, m) => `${l}attention.output.dense.${m[2]}`,
  ],
  [
    new RegExp(`^${LAYER}attention\\.(?:output\\.)?LayerNorm\\.${WB}$`),
    (l, m) => `${l}attention.output.LayerNorm.${wb(m[2]!)}`,
  ],
  [
    new RegExp(`^${LAYER}intermediate\\.(?:dense\\.)?(weight|bias)$`),
    (l, m) => `${l}intermediate.dense.${m[2]}`,
  ],
  [new RegExp(`^${LAYER}output\\.(?:dense\\.)?(weight|bias)$`), (l, m) => `${l}output.dense.${m[2]}`],
  [new RegExp(`^${LAYER}output\\.LayerNorm\\.${WB}$`), (l, m) => `${l}output.LayerNorm.${wb(m[2]!)}`],
  [/^pooler\.dense\.(weight|bias)$/, (_, m) => `pooler.dense.${m[1]}`],
];

/** TF-converted checkpoints name LayerNorm γ/β 'gamma'/'beta'. */
function wb(part: string): string {
  return part === 'gamma' ? 'weight' : part === 'beta' ? 'bias' : part;
}

/**
 * The canonical Hugging Face name of a stored parameter name, or null for anything the encoder
 * does not use (task heads, buffers such as `embeddings.position_ids`). A layer-less short
 * name maps to layer 0 with `layerless: true`.
 */
export function canonicalBertName(name: string): { name: string; layerless: boolean } | null {
  const stripped = name.replace(/^bert\./, '');
  for (const [re, make] of NAME_RULES) {
    const m = re.exec(stripped);
    if (!m) continue;
    const perLayer = !/^(embeddings|pooler)\./.test(stripped);
    const layer = perLayer ? `encoder.layer.${m[1] ?? '0'}.` : '';
    const layerless = perLayer && m[1] === undefined;
    return { name: make(layer, m), layerless };
  }
  return null;
}

/** How a stored dense weight is laid out. */
type Layout = 'in-out' | 'out-in';

/** A stored tensor found for a canonical name. */
interface Found {
  /** The name in the file. */
  stored: string;
  file: string;
  dims: number[];
  data: Float32Array;
  /** Dense weights only. */
  layout?: Layout;
  layerless: boolean;
}

/** Collects canonical name → tensor, refusing two stored tensors for one parameter. */
class Collector {
  readonly found = new Map<string, Found>();
  /** Stored names of MatMul weights that could not be named (reported with missing tensors). */
  readonly unmapped: string[] = [];
  add(canonical: string, f: Found): void {
    const prior = this.found.get(canonical);
    if (prior && prior.stored !== f.stored) {
      throw new CorruptFileError(
        f.file,
        `both ${JSON.stringify(prior.stored)} and ${JSON.stringify(f.stored)} are ${canonical}`,
      );
    }
    this.found.set(canonical, f);
  }
}

function asFloat32(file: string, name: string, dtype: string, data: unknown): Float32Array {
  if (data instanceof Float32Array) return data;
  if (data instanceof Float64Array) return Float32Array.from(data);
  throw new UnsupportedError(
    `${file}: tensor ${JSON.stringify(name)} is ${dtype}; the encoder's weights must be float32 or float64 (a quantised model? use the float32 model.safetensors or onnx/model.onnx)`,
  );
}

/** Read model.safetensors (or the shards listed by model.safetensors.index.json). */
async function collectSafetensors(dir: string, file: string): Promise<{ found: Collector; files: string[] }> {
  let files = [file];
  if (file.endsWith('.index.json')) {
    const index = await readJsonFile<{ weight_map?: unknown }>(file);
    const map = index?.weight_map;
    if (!map || typeof map !== 'object' || Array.isArray(map)) {
      throw new CorruptFileError(file, 'no weight_map object (a safetensors shard index)');
    }
    const shards = [...new Set(Object.values(map as Record<string, unknown>))];
    files = shards.map((s) =>
      resolveInside(path.dirname(file), s, 'weight_map shard', file, { basename: false }),
    );
  }
  const found = new Collector();
  for (const f of files) {
    const { tensors } = await readSafetensors(f);
    for (const [name, t] of Object.entries(tensors) as Array<[string, NdArray]>) {
      const c = canonicalBertName(name);
      if (!c) continue;
      found.add(c.name, {
        stored: name,
        file: f,
        dims: t.shape,
        data: asFloat32(f, name, t.dtype, t.data),
        layout: c.name.endsWith('.weight') && isDense(c.name) ? 'out-in' : undefined,
        layerless: c.layerless,
      });
    }
  }
  return { found, files: files.map((f) => path.relative(dir, f)) };
}

function isDense(canonical: string): boolean {
  return /\.(query|key|value|dense)\.(weight|bias)$/.test(canonical);
}

/**
 * The MatMul and Gemm weights of an ONNX graph: initialiser name → layout, and the bias
 * initialiser added to the product (Gemm's C, or an Add of the MatMul's output).
 */
function onnxDenseUses(model: OnnxModel): Map<string, { layout: Layout; bias: string | null }> {
  const producers = new Map(model.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  const adds = new Map<string, OnnxNode[]>();
  for (const node of model.nodes) {
    if (node.opType !== 'Add') continue;
    for (const input of node.inputs) adds.set(input, [...(adds.get(input) ?? []), node]);
  }
  const uses = new Map<string, { layout: Layout; bias: string | null }>();
  for (const node of model.nodes) {
    if (node.opType !== 'MatMul' && node.opType !== 'Gemm') continue;
    let weight = node.inputs[1] ?? '';
    let layout: Layout = 'in-out';
    if (!model.initializers.has(weight)) {
      // A weight reached through Transpose (perm 1,0) is stored [out, in].
      const producer = producers.get(weight);
      const perm = producer?.attributes.perm;
      if (
        producer?.opType !== 'Transpose' ||
        !model.initializers.has(producer.inputs[0] ?? '') ||
        (perm !== undefined && !(Array.isArray(perm) && perm.join(',') === '1,0'))
      )
        continue;
      weight = producer.inputs[0]!;
      layout = 'out-in';
    }
    const output = node.outputs[0] ?? '';
    if (node.opType === 'Gemm') {
      // y = A·B' + C with B' = Bᵀ when transB = 1 (a torch Linear on a 2-D input: B [out, in]).
      if (node.attributes.transA === 1) continue;
      if (node.attributes.transB === 1) layout = layout === 'in-out' ? 'out-in' : 'in-out';
      const c = node.inputs[2];
      uses.set(weight, { layout, bias: c && model.initializers.has(c) ? c : null });
      continue;
    }
    const bias =
      (adds.get(output) ?? [])
        .map((add) => add.inputs.find((i) => i !== output && model.initializers.has(i)))
        .find((b) => b !== undefined) ?? null;
    uses.set(weight, { layout, bias });
  }
  return uses;
}

async function collectOnnx(dir: string, file: string): Promise<{ found: Collector; files: string[] }> {
  const model = await readOnnxModel(file);
  const uses = onnxDenseUses(model);
  const found = new Collector();
  for (const [name, t] of model.initializers) {
    const use = uses.get(name);
    let canonical = canonicalBertName(name);
    if (!canonical && use) {
      // An anonymous MatMul weight (onnx::MatMul_<n>) is named after the bias added to its output.
      const fromBias = use.bias ? canonicalBertName(use.bias) : null;
      if (fromBias?.name.endsWith('.bias') && isDense(fromBias.name)) {
        canonical = { name: fromBias.name.replace(/\.bias$/, '.weight'), layerless: fromBias.layerless };
      }
    }
    if (!canonical) {
      if (use) found.unmapped.push(name);
      continue;
    }
    const isWeight = canonical.name.endsWith('.weight') && isDense(canonical.name);
    if (isWeight && !use) {
      throw new UnsupportedError(
        `${file}: initialiser ${JSON.stringify(name)} (${canonical.name}) is not the weight input of a MatMul or Gemm node, so its layout is unknown (an optimised or fused graph? use the exported onnx/model.onnx or model.safetensors)`,
      );
    }
    if (t.data === null || !(t.data instanceof Float32Array)) {
      throw new UnsupportedError(
        `${file}: initialiser ${JSON.stringify(name)} (${canonical.name}) is ${t.dataType}; the encoder's weights must be FLOAT, FLOAT16 or DOUBLE (a quantised model? use the float32 onnx/model.onnx or model.safetensors)`,
      );
    }
    found.add(canonical.name, {
      stored: name,
      file,
      dims: t.dims,
      data: t.data,
      layout: isWeight ? use!.layout : undefined,
      layerless: canonical.layerless,
    });
  }
  return { found, files: [path.relative(dir, file)] };
}

/** Transpose a row-major [rows, cols] matrix. */
function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}

/** Pick the named tensors out of `found` with the shapes `config` implies. */
function assemble(
  dir: string,
  config: BertConfig,
  collected: Collector,
  source: BertWeights['source'],
): BertWeights {
  const found = collected.found;
  const { hiddenSize: H, intermediateSize: I, numLayers: L } = config;
  const where = source.files.map((f) => path.join(dir, f)).join(', ');
  const configFile = path.join(dir, CONFIG_JSON);
  const layerless = [...found.values()].filter((f) => f.layerless);
  if (layerless.length > 0 && L !== 1) {
    throw new CorruptFileError(
      layerless[0]!.file,
      `tensor ${JSON.stringify(layerless[0]!.stored)} names no layer, but ${configFile} has num_hidden_layers ${L}`,
    );
  }
  for (const name of found.keys()) {
    const m = /^encoder\.layer\.(\d+)\./.exec(name);
    if (m && Number(m[1]) >= L) {
      throw new CorruptFileError(
        found.get(name)!.file,
        `tensor ${JSON.stringify(found.get(name)!.stored)} belongs to layer ${m[1]}, but ${configFile} has num_hidden_layers ${L}`,
      );
    }
  }
  const missing = bertParameterNames(L).filter((n) => !found.has(n));
  if (missing.length > 0) {
    const shown =
      missing.slice(0, 4).join(', ') + (missing.length > 4 ? `, … (${missing.length} in all)` : '');
    const unmapped = collected.unmapped;
    const note =
      unmapped.length > 0
        ? ` (MatMul weights whose output is added to no recognised bias: ${unmapped.slice(0, 4).join(', ')}${unmapped.length > 4 ? ', …' : ''})`
        : '';
    throw new CorruptFileError(where, `missing encoder tensor(s) ${shown}${note}`);
  }
  const take = (name: string, shape: number[]): Float32Array => {
    const f = found.get(name);
    if (!f) throw new CorruptFileError(where, `missing encoder tensor ${name}`);
    const dense = f.layout !== undefined;
    // Dense weights are wanted [in, out]; stored [out, in] they are transposed.
    const stored = dense && f.layout === 'out-in' ? [shape[1]!, shape[0]!] : shape;
    if (f.dims.join(',') !== stored.join(',')) {
      throw new CorruptFileError(
        f.file,
        `tensor ${JSON.stringify(f.stored)} (${name}) has shape [${f.dims.join(', ')}], ${configFile} (hidden_size ${H}, intermediate_size ${I}, vocab_size ${config.vocabSize}, max_position_embeddings ${config.maxPositions}, type_vocab_size ${config.typeVocabSize}) needs [${stored.join(', ')}]`,
      );
    }
    return dense && f.layout === 'out-in' ? transpose(f.data, stored[0]!, stored[1]!) : f.data;
  };
  const dense = (prefix: string, inSize: number, outSize: number): DenseWeights => ({
    kernel: take(`${prefix}.weight`, [inSize, outSize]),
    bias: take(`${prefix}.bias`, [outSize]),
  });
  const norm = (prefix: string): NormWeights => ({
    gamma: take(`${prefix}.weight`, [H]),
    beta: take(`${prefix}.bias`, [H]),
  });
  const layers: BertLayerWeights[] = [];
  for (let i = 0; i < L; i++) {
    const p = `encoder.layer.${i}.`;
    layers.push({
      query: dense(`${p}attention.self.query`, H, H),
      key: dense(`${p}attention.self.key`, H, H),
      value: dense(`${p}attention.self.value`, H, H),
      attentionOutput: dense(`${p}attention.output.dense`, H, H),
      attentionNorm: norm(`${p}attention.output.LayerNorm`),
      intermediate: dense(`${p}intermediate.dense`, H, I),
      output: dense(`${p}output.dense`, I, H),
      outputNorm: norm(`${p}output.LayerNorm`),
    });
  }
  return {
    config,
    source,
    wordEmbeddings: take('embeddings.word_embeddings.weight', [config.vocabSize, H]),
    positionEmbeddings: take('embeddings.position_embeddings.weight', [config.maxPositions, H]),
    tokenTypeEmbeddings: take('embeddings.token_type_embeddings.weight', [config.typeVocabSize, H]),
    embeddingNorm: norm('embeddings.LayerNorm'),
    layers,
    pooler:
      found.has('pooler.dense.weight') || found.has('pooler.dense.bias') ? dense('pooler.dense', H, H) : null,
  };
}

/** Options of {@link readBertWeights}. */
export interface ReadBertWeightsOptions {
  /** Which file to read: 'auto' (default: model.safetensors if present, else the ONNX file), 'safetensors' or 'onnx'. */
  source?: BertWeightSource;
}

/** The weight file {@link readBertWeights} would read in `dir` (relative to it), or null. */
export async function findBertWeightFile(
  dir: string,
  source: BertWeightSource = 'auto',
): Promise<{ format: 'safetensors' | 'onnx'; file: string } | null> {
  const formats = source === 'auto' ? (['safetensors', 'onnx'] as const) : [source];
  for (const format of formats) {
    for (const rel of BERT_WEIGHT_FILES[format]) {
      if (await exists(path.join(dir, rel))) return { format, file: rel };
    }
  }
  return null;
}

/**
 * Read a BERT-style encoder's weights from a local model directory (see the module comment).
 * Throws InvalidArgumentError for a directory that does not exist or holds no weight file (naming
 * the files looked for), CorruptFileError naming the file for a missing or mis-shaped tensor or
 * config entry, UnsupportedError for an architecture the tfjs transformer cannot reproduce.
 */
export async function readBertWeights(
  dir: string,
  options: ReadBertWeightsOptions = {},
): Promise<BertWeights> {
  const source = options.source ?? 'auto';
  if (!(BERT_WEIGHT_SOURCES as readonly string[]).includes(source)) {
    throw new InvalidArgumentError('source', source, `one of ${BERT_WEIGHT_SOURCES.join(', ')}`);
  }
  if (!(await isDirectory(dir))) {
    throw new InvalidArgumentError(
      'model directory',
      dir,
      'a directory holding config.json and model.safetensors or onnx/model.onnx',
    );
  }
  const config = await readBertConfig(dir);
  const located = await findBertWeightFile(dir, source);
  if (!located) {
    const looked = (
      source === 'auto'
        ? [...BERT_WEIGHT_FILES.safetensors, ...BERT_WEIGHT_FILES.onnx]
        : BERT_WEIGHT_FILES[source]
    ).join(', ');
    const torch = (await exists(path.join(dir, 'pytorch_model.bin')))
      ? ' (pytorch_model.bin is a pickle entk does not read: convert it to model.safetensors)'
      : '';
    throw new InvalidArgumentError('model directory', dir, `a directory holding one of ${looked}${torch}`);
  }
  const file = path.join(dir, located.file);
  const stat = await fs.stat(file);
  if (!stat.isFile()) throw new CorruptFileError(file, 'not a file');
  const { found, files } =
    located.format === 'onnx' ? await collectOnnx(dir, file) : await collectSafetensors(dir, file);
  return assemble(dir, config, found, { format: located.format, files });
}
