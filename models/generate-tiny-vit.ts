import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  DataType,
  encodeModel,
  floatTensor,
  int64Tensor,
  type OnnxNode,
  REPO_ROOT,
  WeightRng,
  writeAndList,
  writeModelFiles,
} from './onnx-writer.js';

/** Architecture hyper-parameters of the tiny image model. */
export const TINY_VIT = {
  imageSize: 16,
  patchSize: 4,
  channels: 3,
  hidden: 16,
  layerNormEps: 1e-12,
  seed: 20240608,
} as const;

/** Deterministic weights: patch kernel [H, C, p, p], patch bias [H], cls [H], pos [T, H], LN. */
export function tinyVitWeights() {
  const { hidden: H, channels: C, patchSize: p, imageSize: S, seed } = TINY_VIT;
  const tokens = (S / p) ** 2 + 1;
  let stream = 0;
  const draw = (n: number, std: number, mean = 0) => {
    const out = new WeightRng((seed + 7919 * ++stream) >>> 0).normalArray(n, std);
    for (let i = 0; i < n; i++) out[i] = out[i]! + mean;
    return out;
  };
  return {
    tokens,
    patchKernel: draw(H * C * p * p, 1 / Math.sqrt(C * p * p)),
    patchBias: draw(H, 0.05),
    cls: draw(H, 1),
    pos: draw(tokens * H, 0.2),
    lnGamma: draw(H, 0.1, 1),
    lnBeta: draw(H, 0.1),
  };
}

export function tinyVitOnnx(): Uint8Array {
  const { hidden: H, channels: C, patchSize: p, imageSize: S } = TINY_VIT;
  const W = tinyVitWeights();
  const nodes: OnnxNode[] = [
    {
      op: 'Conv',
      inputs: ['pixel_values', 'patch.weight', 'patch.bias'],
      outputs: ['patch.conv'],
      attributes: { kernel_shape: { ints: [p, p] }, strides: { ints: [p, p] } },
    },
    { op: 'Reshape', inputs: ['patch.conv', 'const.flatshape'], outputs: ['patch.flat'] },
    {
      op: 'Transpose',
      inputs: ['patch.flat'],
      outputs: ['patch.tokens'],
      attributes: { perm: { ints: [0, 2, 1] } },
    },
    { op: 'Shape', inputs: ['pixel_values'], outputs: ['pv.shape'] },
    {
      op: 'Gather',
      inputs: ['pv.shape', 'const.zero1'],
      outputs: ['batch'],
      attributes: { axis: { int: 0 } },
    },
    {
      op: 'Concat',
      inputs: ['batch', 'const.clsdims'],
      outputs: ['cls.shape'],
      attributes: { axis: { int: 0 } },
    },
    { op: 'Expand', inputs: ['cls.token', 'cls.shape'], outputs: ['cls.batch'] },
    {
      op: 'Concat',
      inputs: ['cls.batch', 'patch.tokens'],
      outputs: ['tokens'],
      attributes: { axis: { int: 1 } },
    },
    { op: 'Add', inputs: ['tokens', 'pos.embeddings'], outputs: ['tokens.pos'] },
    {
      op: 'LayerNormalization',
      inputs: ['tokens.pos', 'ln.weight', 'ln.bias'],
      outputs: ['last_hidden_state'],
      attributes: { epsilon: { float: TINY_VIT.layerNormEps }, axis: { int: -1 } },
    },
  ];
  return encodeModel({
    name: 'tiny-vit',
    producer: 'entk models/generate-tiny-vit.ts',
    docString: 'Tiny randomly initialised ViT-style image encoder for tests (not trained).',
    irVersion: 8,
    opset: 17,
    nodes,
    initializers: [
      floatTensor('patch.weight', [H, C, p, p], W.patchKernel),
      floatTensor('patch.bias', [H], W.patchBias),
      floatTensor('cls.token', [1, 1, H], W.cls),
      floatTensor('pos.embeddings', [W.tokens, H], W.pos),
      floatTensor('ln.weight', [H], W.lnGamma),
      floatTensor('ln.bias', [H], W.lnBeta),
      int64Tensor('const.flatshape', [3], [0, H, -1]),
      int64Tensor('const.zero1', [1], [0]),
      int64Tensor('const.clsdims', [2], [1, H]),
    ],
    inputs: [{ name: 'pixel_values', elemType: DataType.FLOAT, shape: ['batch', C, S, S] }],
    outputs: [{ name: 'last_hidden_state', elemType: DataType.FLOAT, shape: ['batch', W.tokens, H] }],
  });
}

function json(value: unknown): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`);
}

/** Every file of the tiny image model, by path relative to the model directory. */
export function generateTinyVit(): Map<string, Uint8Array> {
  const { hidden: H, channels: C, patchSize: p, imageSize: S } = TINY_VIT;
  const files = new Map<string, Uint8Array>();
  files.set(
    'config.json',
    json({
      _name_or_path: 'entk/tiny-vit',
      architectures: ['ViTModel'],
      model_type: 'vit',
      hidden_size: H,
      image_size: S,
      patch_size: p,
      num_channels: C,
      num_hidden_layers: 0,
      num_attention_heads: 1,
      layer_norm_eps: TINY_VIT.layerNormEps,
      entk_note: 'Randomly initialised (seeded) by models/generate-tiny-vit.ts for tests; not trained.',
    }),
  );
  files.set(
    'preprocessor_config.json',
    json({
      image_processor_type: 'ViTImageProcessor',
      do_resize: false,
      do_rescale: true,
      rescale_factor: 1 / 255,
      do_normalize: true,
      image_mean: [0.5, 0.5, 0.5],
      image_std: [0.5, 0.5, 0.5],
      size: { height: S, width: S },
    }),
  );
  files.set('onnx/model.onnx', tinyVitOnnx());
  return files;
}

/** Write the model into `outDir` (built in a temporary sibling, then swapped in). */
export function writeTinyVit(outDir: string): void {
  writeModelFiles(outDir, generateTinyVit());
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const outDir = resolve(process.argv[2] ?? join(REPO_ROOT, 'models', 'tiny-vit'));
  writeAndList(outDir, generateTinyVit());
}
