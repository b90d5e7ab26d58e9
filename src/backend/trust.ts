/**
 * Which backends entk trusts for the gradients a layer needs. An eNTK is built from gradients, and a
 * wrong gradient kernel gives a wrong kernel without any error (tfjs-backend-wasm 4.22's MaxPool
 * gradient put a Conv → ReLU → BatchNorm → MaxPool model's eNTK off by 3.5e-2), so the engine
 * refuses a layer on a backend whose kernels for it were not checked, instead of computing.
 *
 * - cpu: the reference (pure JS, the backend every other is compared against).
 * - wasm: every forward and gradient op of the layers below is compared with cpu op by op
 *   (test/backend/gradient-conformance.test.ts), with the repairs of ./wasm-kernels.ts installed;
 *   without them the kernels they repair are untrusted. Conv3D is not covered (the stock wasm
 *   Conv3DBackpropFilterV2 is wrong for strides > 1).
 * - any other backend (tensorflow = tfjs-node, webgl, webgpu): not checked here. The ops that have
 *   differed between tfjs backends (pooling, depthwise and strided convolutions, segment sums) are
 *   untrusted; dense, elementwise, normalisation and shape ops are the common core of every backend.
 *
 * On every backend tfjs has no gradient for dilated convolutions (tfjs-core refuses them).
 */
import * as tf from '@tensorflow/tfjs';
import { UnsupportedError } from '../errors.js';
import { WASM_FIXED_KERNELS } from './wasm-kernels.js';

/** Kernels (forward and gradient) each layer class runs, where they are not the common core. */
const LAYER_KERNELS: Record<string, string[]> = {
  Conv1D: ['Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter'],
  Conv2D: ['Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter'],
  Conv2DTranspose: ['Conv2DBackpropInput', 'Conv2D', 'Conv2DBackpropFilter'],
  Conv3D: ['Conv3D', 'Conv3DBackpropInputV2', 'Conv3DBackpropFilterV2'],
  DepthwiseConv2D: [
    'DepthwiseConv2dNative',
    'DepthwiseConv2dNativeBackpropInput',
    'DepthwiseConv2dNativeBackpropFilter',
  ],
  SeparableConv2D: [
    'DepthwiseConv2dNative',
    'DepthwiseConv2dNativeBackpropInput',
    'DepthwiseConv2dNativeBackpropFilter',
    'Conv2D',
    'Conv2DBackpropInput',
    'Conv2DBackpropFilter',
  ],
  MaxPooling1D: ['MaxPool', 'MaxPoolGrad'],
  MaxPooling2D: ['MaxPool', 'MaxPoolGrad'],
  MaxPooling3D: ['MaxPool3D', 'MaxPool3DGrad'],
  AveragePooling1D: ['AvgPool', 'AvgPoolGrad'],
  AveragePooling2D: ['AvgPool', 'AvgPoolGrad'],
  AveragePooling3D: ['AvgPool3D', 'AvgPool3DGrad'],
  Embedding: ['GatherV2', 'UnsortedSegmentSum'],
};

/** Kernels that differed between tfjs backends (untrusted where not checked against cpu). */
const FRAGILE_KERNELS = [...new Set(Object.values(LAYER_KERNELS).flat())];

const isFixed = (name: string): boolean =>
  Boolean(
    (tf.getKernel(name, 'wasm')?.kernelFunc as unknown as Record<symbol, boolean> | undefined)?.[
      Symbol.for('entk.wasmKernelFix')
    ],
  );

/**
 * The kernels a backend cannot be trusted with, and why (an empty map: all of the layers' kernels
 * checked). `backendName` defaults to the active backend.
 */
export function untrustedOps(backendName: string = tf.getBackend()): Map<string, string> {
  const out = new Map<string, string>();
  if (backendName === 'cpu') return out;
  if (backendName === 'wasm') {
    for (const name of WASM_FIXED_KERNELS) {
      if (!isFixed(name)) {
        out.set(name, `missing or wrong in tfjs-backend-wasm 4.22 and the entk repair is not installed`);
      }
    }
    out.set('Conv3D', 'not checked against cpu on wasm');
    out.set('Conv3DBackpropInputV2', 'not checked against cpu on wasm');
    out.set('Conv3DBackpropFilterV2', 'wrong for strides > 1 in tfjs-backend-wasm 4.22');
    return out;
  }
  for (const name of FRAGILE_KERNELS) {
    out.set(name, `not checked against the cpu backend on '${backendName}' (use --backend wasm or cpu)`);
  }
  return out;
}

/** A layer as far as this check needs it. */
interface LayerLike {
  name: string;
  getClassName(): string;
  getConfig(): tf.serialization.ConfigDict;
}

/** The layers of `model`, nested models flattened. */
function flatLayers(layers: LayerLike[]): LayerLike[] {
  return layers.flatMap((l) => {
    const inner = (l as unknown as { layers?: LayerLike[] }).layers;
    return Array.isArray(inner) ? flatLayers(inner) : [l];
  });
}

/**
 * Refuse (UnsupportedError naming the layer and the backend) when a layer of `model` needs a
 * kernel the backend cannot be trusted with (see {@link untrustedOps}), or a gradient tfjs does not
 * have (dilated convolutions).
 */
export function assertGradientsTrusted(
  model: { layers: LayerLike[] },
  backendName: string = tf.getBackend(),
  options: {
    /** True for a layer whose dilation the caller computes without tfjs's (missing) gradient. */
    dilationHandled?: (layerName: string) => boolean;
  } = {},
): void {
  // Not a layers model: left to the caller's own validation (e.g. analyzeModel's typed error).
  if (!model || !Array.isArray(model.layers)) return;
  const untrusted = untrustedOps(backendName);
  for (const layer of flatLayers(model.layers)) {
    const cls = layer.getClassName();
    const config = layer.getConfig();
    const dilation = config.dilationRate as number | number[] | undefined;
    const dilated = dilation !== undefined && [dilation].flat().some((d) => d !== 1);
    if (dilated && !options.dilationHandled?.(layer.name)) {
      throw new UnsupportedError(
        `layer '${layer.name}' (${cls}) has dilationRate ${JSON.stringify(dilation)}: tfjs has no gradient for dilated convolutions on any backend (backend '${backendName}')`,
      );
    }
    for (const kernel of LAYER_KERNELS[cls] ?? []) {
      const reason = untrusted.get(kernel);
      if (reason) {
        throw new UnsupportedError(
          `layer '${layer.name}' (${cls}) needs the ${kernel} kernel, which backend '${backendName}' cannot be trusted with: ${reason}`,
        );
      }
    }
  }
}
