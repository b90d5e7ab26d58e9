/**
 * The structured eNTK on graphs (residuals, merges, nested models, shared layers, sequences) and
 * every layer rule, on the wasm backend: structured = hybrid (every selected layer by autodiff
 * alone) = whole-model Jacobian = float64 finite differences.
 *
 * Tolerance rule (as in correctness.test.ts): relative max error max|K − Kref| / max|Kref| ≤ 1e-5
 * for float32 results against the float64 finite-difference reference.
 */
import { describe } from 'vitest';
import { graphNets } from './graph-nets.js';
import { graphSuite } from './graph-suite.js';

describe.each(graphNets())('$name', (net) => graphSuite(net));
