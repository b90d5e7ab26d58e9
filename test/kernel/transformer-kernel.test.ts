/** The transformer eNTK suite (./transformer-suite.ts) on the default backend (wasm). */
import { transformerKernelSuite } from './transformer-suite.js';

transformerKernelSuite();
