/**
 * Generate `models/tiny-bert/`: a tiny, randomly initialised BERT-style encoder that loads through
 * the real transformers.js `pipeline('feature-extraction', dir)` (used by the tests and the offline
 * text demo; it is NOT a trained model — its features are a seeded random transformer's).
 *
 *   node bin/run-ts.js models/generate-tiny-bert.ts [outDir]      (default: models/tiny-bert)
 *
 * Writes config.json, tokenizer.json (HF tokenizers WordPiece), tokenizer_config.json and
 * onnx/model.onnx (opset 17):
 *   inputs  input_ids, attention_mask, token_type_ids   int64 [batch, sequence]
 *   output  last_hidden_state                           float32 [batch, sequence, hidden]
 * Architecture (one post-LN encoder layer, one attention head):
 *   h0 = LN0(word[ids] + type[tt] + pos[0..s))
 *   a  = softmax(((h0 Wq + bq)(h0 Wk + bk)ᵀ) / sqrt(H) + (1 − mask)·(−1e4)) (h0 Wv + bv)
 *   h1 = LN1(h0 + a Wo + bo)
 *   h2 = LN2(h1 + gelu(h1 W1 + b1) W2 + b2),  gelu(x) = x·(1 + erf(x/√2))/2
 * Weight matrices are stored [in, out] (x @ W). Deterministic: same bytes on every run and
 * platform (integer RNG, no transcendental functions in weight generation, fixed field order).
 * Dependency-free (node built-ins only).
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  DataType,
  encodeModel,
  floatTensor,
  int64Tensor,
  type OnnxInitializer,
  type OnnxNode,
  REPO_ROOT,
  WeightRng,
  writeAndList,
  writeModelFiles,
} from './onnx-writer.js';

export { REPO_ROOT };

/** Architecture hyper-parameters of the tiny model. */
export const TINY_BERT = {
  hidden: 32,
  intermediate: 64,
  maxPositions: 64,
  typeVocab: 2,
  layerNormEps: 1e-12,
  maskFill: -10000,
  seed: 20240607,
} as const;

/** Special tokens, in id order (ids 0..4). */
export const SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] as const;

export const PUNCTUATION = ['.', ',', '!', '?', "'", '"', '-', ':', ';', '(', ')', '/', '&', '%'];
export const SUFFIXES = ['##s', '##es', '##ed', '##ing', '##er', '##ers', '##est', '##ly', '##y', "##'s"];

/** Parse a CSV (RFC 4180 quoting) into rows of fields. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      if (row.some((f) => f !== '')) rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  row.push(field);
  if (row.some((f) => f !== '')) rows.push(row);
  return rows;
}

/**
 * The vocabulary: special tokens, punctuation, digits, single letters and ##letters (so every
 * lower-case ASCII word tokenises without [UNK]), common suffixes, then every word of the text
 * column of `csvText` (lower-cased), by descending frequency then alphabetically.
 */
export function buildVocab(csvText: string, textColumn = 'text'): string[] {
  const rows = parseCsv(csvText);
  const header = rows[0] ?? [];
  const col = header.indexOf(textColumn);
  if (col < 0) throw new Error(`dataset has no column "${textColumn}" (columns: ${header.join(', ')})`);
  const counts = new Map<string, number>();
  for (const row of rows.slice(1)) {
    for (const w of (row[col] ?? '').toLowerCase().match(/[a-z0-9]+/g) ?? []) {
      counts.set(w, (counts.get(w) ?? 0) + 1);
    }
  }
  const letters = 'abcdefghijklmnopqrstuvwxyz'.split('');
  const listed = [
    ...SPECIAL_TOKENS,
    ...PUNCTUATION,
    ...'0123456789'.split(''),
    ...letters,
    ...letters.map((l) => `##${l}`),
    ...'0123456789'.split('').map((d) => `##${d}`),
    ...SUFFIXES,
  ];
  const base = [...new Set(listed)];
  const seen = new Set(base);
  const words = [...counts.entries()]
    .filter(([w]) => !seen.has(w))
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([w]) => w);
  return [...base, ...words];
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Named float32 weights of the tiny model (matrices [in, out], row-major). */
export interface TinyBertWeights {
  wordEmbeddings: Float32Array; // [V, H]
  positionEmbeddings: Float32Array; // [P, H]
  tokenTypeEmbeddings: Float32Array; // [2, H]
  ln0Gamma: Float32Array;
  ln0Beta: Float32Array;
  wq: Float32Array; // [H, H]
  bq: Float32Array;
  wk: Float32Array;
  bk: Float32Array;
  wv: Float32Array;
  bv: Float32Array;
  wo: Float32Array;
  bo: Float32Array;
  ln1Gamma: Float32Array;
  ln1Beta: Float32Array;
  w1: Float32Array; // [H, I]
  b1: Float32Array;
  w2: Float32Array; // [I, H]
  b2: Float32Array;
  ln2Gamma: Float32Array;
  ln2Beta: Float32Array;
}

