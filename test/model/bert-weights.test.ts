import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TINY_BERT, tinyBertWeights } from '../../models/generate-tiny-bert.js';
import { encodeModel, floatTensor, int64Tensor, type OnnxInitializer } from '../../models/onnx-writer.js';
import { CorruptFileError, InvalidArgumentError, UnsupportedError } from '../../src/errors.js';
import { readSafetensors, writeSafetensors } from '../../src/io/index.js';
import { type BertWeights, canonicalBertName, readBertWeights } from '../../src/model/index.js';
import { TINY_BERT_DIR } from '../embed/reference.js';
import { tempDir } from '../util/temp-dir.js';
import { FIXTURE, fixtureConfig, fixtureWeights, writeFixtureDir } from './bert-fixture.js';
import { bertForward64, onnxOutputs, padBatch, relativeMaxDiff } from './bert-reference.js';

const dir = tempDir('bert-weights');

function transposed(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}

/** Every array of a BertWeights, flattened in a fixed order. */
function arrays(w: BertWeights): Float32Array[] {
  const out = [w.wordEmbeddings, w.positionEmbeddings, w.tokenTypeEmbeddings];
  out.push(w.embeddingNorm.gamma, w.embeddingNorm.beta);
  for (const l of w.layers) {
    for (const d of [l.query, l.key, l.value, l.attentionOutput, l.intermediate, l.output])
      out.push(d.kernel, d.bias);
    for (const n of [l.attentionNorm, l.outputNorm]) out.push(n.gamma, n.beta);
  }
  return out;
}

describe('canonicalBertName', () => {
  it('maps Hugging Face names (with or without bert.), TF gamma/beta and entk short names; ignores the rest', () => {
    const cases: Array<[string, string | null, boolean?]> = [
      ['bert.embeddings.word_embeddings.weight', 'embeddings.word_embeddings.weight'],
      ['embeddings.LayerNorm.gamma', 'embeddings.LayerNorm.weight'],
      ['encoder.layer.3.attention.self.key.bias', 'encoder.layer.3.attention.self.key.bias'],
      [
        'bert.encoder.layer.11.attention.output.dense.weight',
        'encoder.layer.11.attention.output.dense.weight',
      ],
      ['encoder.layer.0.attention.output.LayerNorm.beta', 'encoder.layer.0.attention.output.LayerNorm.bias'],
      ['encoder.layer.2.intermediate.dense.weight', 'encoder.layer.2.intermediate.dense.weight'],
      ['encoder.layer.2.output.dense.bias', 'encoder.layer.2.output.dense.bias'],
      ['encoder.layer.2.output.LayerNorm.weight', 'encoder.layer.2.output.LayerNorm.weight'],
      ['attention.query.weight', 'encoder.layer.0.attention.self.query.weight', true],
      ['attention.output.bias', 'encoder.layer.0.attention.output.dense.bias', true],
      ['attention.LayerNorm.weight', 'encoder.layer.0.attention.output.LayerNorm.weight', true],
      ['intermediate.weight', 'encoder.layer.0.intermediate.dense.weight', true],
      ['output.weight', 'encoder.layer.0.output.dense.weight', true],
      ['output.LayerNorm.bias', 'encoder.layer.0.output.LayerNorm.bias', true],
      ['bert.pooler.dense.weight', 'pooler.dense.weight'],
      ['cls.predictions.bias', null],
      ['embeddings.position_ids', null],
      ['onnx::MatMul_123', null],
    ];
    for (const [name, canonical, layerless] of cases) {
      const c = canonicalBertName(name);
      expect(c?.name ?? null, name).toBe(canonical);
      if (c) expect(c.layerless, name).toBe(layerless ?? false);
    }
  });
});

