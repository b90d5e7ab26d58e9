/**
 * Saving and loading models in the standard TensorFlow.js layers format on the local file system:
 * `<dir>/model.json` (topology + `weightsManifest: [{ paths: ['weights.bin'], weights: [...] }]`)
 * and `<dir>/weights.bin` (all weights, little-endian, in manifest order). This is what
 * `tfjs.converters.save_keras_model` / `tensorflowjs_converter` read and write, and what
 * `tf.loadLayersModel` loads. Pure Node file I/O: works on every tfjs backend (wasm, cpu, node).
 *
 * Writes are atomic: a reader sees either no model or a complete one (see {@link fileSystemHandler}).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ENTK_VERSION, installWasmKernelFixes } from '../backend/index.js';
import { CorruptFileError, InvalidArgumentError } from '../errors.js';
import { exists, writeDirAtomic, writeFileAtomic } from '../util/index.js';
import './layers.js'; // registers the custom layers before any model is deserialised

/** File names inside a saved model directory. */
export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';

const BYTES_PER_DTYPE: Record<string, number> = {
  float32: 4,
  int32: 4,
  bool: 1,
  complex64: 8,
  uint8: 1,
  uint16: 2,
  float16: 2,
};

/** Expected byte length of the weights described by `specs`, or null if not computable (strings). */
function expectedBytes(specs: tf.io.WeightsManifestEntry[]): number | null {
  let total = 0;
  for (const spec of specs) {
    const dtype = spec.quantization?.dtype ?? spec.dtype;
    const size = BYTES_PER_DTYPE[dtype];
    if (size === undefined) return null;
    total += spec.shape.reduce((a, b) => a * b, 1) * size;
  }
  return total;
}

function toBytes(data: tf.io.WeightData | undefined): Uint8Array {
  if (data === undefined) return new Uint8Array(0);
  return new Uint8Array(tf.io.CompositeArrayBuffer.join(data));
}

/**
 * A tf.io.IOHandler reading and writing `<dir>/model.json` + `<dir>/weights.bin`.
 *
 * `target` is a directory, or for loading also the path of a `model.json` (its weight files are
 * resolved relative to it, so models written by tensorflowjs tooling with several shards load too).
 *
 * Saving into a directory that does not exist yet builds it aside and renames it into place
 * (atomic as a whole); saving into an existing directory writes `weights.bin` then `model.json`,
 * each atomically, leaving other files in the directory untouched.
 *
 * @example
 * await model.save(fileSystemHandler('runs/x/model'));
 * const again = await tf.loadLayersModel(fileSystemHandler('runs/x/model'));
 */
export function fileSystemHandler(target: string): tf.io.IOHandler {
  if (typeof target !== 'string' || target === '') {
    throw new InvalidArgumentError('model path', target, 'a directory or a path to model.json');
  }
  const modelJsonPath = target.endsWith('.json') ? target : path.join(target, MODEL_JSON);
  const dir = path.dirname(modelJsonPath);

  return {
    async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      if (target.endsWith('.json')) {
        throw new InvalidArgumentError('model path', target, 'a directory to save the model into');
      }
      if (artifacts.modelTopology instanceof ArrayBuffer) {
        throw new InvalidArgumentError('model', 'a graph model', 'a layers model (JSON topology)');
      }
      const weights = toBytes(artifacts.weightData);
      const modelJson: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology as object,
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy ?? `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
        convertedBy: artifacts.convertedBy ?? `entk ${ENTK_VERSION}`,
        weightsManifest: [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs ?? [] }],
      };
      if (artifacts.trainingConfig != null) modelJson.trainingConfig = artifacts.trainingConfig;
      if (artifacts.signature != null) modelJson.signature = artifacts.signature;
      if (artifacts.userDefinedMetadata != null)
        modelJson.userDefinedMetadata = artifacts.userDefinedMetadata;
      const json = `${JSON.stringify(modelJson)}\n`;
      const write = async (into: string) => {
        await writeFileAtomic(path.join(into, WEIGHTS_BIN), weights);
        await writeFileAtomic(path.join(into, MODEL_JSON), json);
      };
      if (await exists(dir)) await write(dir);
      else await writeDirAtomic(dir, write);
      return {
        modelArtifactsInfo: {
          dateSaved: new Date(),
          modelTopologyType: 'JSON',
          modelTopologyBytes: Buffer.byteLength(JSON.stringify(modelJson.modelTopology)),
          weightSpecsBytes: Buffer.byteLength(JSON.stringify(modelJson.weightsManifest)),
          weightDataBytes: weights.byteLength,
        },
      };
    },

    async load(): Promise<tf.io.ModelArtifacts> {
      let text: string;
      try {
        text = await fs.readFile(modelJsonPath, 'utf8');
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        throw new InvalidArgumentError(
          'model path',
          target,
          code === 'ENOENT'
            ? 'a directory containing model.json (not found)'
            : `a readable model.json (${code})`,
        );
      }
      let modelJson: tf.io.ModelJSON;
      try {
        modelJson = JSON.parse(text) as tf.io.ModelJSON;
      } catch (error) {
        throw new CorruptFileError(modelJsonPath, `not valid JSON (${(error as Error).message})`);
      }
      if (modelJson == null || typeof modelJson !== 'object' || modelJson.modelTopology == null) {
        throw new CorruptFileError(modelJsonPath, 'no modelTopology: not a TensorFlow.js layers model');
      }
      if (!Array.isArray(modelJson.weightsManifest)) {
        throw new CorruptFileError(modelJsonPath, 'no weightsManifest array');
      }
      return tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => {
        const specs: tf.io.WeightsManifestEntry[] = [];
        const buffers: Uint8Array[] = [];
        for (const group of manifest) {
          specs.push(...group.weights);
          for (const file of group.paths) {
            const full = path.join(dir, file);
            try {
              buffers.push(await fs.readFile(full));
            } catch (error) {
              throw new CorruptFileError(
                full,
                `weight file listed in model.json cannot be read (${(error as NodeJS.ErrnoException).code})`,
              );
            }
          }
        }
        const bytes = Buffer.concat(buffers);
        const expected = expectedBytes(specs);
        if (expected !== null && expected !== bytes.byteLength) {
          throw new CorruptFileError(
            path.join(dir, manifest[0]?.paths[0] ?? WEIGHTS_BIN),
            `weights are ${bytes.byteLength} bytes but model.json describes ${expected} (truncated or mismatched)`,
          );
        }
        const data = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
        return [specs, data];
      });
    },
  };
}

/** Save `model` to `<dir>/model.json` + `<dir>/weights.bin` (atomic; see {@link fileSystemHandler}). */
export async function saveModel(model: tf.LayersModel, dir: string): Promise<void> {
  await model.save(fileSystemHandler(dir));
}

/**
 * Load a layers model from a directory containing `model.json`, or from a `model.json` path.
 * entk's custom layers are registered by importing this module.
 */
export async function loadModel(dirOrModelJson: string): Promise<tf.LayersModel> {
  installWasmKernelFixes();
  return tf.loadLayersModel(fileSystemHandler(dirOrModelJson), { strict: true });
}