/** Deterministic weights for a vocabulary of `vocabSize` tokens (each tensor its own seeded stream). */
export function tinyBertWeights(vocabSize: number): TinyBertWeights {
  const { hidden: H, intermediate: I, maxPositions: P, typeVocab: T, seed } = TINY_BERT;
  const draw = (name: string, n: number, std: number, mean = 0): Float32Array => {
    const rng = new WeightRng((seed ^ fnv1a(name)) >>> 0);
    const out = rng.normalArray(n, std);
    for (let i = 0; i < n; i++) out[i] = out[i]! + mean;
    return out;
  };
  const w = 1 / Math.sqrt(H);
  return {
    wordEmbeddings: draw('word', vocabSize * H, 1),
    positionEmbeddings: draw('position', P * H, 0.2),
    tokenTypeEmbeddings: draw('token_type', T * H, 0.2),
    ln0Gamma: draw('ln0.gamma', H, 0.1, 1),
    ln0Beta: draw('ln0.beta', H, 0.1),
    wq: draw('q.w', H * H, w),
    bq: draw('q.b', H, 0.05),
    wk: draw('k.w', H * H, w),
    bk: draw('k.b', H, 0.05),
    wv: draw('v.w', H * H, w),
    bv: draw('v.b', H, 0.05),
    wo: draw('o.w', H * H, w),
    bo: draw('o.b', H, 0.05),
    ln1Gamma: draw('ln1.gamma', H, 0.1, 1),
    ln1Beta: draw('ln1.beta', H, 0.1),
    w1: draw('ffn1.w', H * I, w),
    b1: draw('ffn1.b', I, 0.05),
    w2: draw('ffn2.w', I * H, 1 / Math.sqrt(I)),
    b2: draw('ffn2.b', H, 0.05),
    ln2Gamma: draw('ln2.gamma', H, 0.1, 1),
    ln2Beta: draw('ln2.beta', H, 0.1),
  };
}