describe('readBertWeights', () => {
  it("reads models/tiny-bert's ONNX file: exactly the generator's weights (kernels [in, out])", async () => {
    const w = await readBertWeights(TINY_BERT_DIR);
    expect(w.source).toEqual({ format: 'onnx', files: ['onnx/model.onnx'] });
    expect(w.config).toMatchObject({ hiddenSize: 32, numLayers: 1, numHeads: 1, intermediateSize: 64 });
    expect(w.config.layerNormEps).toBe(TINY_BERT.layerNormEps);
    const g = tinyBertWeights(w.config.vocabSize);
    const l = w.layers[0]!;
    const pairs: Array<[Float32Array, Float32Array]> = [
      [w.wordEmbeddings, g.wordEmbeddings],
      [w.positionEmbeddings, g.positionEmbeddings],
      [w.tokenTypeEmbeddings, g.tokenTypeEmbeddings],
      [w.embeddingNorm.gamma, g.ln0Gamma],
      [w.embeddingNorm.beta, g.ln0Beta],
      [l.query.kernel, g.wq],
      [l.query.bias, g.bq],
      [l.key.kernel, g.wk],
      [l.value.kernel, g.wv],
      [l.attentionOutput.kernel, g.wo],
      [l.attentionOutput.bias, g.bo],
      [l.attentionNorm.gamma, g.ln1Gamma],
      [l.intermediate.kernel, g.w1],
      [l.intermediate.bias, g.b1],
      [l.output.kernel, g.w2],
      [l.outputNorm.beta, g.ln2Beta],
    ];
    for (const [a, b] of pairs) expect(a).toEqual(b);
    expect(w.pooler).toBeNull();
  });

  it('a 2-layer, 4-head encoder: anonymous ONNX MatMul weights, Transpose-fed weights and a bert.-prefixed safetensors checkpoint give the same weights', async () => {
    const torch = fixtureWeights();
    const anonymous = await readBertWeights(await writeFixtureDir(path.join(dir, 'anon')));
    const viaTranspose = await readBertWeights(
      await writeFixtureDir(path.join(dir, 'transposed'), { onnx: { transposed: true } }),
    );
    const both = await writeFixtureDir(path.join(dir, 'both'), { onnx: true, safetensors: true });
    const auto = await readBertWeights(both);
    const onnx = await readBertWeights(both, { source: 'onnx' });
    expect(auto.source).toEqual({ format: 'safetensors', files: ['model.safetensors'] });
    expect(onnx.source.format).toBe('onnx');
    expect(anonymous.layers).toHaveLength(FIXTURE.layers);
    // Reference: the torch tensors, Linear weights transposed to [in, out].
    const { hidden: H, intermediate: I } = FIXTURE;
    const l1 = 'encoder.layer.1.';
    const expected: Array<[(w: BertWeights) => Float32Array, Float32Array]> = [
      [(w) => w.wordEmbeddings, torch.get('embeddings.word_embeddings.weight')!.data],
      [
        (w) => w.layers[1]!.query.kernel,
        transposed(torch.get(`${l1}attention.self.query.weight`)!.data, H, H),
      ],
      [(w) => w.layers[1]!.key.bias, torch.get(`${l1}attention.self.key.bias`)!.data],
      [
        (w) => w.layers[1]!.intermediate.kernel,
        transposed(torch.get(`${l1}intermediate.dense.weight`)!.data, I, H),
      ],
      [(w) => w.layers[1]!.output.kernel, transposed(torch.get(`${l1}output.dense.weight`)!.data, H, I)],
      [
        (w) => w.layers[0]!.attentionNorm.gamma,
        torch.get('encoder.layer.0.attention.output.LayerNorm.weight')!.data,
      ],
    ];
    for (const w of [anonymous, viaTranspose, auto, onnx]) {
      for (const [get, want] of expected) expect(get(w)).toEqual(want);
      expect(arrays(w)).toEqual(arrays(anonymous));
    }
  });

  it("a float64 forward pass over the imported weights reproduces onnxruntime's last_hidden_state and pooler_output (padding, mixed lengths, token types; ≤ 1e-5 relative)", async () => {
    const batch = padBatch(
      [
        [2, 10, 11, 12, 13, 3],
        [2, 14, 3],
        [2, 15, 16, 17, 18, 19, 20, 3, 21, 22, 3],
        [2, 23, 24, 3],
      ],
      [
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1],
        [0, 1, 1, 1],
      ],
    );
    expect(batch.mask.flat()).toContain(0);
    const fixture = await writeFixtureDir(path.join(dir, 'forward'), { onnx: true, safetensors: true });
    for (const [modelDir, source] of [
      [TINY_BERT_DIR, 'onnx'],
      [fixture, 'onnx'],
      [fixture, 'safetensors'],
    ] as const) {
      const w = await readBertWeights(modelDir, { source });
      const ort = await onnxOutputs(modelDir, batch);
      const states = batch.ids.map((ids, n) => bertForward64(w, ids, batch.mask[n]!, batch.types[n]!));
      const ours = states.flatMap((rows) => rows.flatMap((row) => [...row]));
      const rel = relativeMaxDiff(ours, ort.hidden, batch, w.config.hiddenSize);
      expect(rel, `${modelDir} ${source}`).toBeLessThan(1e-5); // measured 2.5e-7 (tiny-bert), 2.0e-6 (fixture)
      expect(ort.pooler === null).toBe(modelDir === TINY_BERT_DIR);
      if (ort.pooler) {
        // pooler_output = tanh(h_[CLS] W + b)
        const H = w.config.hiddenSize;
        let diff = 0;
        states.forEach((rows, n) => {
          for (let o = 0; o < H; o++) {
            let z = w.pooler!.bias[o]!;
            for (let i = 0; i < H; i++) z += rows[0]![i]! * w.pooler!.kernel[i * H + o]!;
            diff = Math.max(diff, Math.abs(Math.tanh(z) - ort.pooler![n * H + o]!));
          }
        });
        expect(diff).toBeLessThan(1e-5);
      }
    }
  });
});

