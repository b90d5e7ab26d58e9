/**
 * The structured eNTK on graphs (residuals, merges, nested models, shared layers, sequences) and
 * every layer rule, on the wasm backend: structured = hybrid (every selected layer by autodiff
 * alone) = whole-model Jacobian = float64 finite differences. graphs-cpu.test.ts runs the same nets
 * on the cpu backend.
 *
 * Tolerance rule (as in correctness.test.ts): relative max error max|K − Kref| / max|Kref| ≤ 1e-5
 * for float32 results against the float64 finite-difference reference.
 */
import { describe } from 'vitest';
import { depthwiseGraphNets, graphNets } from './graph-nets.js';
import { graphSuite } from './graph-suite.js';

describe.each([...graphNets(), ...depthwiseGraphNets()])('$name', (net) => graphSuite(net));
