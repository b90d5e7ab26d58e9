/**
 * Text measurement for server-side Vega rendering. Without a canvas, Vega estimates every string
 * as 0.8 em per character, which truncates legend labels and pads layouts. The figures use DejaVu
 * Sans (the font resvg finds on Debian, listed first in FIGURE_FONT), so widths come from its
 * advance-width table below (em units, read from DejaVuSans.ttf's hmtx/cmap tables; characters
 * not listed count as 0.62 em, bold as 1.1×). Vega documents replacing `textMetrics.width` for
 * exactly this purpose (as vl-convert does).
 */
import * as vega from 'vega';

/** DejaVu Sans advance widths in em, by character. */
const DEJAVU_SANS_EM: Record<string, number> = {
  '0': 0.6362,
  '1': 0.6362,
  '2': 0.6362,
  '3': 0.6362,
  '4': 0.6362,
  '5': 0.6362,
  '6': 0.6362,
  '7': 0.6362,
  '8': 0.6362,
  '9': 0.6362,
  ' ': 0.3179,
  '!': 0.4009,
  '"': 0.46,
  '#': 0.8379,
  $: 0.6362,
  '%': 0.9502,
  '&': 0.7798,
  "'": 0.2749,
  '(': 0.3901,
  ')': 0.3901,
  '*': 0.5,
  '+': 0.8379,
  ',': 0.3179,
  '-': 0.3608,
  '.': 0.3179,
  '/': 0.3369,
  ':': 0.3369,
  ';': 0.3369,
  '<': 0.8379,
  '=': 0.8379,
  '>': 0.8379,
  '?': 0.5308,
  '@': 1,
  A: 0.6841,
  B: 0.686,
  C: 0.6982,
  D: 0.77,
  E: 0.6318,
  F: 0.5752,
  G: 0.7749,
  H: 0.752,
  I: 0.2949,
  J: 0.2949,
  K: 0.6558,
  L: 0.5571,
  M: 0.8628,
  N: 0.748,
  O: 0.7871,
  P: 0.603,
  Q: 0.7871,
  R: 0.6948,
  S: 0.6348,
  T: 0.6108,
  U: 0.7319,
  V: 0.6841,
  W: 0.9888,
  X: 0.6851,
  Y: 0.6108,
  Z: 0.6851,
  '[': 0.3901,
  '\\': 0.3369,
  ']': 0.3901,
  '^': 0.8379,
  _: 0.5,
  '`': 0.5,
  a: 0.6128,
  b: 0.6348,
  c: 0.5498,
  d: 0.6348,
  e: 0.6152,
  f: 0.3521,
  g: 0.6348,
  h: 0.6338,
  i: 0.2778,
  j: 0.2778,
  k: 0.5791,
  l: 0.2778,
  m: 0.9741,
  n: 0.6338,
  o: 0.6118,
  p: 0.6348,
  q: 0.6348,
  r: 0.4111,
  s: 0.521,
  t: 0.3921,
  u: 0.6338,
  v: 0.5918,
  w: 0.8179,
  x: 0.5918,
  y: 0.5918,
  z: 0.5249,
  '{': 0.6362,
  '|': 0.3369,
  '}': 0.6362,
  '~': 0.8379,
  Δ: 0.6841,
  π: 0.6021,
  η: 0.6338,
  θ: 0.6118,
  φ: 0.6597,
  α: 0.6592,
  β: 0.6382,
  γ: 0.5918,
  σ: 0.6338,
  μ: 0.6362,
  ν: 0.5586,
  λ: 0.5918,
  κ: 0.5894,
  τ: 0.6021,
  ω: 0.8374,
  Σ: 0.6318,
  Φ: 0.7871,
  Π: 0.752,
  '‖': 0.5,
  '−': 0.8379,
  '·': 0.3179,
  '×': 0.8379,
  '²': 0.4009,
  '³': 0.4009,
  '√': 0.6372,
  '∝': 0.7144,
  '⟨': 0.3901,
  '⟩': 0.3901,
  '→': 0.8379,
  '←': 0.8379,
  '…': 1,
  '≤': 0.8379,
  '≥': 0.8379,
  '≈': 0.8379,
  '±': 0.8379,
  '°': 0.5,
  '∞': 0.833,
  '∈': 0.8711,
  '∑': 0.6738,
  '∏': 0.7568,
  '∂': 0.5171,
  '∇': 0.6689,
  ₙ: 0.3984,
  '₀': 0.4009,
  '₁': 0.4009,
  ᵀ: 0.3848,
  '½': 0.9692,
  '—': 1,
  '–': 0.5,
  '’': 0.3179,
  '“': 0.5181,
  '”': 0.5181,
  é: 0.6152,
};

const FALLBACK_EM = 0.62;
const BOLD_FACTOR = 1.1;

/** Width in px of `text` set in DejaVu Sans at `fontSize` px. */
export function measureText(text: string, fontSize: number, bold = false): number {
  let em = 0;
  for (const ch of text) em += DEJAVU_SANS_EM[ch] ?? FALLBACK_EM;
  return em * fontSize * (bold ? BOLD_FACTOR : 1);
}

interface TextItem {
  fontSize?: number;
  fontWeight?: string | number;
  limit?: number;
}

let installed = false;

/** Make Vega measure text with {@link measureText} (idempotent; affects this process's Vega). */
export function installTextMetrics(): void {
  if (installed) return;
  installed = true;
  const metrics = (vega as unknown as { textMetrics: { width: (item: TextItem, text: unknown) => number } })
    .textMetrics;
  metrics.width = (item: TextItem, text: unknown) => {
    const value = text == null ? '' : String(text).trim();
    const size = item.fontSize != null ? Number(item.fontSize) || 0 : 11;
    const weight = item.fontWeight;
    const bold = weight === 'bold' || weight === 'bolder' || (typeof weight === 'number' && weight >= 600);
    const width = measureText(value, size, bold);
    // Vega truncates text longer than item.limit to fit it; the drawn width is then at most limit.
    return item.limit != null && item.limit > 0 ? Math.min(width, item.limit) : width;
  };
}