/** The ONNX graph bytes of the tiny encoder for a vocabulary of `vocabSize` tokens. */
export function tinyBertOnnx(vocabSize: number): Uint8Array {
  const { hidden: H, intermediate: I, maxPositions: P, typeVocab: T } = TINY_BERT;
  const W = tinyBertWeights(vocabSize);
  const f = (name: string, dims: number[], data: Float32Array) => floatTensor(name, dims, data);
  const initializers: OnnxInitializer[] = [
    f('embeddings.word_embeddings.weight', [vocabSize, H], W.wordEmbeddings),
    f('embeddings.position_embeddings.weight', [P, H], W.positionEmbeddings),
    f('embeddings.token_type_embeddings.weight', [T, H], W.tokenTypeEmbeddings),
    f('embeddings.LayerNorm.weight', [H], W.ln0Gamma),
    f('embeddings.LayerNorm.bias', [H], W.ln0Beta),
    f('attention.query.weight', [H, H], W.wq),
    f('attention.query.bias', [H], W.bq),
    f('attention.key.weight', [H, H], W.wk),
    f('attention.key.bias', [H], W.bk),
    f('attention.value.weight', [H, H], W.wv),
    f('attention.value.bias', [H], W.bv),
    f('attention.output.weight', [H, H], W.wo),
    f('attention.output.bias', [H], W.bo),
    f('attention.LayerNorm.weight', [H], W.ln1Gamma),
    f('attention.LayerNorm.bias', [H], W.ln1Beta),
    f('intermediate.weight', [H, I], W.w1),
    f('intermediate.bias', [I], W.b1),
    f('output.weight', [I, H], W.w2),
    f('output.bias', [H], W.b2),
    f('output.LayerNorm.weight', [H], W.ln2Gamma),
    f('output.LayerNorm.bias', [H], W.ln2Beta),
    int64Tensor('const.zero', [], [0]),
    int64Tensor('const.one', [], [1]),
    int64Tensor('const.axes1', [1], [1]),
    f('const.scale', [], Float32Array.of(1 / Math.sqrt(H))),
    f('const.onef', [], Float32Array.of(1)),
    f('const.half', [], Float32Array.of(0.5)),
    f('const.sqrt2', [], Float32Array.of(Math.SQRT2)),
    f('const.maskfill', [], Float32Array.of(TINY_BERT.maskFill)),
  ];
  const eps = { epsilon: { float: TINY_BERT.layerNormEps }, axis: { int: -1 } };
  const n = (
    op: string,
    inputs: string[],
    outputs: string[],
    attributes?: OnnxNode['attributes'],
  ): OnnxNode => ({
    op,
    inputs,
    outputs,
    attributes,
  });
  const dense = (x: string, prefix: string, out: string): OnnxNode[] => [
    n('MatMul', [x, `${prefix}.weight`], [`${out}.mm`]),
    n('Add', [`${out}.mm`, `${prefix}.bias`], [out]),
  ];
  const nodes: OnnxNode[] = [
    // Embeddings.
    n('Gather', ['embeddings.word_embeddings.weight', 'input_ids'], ['emb.word'], { axis: { int: 0 } }),
    n('Gather', ['embeddings.token_type_embeddings.weight', 'token_type_ids'], ['emb.type'], {
      axis: { int: 0 },
    }),
    n('Shape', ['input_ids'], ['ids.shape']),
    n('Gather', ['ids.shape', 'const.one'], ['seq.len'], { axis: { int: 0 } }),
    n('Range', ['const.zero', 'seq.len', 'const.one'], ['position_ids']),
    n('Gather', ['embeddings.position_embeddings.weight', 'position_ids'], ['emb.pos'], { axis: { int: 0 } }),
    n('Add', ['emb.word', 'emb.type'], ['emb.sum1']),
    n('Add', ['emb.sum1', 'emb.pos'], ['emb.sum']),
    n(
      'LayerNormalization',
      ['emb.sum', 'embeddings.LayerNorm.weight', 'embeddings.LayerNorm.bias'],
      ['h0'],
      eps,
    ),
    // Self-attention (one head).
    ...dense('h0', 'attention.query', 'q'),
    ...dense('h0', 'attention.key', 'k'),
    ...dense('h0', 'attention.value', 'v'),
    n('Transpose', ['k'], ['k.t'], { perm: { ints: [0, 2, 1] } }),
    n('MatMul', ['q', 'k.t'], ['scores.raw']),
    n('Mul', ['scores.raw', 'const.scale'], ['scores.scaled']),
    n('Cast', ['attention_mask'], ['mask.f'], { to: { int: DataType.FLOAT } }),
    n('Sub', ['const.onef', 'mask.f'], ['mask.inv']),
    n('Mul', ['mask.inv', 'const.maskfill'], ['mask.add2']),
    n('Unsqueeze', ['mask.add2', 'const.axes1'], ['mask.add']),
    n('Add', ['scores.scaled', 'mask.add'], ['scores']),
    n('Softmax', ['scores'], ['probs'], { axis: { int: -1 } }),
    n('MatMul', ['probs', 'v'], ['context']),
    ...dense('context', 'attention.output', 'attn.out'),
    n('Add', ['attn.out', 'h0'], ['attn.res']),
    n(
      'LayerNormalization',
      ['attn.res', 'attention.LayerNorm.weight', 'attention.LayerNorm.bias'],
      ['h1'],
      eps,
    ),
    // Feed-forward with erf GELU.
    ...dense('h1', 'intermediate', 'ffn.pre'),
    n('Div', ['ffn.pre', 'const.sqrt2'], ['gelu.div']),
    n('Erf', ['gelu.div'], ['gelu.erf']),
    n('Add', ['gelu.erf', 'const.onef'], ['gelu.add']),
    n('Mul', ['ffn.pre', 'gelu.add'], ['gelu.mul']),
    n('Mul', ['gelu.mul', 'const.half'], ['ffn.act']),
    ...dense('ffn.act', 'output', 'ffn.out'),
    n('Add', ['ffn.out', 'h1'], ['ffn.res']),
    n(
      'LayerNormalization',
      ['ffn.res', 'output.LayerNorm.weight', 'output.LayerNorm.bias'],
      ['last_hidden_state'],
      eps,
    ),
  ];
  const io = (name: string) => ({ name, elemType: DataType.INT64, shape: ['batch', 'sequence'] });
  return encodeModel({
    name: 'tiny-bert',
    producer: 'entk models/generate-tiny-bert.ts',
    docString: 'Tiny randomly initialised BERT-style encoder for tests (not trained).',
    irVersion: 8,
    opset: 17,
    nodes,
    initializers,
    inputs: [io('input_ids'), io('attention_mask'), io('token_type_ids')],
    outputs: [{ name: 'last_hidden_state', elemType: DataType.FLOAT, shape: ['batch', 'sequence', H] }],
  });
}

