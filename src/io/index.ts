/**
 * Array files other tools read: NumPy .npy/.npz, safetensors, JSON; verified reading (shapes,
 * dtypes, sizes, sha256, CRC-32), atomic and streamed writing; the initialisers of ONNX models.
 */
export {
  ARRAY_FORMATS,
  type ArrayFormat,
  FORMAT_EXTENSION,
  formatOfFile,
  parseArrayFormat,
  type ReadArrayOptions,
  readArray,
  readArrayHeader,
  streamArray,
  type WriteArrayOptions,
  writeArray,
} from './array-file.js';
export {
  type ArrayEntry,
  type ArrayProducer,
  type ArraySource,
  checkHash,
  crc32,
  sha256File,
  type WrittenFile,
} from './binary.js';
export {
  type ArraySpec,
  allocate,
  bytesOf,
  DTYPE_INFO,
  DTYPES,
  type DType,
  dtypeOf,
  fromBytes,
  isDType,
  type NdArray,
  ndarray,
  numElements,
  type TypedArray,
  type TypedArrayOf,
} from './dtypes.js';
export { JSON_MAX_ELEMENTS, type JsonWriteOptions, readJsonArray, writeJsonArray } from './json-array.js';
export {
  encodeNpyHeader,
  type NpyHeader,
  type NpyReadOptions,
  type ReadArray,
  type ReadOptions,
  readNpy,
  readNpyHeader,
  readNpyRows,
  streamNpy,
  writeNpy,
} from './npy.js';
export { type NpzWriteOptions, readNpz, readNpzHeaders, writeNpz } from './npz.js';
export {
  ONNX_DATA_TYPES,
  type OnnxAttribute,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
  readOnnxModel,
} from './onnx.js';
export {
  encodeSafetensorsHeader,
  readSafetensors,
  readSafetensorsHeader,
  type SafetensorsHeader,
  type SafetensorsTensorInfo,
  writeSafetensors,
} from './safetensors.js';
