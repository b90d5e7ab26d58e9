/** Helpers for inspecting Vega's SVG output in tests (plain string scanning; resvg checks validity). */
import { Resvg } from '@resvg/resvg-js';

/** Inner text of each `<g class="... role-mark <name>...">` group (items are self-closing paths). */
export function markGroups(svg: string, name: string): string[] {
  const out: string[] = [];
  const re = new RegExp(`<g class="mark-[a-z]+ role-mark ${name}"[^>]*>`, 'g');
  for (const m of svg.matchAll(re)) {
    const start = m.index! + m[0].length;
    out.push(svg.slice(start, svg.indexOf('</g>', start)));
  }
  return out;
}

/** Number of items (`<path>` for symbols/lines, `<line>` for rules) in all mark groups named `name`. */
export function countItems(svg: string, name: string): number {
  return markGroups(svg, name).reduce((n, g) => n + (g.match(/<(?:path|line)\b/g)?.length ?? 0), 0);
}

/** Texts of every <text> element (entity-decoded for &amp; &lt; &gt;). */
export function svgTexts(svg: string): string[] {
  return [...svg.matchAll(/<text\b[^>]*>([^<]*)<\/text>/g)].map((m) =>
    m[1]!
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&quot;/g, '"')
      .replace(/&amp;/g, '&'),
  );
}

/** Throws unless resvg (an independent XML/SVG parser) accepts the document; returns its size. */
export function parseSvg(svg: string): { width: number; height: number } {
  const r = new Resvg(svg);
  return { width: r.width, height: r.height };
}