export function json(value: unknown): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`);
}

/** HF tokenizer_config.json of a lower-casing BertTokenizer with the usual special tokens. */
export function tokenizerConfig(modelMaxLength: number): unknown {
  return {
    tokenizer_class: 'BertTokenizer',
    do_lower_case: true,
    model_max_length: modelMaxLength,
    clean_up_tokenization_spaces: true,
    strip_accents: null,
    tokenize_chinese_chars: true,
    cls_token: '[CLS]',
    sep_token: '[SEP]',
    pad_token: '[PAD]',
    unk_token: '[UNK]',
    mask_token: '[MASK]',
  };
}

/** HF tokenizers JSON for a BERT WordPiece tokenizer over `vocab` (ids = positions). */
export function tokenizerJson(vocab: string[]): unknown {
  const id = (t: string) => vocab.indexOf(t);
  const special = (t: string) => ({ id: t, ids: [id(t)], tokens: [t] });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((t) => ({
      id: id(t),
      content: t,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: {
      type: 'BertNormalizer',
      clean_text: true,
      handle_chinese_chars: true,
      strip_accents: null,
      lowercase: true,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: { '[CLS]': special('[CLS]'), '[SEP]': special('[SEP]') },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(vocab.map((t, i) => [t, i])),
    },
  };
}

/** Every file of the tiny model, by path relative to the model directory. */
export function generateTinyBert(csvText: string): Map<string, Uint8Array> {
  const vocab = buildVocab(csvText);
  const { hidden: H, intermediate: I, maxPositions: P, typeVocab: T } = TINY_BERT;
  const files = new Map<string, Uint8Array>();
  files.set(
    'config.json',
    json({
      _name_or_path: 'entk/tiny-bert',
      architectures: ['BertModel'],
      model_type: 'bert',
      vocab_size: vocab.length,
      hidden_size: H,
      num_hidden_layers: 1,
      num_attention_heads: 1,
      intermediate_size: I,
      hidden_act: 'gelu',
      max_position_embeddings: P,
      type_vocab_size: T,
      layer_norm_eps: TINY_BERT.layerNormEps,
      pad_token_id: 0,
      initializer_range: 0.02,
      entk_note: 'Randomly initialised (seeded) by models/generate-tiny-bert.ts for tests; not trained.',
    }),
  );
  files.set('tokenizer.json', json(tokenizerJson(vocab)));
  files.set('tokenizer_config.json', json(tokenizerConfig(P)));
  files.set('onnx/model.onnx', tinyBertOnnx(vocab.length));
  return files;
}

/** The dataset the vocabulary is built from. */
export const TINY_BERT_DATASET = join(REPO_ROOT, 'data', 'text', 'topics.csv');

/** Write the model into `outDir` (built in a temporary sibling, then swapped in). */
export function writeTinyBert(outDir: string, csvText = readFileSync(TINY_BERT_DATASET, 'utf8')): void {
  writeModelFiles(outDir, generateTinyBert(csvText));
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const outDir = resolve(process.argv[2] ?? join(REPO_ROOT, 'models', 'tiny-bert'));
  writeAndList(outDir, generateTinyBert(readFileSync(TINY_BERT_DATASET, 'utf8')));
}
