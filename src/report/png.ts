/**
 * A minimal PNG encoder for 8-bit RGB rasters (the heatmap's cells), so a heatmap embeds as one
 * small inline image instead of tens of thousands of SVG rectangles. Uses node:zlib only.
 */
import { crc32, deflateSync } from 'node:zlib';
import { assertArgument } from '../errors.js';

/** The eight bytes every PNG file starts with. */
export const PNG_SIGNATURE = Uint8Array.from([137, 80, 78, 71, 13, 10, 26, 10]);

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)) >>> 0, 8 + data.length);
  return out;
}

/**
 * Encode an RGB raster as PNG. `rgb` is row-major, top row first, 3 bytes per pixel
 * (length width·height·3). Rows identical to the previous one use the "Up" filter (all zeros),
 * others the "Sub" filter, which keeps block-structured images tiny.
 */
export function encodePngRgb(width: number, height: number, rgb: Uint8Array): Buffer {
  assertArgument(Number.isInteger(width) && width > 0, 'width', width, 'a positive integer');
  assertArgument(Number.isInteger(height) && height > 0, 'height', height, 'a positive integer');
  assertArgument(
    rgb.length === width * height * 3,
    'rgb',
    rgb,
    `${width * height * 3} bytes (width·height·3)`,
  );
  const stride = width * 3;
  const raw = new Uint8Array(height * (stride + 1));
  for (let y = 0; y < height; y++) {
    const row = rgb.subarray(y * stride, (y + 1) * stride);
    const o = y * (stride + 1);
    const same = y > 0 && Buffer.compare(row, rgb.subarray((y - 1) * stride, y * stride)) === 0;
    if (same) {
      raw[o] = 2; // Up: difference to the row above, all zero here
      continue;
    }
    raw[o] = 1; // Sub: difference to the pixel on the left
    for (let i = 0; i < stride; i++) raw[o + 1 + i] = (row[i]! - (i >= 3 ? row[i - 3]! : 0)) & 0xff;
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // colour type: truecolour RGB
  return Buffer.concat([
    Buffer.from(PNG_SIGNATURE),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

/** Width and height from a PNG's IHDR chunk (throws when `png` is not a PNG). */
export function pngSize(png: Uint8Array): { width: number; height: number } {
  const ok = png.length >= 24 && PNG_SIGNATURE.every((b, i) => png[i] === b);
  assertArgument(ok, 'png', png, 'PNG data (starting with the PNG signature and an IHDR chunk)');
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}
