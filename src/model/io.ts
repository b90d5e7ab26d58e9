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
import { CorruptFileError, EntkError, InvalidArgumentError, UnsupportedError } from '../errors.js';
import { exists, resolveInside, writeDirAtomic, writeFileAtomic } from '../util/index.js';
import { assertAcyclicTopology, inferDepthMultipliers } from './topology.js';
import './layers.js'; // registers the custom layers before any model is deserialised
import './transformer-layers.js';

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

/**
 * Expected byte length of the weights described by `specs`, or null if not computable (strings);
 * CorruptFileError naming `file` for an entry without a valid name and shape.
 */
function expectedBytes(specs: tf.io.WeightsManifestEntry[], file: string): number | null {
  let total = 0;
  let computable = true;
  for (const spec of specs) {
    if (
      !spec ||
      typeof spec.name !== 'string' ||
      !Array.isArray(spec.shape) ||
      spec.shape.some((d) => !Number.isSafeInteger(d) || d < 0)
    ) {
      throw new CorruptFileError(file, `bad weight entry ${JSON.stringify(spec)?.slice(0, 120)}`);
    }
    const dtype = spec.quantization?.dtype ?? spec.dtype;
    const size = BYTES_PER_DTYPE[dtype];
    if (size === undefined) computable = false;
    else total += spec.shape.reduce((a, b) => a * b, 1) * size;
  }
  if (!Number.isSafeInteger(total)) throw new CorruptFileError(file, 'weight shapes are too large');
  return computable ? total : null;
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
 * Saved topologies carry every SeparableConv2D's `depth_multiplier` (tfjs 4.22 leaves it out).
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
      // tfjs 4.22's SeparableConv2D.getConfig leaves out depth_multiplier: write it (from the depthwise
      // kernel's shape) so that tfjs and other tools rebuild the layer the weights belong to.
      const modelTopology = structuredClone(artifacts.modelTopology as object);
      inferDepthMultipliers(modelTopology, artifacts.weightSpecs ?? []);
      const modelJson: tf.io.ModelJSON = {
        modelTopology,
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
      assertAcyclicTopology(modelJson.modelTopology, modelJsonPath);
      return tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => {
        const specs: tf.io.WeightsManifestEntry[] = [];
        const files: string[] = [];
        for (const [g, group] of manifest.entries()) {
          if (!group || !Array.isArray(group.paths) || !Array.isArray(group.weights)) {
            throw new CorruptFileError(modelJsonPath, `weightsManifest[${g}] needs paths and weights arrays`);
          }
          specs.push(...group.weights);
          // Weight files are names relative to model.json's directory and stay inside it.
          for (const file of group.paths) {
            files.push(
              resolveInside(dir, file, `weightsManifest[${g}].paths`, modelJsonPath, { basename: false }),
            );
          }
        }
        const expected = expectedBytes(specs, modelJsonPath);
        // Sizes first: a weight file that is not a regular file, or larger than model.json
        // describes, is refused before it is read (never read /dev/zero until memory runs out).
        let total = 0;
        for (const full of files) {
          const stat = await fs.stat(full).catch((error: NodeJS.ErrnoException) => {
            throw new CorruptFileError(
              full,
              `weight file listed in model.json cannot be read (${error.code})`,
            );
          });
          if (!stat.isFile())
            throw new CorruptFileError(full, 'weight file listed in model.json is not a regular file');
          total += stat.size;
        }
        if (expected !== null && expected !== total) {
          throw new CorruptFileError(
            files[0] ?? path.join(dir, WEIGHTS_BIN),
            `weights are ${total} bytes but model.json describes ${expected} (truncated or mismatched)`,
          );
        }
        const buffers: Uint8Array[] = [];
        for (const full of files) {
          try {
            buffers.push(await fs.readFile(full));
          } catch (error) {
            throw new CorruptFileError(
              full,
              `weight file listed in model.json cannot be read (${(error as NodeJS.ErrnoException).code})`,
            );
          }
        }
        const bytes = Buffer.concat(buffers);
        if (expected !== null && expected !== bytes.byteLength) {
          throw new CorruptFileError(
            files[0] ?? path.join(dir, WEIGHTS_BIN),
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
 * entk's custom layers are registered by importing this module. Every failure is an EntkError:
 * an unknown layer class → UnsupportedError naming it; anything else tfjs refuses (a damaged
 * topology, weights that do not fit the layers) → CorruptFileError naming model.json.
 */
export async function loadModel(dirOrModelJson: string): Promise<tf.LayersModel> {
  installWasmKernelFixes();
  const artifacts = await fileSystemHandler(dirOrModelJson).load!();
  let model: tf.LayersModel | undefined;
  let weights: tf.NamedTensorMap | undefined;
  let known: Set<string> | undefined;
  try {
    // What tf.loadLayersModel does (strict), but nothing is left allocated when it fails: the
    // model built from the topology and the decoded weights are disposed. (A trainingConfig is
    // not compiled in: entk never uses a model's own optimizer or loss.)
    known = new Set(Object.keys(tf.engine().state.registeredVariables));
    // tfjs saves SeparableConv2D without its depth_multiplier: take it from the weights' shapes.
    inferDepthMultipliers(artifacts.modelTopology, artifacts.weightSpecs ?? []);
    model = await tf.models.modelFromJSON({
      modelTopology: artifacts.modelTopology as tf.io.ModelJSON['modelTopology'],
    });
    if (artifacts.userDefinedMetadata != null) model.setUserDefinedMetadata(artifacts.userDefinedMetadata);
    if (artifacts.weightData != null) {
      weights = tf.io.decodeWeights(artifacts.weightData, artifacts.weightSpecs ?? []);
      model.loadWeights(weights, true);
    }
    return model;
  } catch (error) {
    if (model) model.dispose();
    else {
      // A topology that fails half way leaves the variables of the layers built so far: dispose
      // the variables registered since the snapshot (loading is synchronous up to the failure).
      const registered = tf.engine().state.registeredVariables;
      for (const name of Object.keys(registered)) if (!known?.has(name)) registered[name]!.dispose();
    }
    if (error instanceof EntkError) throw error;
    const file = dirOrModelJson.endsWith('.json') ? dirOrModelJson : path.join(dirOrModelJson, MODEL_JSON);
    const message = (error as Error)?.message ?? String(error);
    const unknown = /Unknown layer: (\w+)/.exec(message);
    if (unknown) {
      throw new UnsupportedError(
        `${file}: layer class '${unknown[1]}' is not known to tfjs or entk (register custom layers with tf.serialization.registerClass before loading)`,
      );
    }
    throw new CorruptFileError(file, `tfjs could not load the layers model: ${message.split('\n')[0]}`);
  } finally {
    if (weights) tf.dispose(Object.values(weights));
  }
}

/**
 * Dispose a model and every one of its weights: tfjs 4.22's `model.dispose()` keeps the weights of
 * a layer called more than once (its reference count counts calls), so a model with a shared layer
 * would leave them allocated.
 */
export function disposeModel(model: tf.LayersModel): void {
  const weights = model.weights;
  model.dispose();
  for (const w of weights) {
    try {
      w.dispose();
    } catch {
      // already disposed with the model
    }
  }
}
