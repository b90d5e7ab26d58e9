/**
 * Checks on a layers-model topology (the `modelTopology` of a model.json) before tfjs deserialises
 * it: tfjs walks a functional graph until every node is placed, so a cycle makes it spin forever.
 */
import { CorruptFileError } from '../errors.js';

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => v != null && typeof v === 'object' && !Array.isArray(v);

/**
 * Inbound (layer name, node index) pairs of one call node, in both serialisations: Keras 2 / tfjs
 * `[[name, nodeIndex, tensorIndex, kwargs], ...]` and Keras 3 `{args: [{config: {keras_history:
 * [name, nodeIndex, tensorIndex]}}]}` (searched recursively for keras_history).
 */
function inboundOf(node: unknown): [string, number][] {
  const out: [string, number][] = [];
  if (Array.isArray(node)) {
    for (const entry of node) {
      if (Array.isArray(entry) && typeof entry[0] === 'string') out.push([entry[0], Number(entry[1] ?? 0)]);
      else out.push(...inboundOf(entry));
    }
    return out;
  }
  if (!isObject(node)) return out;
  const history = node.keras_history;
  if (Array.isArray(history) && typeof history[0] === 'string') {
    out.push([history[0], Number(history[1] ?? 0)]);
    return out;
  }
  for (const value of Object.values(node)) out.push(...inboundOf(value));
  return out;
}

/** The functional graph configs in a topology: the top-level one and those of nested models. */
function graphConfigs(value: unknown, found: Json[] = []): Json[] {
  if (Array.isArray(value)) {
    for (const v of value) graphConfigs(v, found);
  } else if (isObject(value)) {
    if (Array.isArray(value.layers) && value.layers.some((l) => isObject(l) && 'inbound_nodes' in l)) {
      found.push(value);
    }
    for (const v of Object.values(value)) graphConfigs(v, found);
  }
  return found;
}

/**
 * Throw a CorruptFileError naming `file` and the layers of a cycle if a functional graph in
 * `topology` has one. The graph is taken at the level of call nodes (layer, node index), so a
 * layer shared by several calls is not mistaken for a cycle.
 */
export function assertAcyclicTopology(topology: unknown, file: string): void {
  for (const config of graphConfigs(topology)) {
    const edges = new Map<string, string[]>(); // "layer#node" → its inbound "layer#node"s
    for (const layer of config.layers as unknown[]) {
      if (!isObject(layer)) continue;
      const name = String((isObject(layer.config) ? layer.config.name : undefined) ?? layer.name);
      const nodes = Array.isArray(layer.inbound_nodes) ? layer.inbound_nodes : [];
      nodes.forEach((node, k) => {
        edges.set(
          `${name}#${k}`,
          inboundOf(node).map(([l, i]) => `${l}#${i}`),
        );
      });
    }
    // Iterative depth-first search (a deep chain must not overflow the stack): 1 on the path, 2 done.
    const state = new Map<string, 1 | 2>();
    for (const start of edges.keys()) {
      if (state.has(start)) continue;
      const stack: { key: string; next: number }[] = [{ key: start, next: 0 }];
      state.set(start, 1);
      while (stack.length > 0) {
        const top = stack[stack.length - 1]!;
        const inbound = edges.get(top.key) ?? [];
        if (top.next >= inbound.length) {
          state.set(top.key, 2);
          stack.pop();
          continue;
        }
        const next = inbound[top.next++]!;
        const s = state.get(next);
        if (s === 1) {
          const from = stack.findIndex((f) => f.key === next);
          const cycle = stack.slice(from).map((f) => f.key.replace(/#\d+$/, ''));
          throw new CorruptFileError(
            file,
            `the layer graph has a cycle (${[...cycle.reverse(), cycle[0]].join(' → ')}); a functional model must be acyclic`,
          );
        }
        if (s === undefined) {
          state.set(next, 1);
          stack.push({ key: next, next: 0 });
        }
      }
    }
  }
}

/** Layer classes whose config has a `depth_multiplier` (the depthwise kernel's last dimension). */
const DEPTHWISE_CLASSES = new Set(['SeparableConv2D', 'SeparableConvolution2D', 'DepthwiseConv2D']);

/**
 * Fill in `depth_multiplier` where a SeparableConv2D / DepthwiseConv2D config lacks it, from the
 * last dimension of the layer's depthwise kernel [kh, kw, cIn, multiplier] in `weights` (the
 * weights manifest): tfjs 4.22's SeparableConv2D.getConfig leaves it out, so a model saved by tfjs
 * with depthMultiplier > 1 would be rebuilt with 1 and its weights refused ("Shape mismatch").
 * Edits `topology` in place; returns the layers it fixed (name and multiplier). A layer whose
 * depthwise kernel is not in the manifest is left alone (tfjs then reports the mismatch).
 */
export function inferDepthMultipliers(
  topology: unknown,
  weights: ReadonlyArray<{ name: string; shape: number[] }>,
): Array<{ layer: string; depthMultiplier: number }> {
  const fixed: Array<{ layer: string; depthMultiplier: number }> = [];
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) {
      for (const v of value) visit(v);
      return;
    }
    if (!isObject(value)) return;
    const config = value.config;
    if (
      typeof value.class_name === 'string' &&
      DEPTHWISE_CLASSES.has(value.class_name) &&
      isObject(config) &&
      config.depth_multiplier == null &&
      config.depthMultiplier == null &&
      typeof config.name === 'string'
    ) {
      // Weight names are "<layer>/depthwise_kernel", possibly under a model's name prefix.
      const suffix = `${config.name}/depthwise_kernel`;
      const spec = weights.find((w) => w.name === suffix || w.name.endsWith(`/${suffix}`));
      const m = spec?.shape.length === 4 ? spec.shape[3]! : undefined;
      if (m !== undefined && Number.isSafeInteger(m) && m >= 1) {
        config.depth_multiplier = m;
        fixed.push({ layer: config.name, depthMultiplier: m });
      }
    }
    for (const v of Object.values(value)) visit(v);
  };
  visit(topology);
  return fixed;
}