describe('readBertWeights refuses what it cannot import, naming the file and the problem', () => {
  const errorOf = async (p: Promise<unknown>) => p.then(() => null).catch((e: unknown) => e as Error);

  it('a missing tensor, a wrong shape, an extra layer and layer-less names in a deep model', async () => {
    const torch = fixtureWeights();
    const base = await writeFixtureDir(path.join(dir, 'bad-st'), { safetensors: true });
    const file = path.join(base, 'model.safetensors');
    const { tensors } = await readSafetensors(file);
    const rewrite = async (change: (t: typeof tensors) => void) => {
      const copy = { ...tensors };
      change(copy);
      await writeSafetensors(file, copy);
    };
    await rewrite((t) => delete t['bert.encoder.layer.1.attention.self.value.weight']);
    let e = await errorOf(readBertWeights(base));
    expect(e).toBeInstanceOf(CorruptFileError);
    expect(e!.message).toContain(file);
    expect(e!.message).toContain('missing encoder tensor(s) encoder.layer.1.attention.self.value.weight');

    await rewrite((t) => {
      t['bert.encoder.layer.0.intermediate.dense.weight'] = {
        dtype: 'float32',
        shape: [FIXTURE.hidden, FIXTURE.intermediate],
        data: torch.get('encoder.layer.0.intermediate.dense.weight')!.data,
      };
    });
    e = await errorOf(readBertWeights(base));
    expect(e).toBeInstanceOf(CorruptFileError);
    expect(e!.message).toMatch(
      /tensor "bert\.encoder\.layer\.0\.intermediate\.dense\.weight" \(encoder\.layer\.0\.intermediate\.dense\.weight\) has shape \[16, 32\], .*config\.json .* needs \[32, 16\]/,
    );

    await rewrite(() => undefined);
    writeFileSync(path.join(base, 'config.json'), JSON.stringify(fixtureConfig({ num_hidden_layers: 1 })));
    e = await errorOf(readBertWeights(base));
    expect(e!.message).toMatch(/belongs to layer 1, but .*config\.json has num_hidden_layers 1/);

    // entk's short (layer-less) names are for one-layer models only; two names for one parameter are refused.
    writeFileSync(path.join(base, 'config.json'), JSON.stringify(fixtureConfig()));
    const query = 'bert.encoder.layer.0.attention.self.query.weight';
    await rewrite((t) => {
      t['attention.query.weight'] = t[query]!;
      delete t[query];
    });
    e = await errorOf(readBertWeights(base));
    expect(e!.message).toMatch(
      /tensor "attention\.query\.weight" names no layer, but .*config\.json has num_hidden_layers 2/,
    );
    await rewrite((t) => {
      t['attention.query.weight'] = t[query]!;
    });
    e = await errorOf(readBertWeights(base));
    expect(e!.message).toMatch(
      /both "(attention\.query\.weight|bert\.[^"]+)" and "(attention\.query\.weight|bert\.[^"]+)" are encoder\.layer\.0\.attention\.self\.query\.weight/,
    );
  });

  it('an ONNX graph whose MatMul weights cannot be named lists them with the missing tensors', async () => {
    // The optimum-style graph with anonymous biases too: the anonymous weights cannot be named.
    const base = await writeFixtureDir(path.join(dir, 'bad-onnx'), { onnx: { anonymousBiases: true } });
    const e = await errorOf(readBertWeights(base));
    expect(e).toBeInstanceOf(CorruptFileError);
    expect(e!.message).toContain(path.join(base, 'onnx', 'model.onnx'));
    expect(e!.message).toMatch(
      /missing encoder tensor\(s\) encoder\.layer\.0\.attention\.self\.query\.weight, .* \(MatMul weights whose output is added to no recognised bias: onnx::MatMul_100, onnx::MatMul_101, /,
    );
  });

  it('ONNX weights that are not float (a quantised graph) or not fed to a MatMul (a fused graph)', async () => {
    const graph = (initializers: OnnxInitializer[]) =>
      encodeModel({
        name: 'g',
        producer: 'test',
        irVersion: 8,
        opset: 17,
        nodes: [],
        initializers,
        inputs: [],
        outputs: [],
      });
    const cases: Array<[OnnxInitializer, RegExp]> = [
      [
        int64Tensor('embeddings.word_embeddings.weight', [2, 2], [1, 2, 3, 4]),
        /initialiser "embeddings\.word_embeddings\.weight" \(embeddings\.word_embeddings\.weight\) is INT64; the encoder's weights must be FLOAT, FLOAT16 or DOUBLE \(a quantised model\?/,
      ],
      [
        floatTensor('encoder.layer.0.attention.self.query.weight', [2, 2], new Float32Array(4)),
        /initialiser "encoder\.layer\.0\.attention\.self\.query\.weight" .* is not the weight input of a MatMul or Gemm node, so its layout is unknown/,
      ],
    ];
    for (const [k, [tensor, message]] of cases.entries()) {
      const base = await writeFixtureDir(path.join(dir, `onnx-kind-${k}`), { onnx: false });
      mkdirSync(path.join(base, 'onnx'));
      writeFileSync(path.join(base, 'onnx', 'model.onnx'), graph([tensor]));
      const e = await errorOf(readBertWeights(base));
      expect(e).toBeInstanceOf(UnsupportedError);
      expect(e!.message).toMatch(message);
      expect(e!.message).toContain(path.join(base, 'onnx', 'model.onnx'));
    }
  });

  it('unsupported configurations: activation, model type, positions', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ hidden_act: 'gelu_new' }, /hidden_act "gelu_new" is not supported \(expected "gelu"/],
      [{ hidden_act: 'relu' }, /hidden_act "relu" is not supported/],
      [{ model_type: 'roberta' }, /model_type "roberta" is not supported/],
      [
        { position_embedding_type: 'relative_key' },
        /position_embedding_type "relative_key" is not supported/,
      ],
    ];
    for (const [config, message] of cases) {
      const base = await writeFixtureDir(path.join(dir, `unsupported-${Object.values(config)[0]}`), {
        onnx: true,
        config,
      });
      const e = await errorOf(readBertWeights(base));
      expect(e).toBeInstanceOf(UnsupportedError);
      expect(e!.message).toMatch(message);
      expect(e!.message).toContain(path.join(base, 'config.json'));
    }
    const bad = await writeFixtureDir(path.join(dir, 'bad-heads'), {
      onnx: true,
      config: { num_attention_heads: 3 },
    });
    const e = await errorOf(readBertWeights(bad));
    expect(e).toBeInstanceOf(CorruptFileError);
    expect(e!.message).toContain('hidden_size 16 is not a multiple of num_attention_heads 3');
  });

  it('paths read from files stay inside the model directory; a directory without weights names the files it needs', async () => {
    const base = await writeFixtureDir(path.join(dir, 'escape'), { safetensors: true });
    writeFileSync(
      path.join(base, 'model.safetensors.index.json'),
      JSON.stringify({ weight_map: { 'bert.embeddings.word_embeddings.weight': '../outside.safetensors' } }),
    );
    rmSync(path.join(base, 'model.safetensors'));
    let e = await errorOf(readBertWeights(base));
    expect(e).toBeInstanceOf(CorruptFileError);
    expect(e!.message).toContain('weight_map shard "../outside.safetensors" has a \'..\' segment');

    const empty = path.join(dir, 'empty');
    mkdirSync(empty, { recursive: true });
    writeFileSync(path.join(empty, 'config.json'), JSON.stringify(fixtureConfig()));
    writeFileSync(path.join(empty, 'pytorch_model.bin'), 'not read');
    e = await errorOf(readBertWeights(empty));
    expect(e).toBeInstanceOf(InvalidArgumentError);
    expect(e!.message).toContain(
      'model.safetensors, model.safetensors.index.json, onnx/model.onnx, model.onnx (pytorch_model.bin is a pickle',
    );
    e = await errorOf(readBertWeights(path.join(dir, 'nowhere')));
    expect(e).toBeInstanceOf(InvalidArgumentError);
    e = await errorOf(readBertWeights(base, { source: 'onnx' }));
    expect(e!.message).toContain('a directory holding one of onnx/model.onnx, model.onnx');
  });
});
