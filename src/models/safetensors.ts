/**
 * Reading and writing the safetensors format (8-byte little-endian header length, a JSON
 * header of dtype/shape/data_offsets, then the tensor bytes). The format is a few lines,
 * so it is implemented here; every size is checked against the file so a truncated or
 * corrupt file gives a message instead of garbage weights.
 */
import { ModelLoadError } from '../core/errors';
import * as fs from 'node:fs';

export type SafeDType = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32';
const BYTES: Record<SafeDType, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4 };

export interface SafeTensorInfo {
  dtype: SafeDType;
  shape: number[];
  /** byte range inside the data section */
  begin: number;
  end: number;
}

export interface SafeTensorsFile {
  path: string;
  tensors: Map<string, SafeTensorInfo>;
  metadata: Record<string, string>;
  /** the whole data section (after the header) */
  data: Buffer;
}


export function readSafetensors(path: string): SafeTensorsFile {
  const buf = fs.readFileSync(path);
  const bad = (why: string) => new ModelLoadError(`${path} is not a valid safetensors file (${why}); re-download or re-export it`);
  if (buf.length < 8) throw bad(`only ${buf.length} bytes`);
  const headerLen = Number(buf.readBigUInt64LE(0));
  if (headerLen <= 0 || 8 + headerLen > buf.length) throw bad(`header claims ${headerLen} bytes but the file has ${buf.length}`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8'));
  } catch {
    throw bad('header is not JSON');
  }
  const data = buf.subarray(8 + headerLen);
  const tensors = new Map<string, SafeTensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = value as Record<string, string>;
      continue;
    }
    const v = value as { dtype: SafeDType; shape: number[]; data_offsets: [number, number] };
    if (!(v.dtype in BYTES)) throw bad(`tensor ${name} has unsupported dtype ${v.dtype}`);
    const [begin, end] = v.data_offsets ?? [];
    const count = v.shape.reduce((a, b) => a * b, 1);
    if (!(begin >= 0 && end >= begin && end <= data.length)) throw bad(`tensor ${name} lies outside the file (offsets ${begin}–${end}, data ${data.length} bytes): the file is truncated`);
    if (end - begin !== count * BYTES[v.dtype]) throw bad(`tensor ${name} has ${end - begin} bytes for shape [${v.shape}] ${v.dtype}`);
    tensors.set(name, { dtype: v.dtype, shape: v.shape, begin, end });
  }
  return { path, tensors, metadata, data };
}

/** A tensor as float32 (converting F16/BF16/F64); copies so the result is aligned. */
export function tensorAsFloat32(file: SafeTensorsFile, name: string): { shape: number[]; data: Float32Array } {
  const info = file.tensors.get(name);
  if (!info) throw new ModelLoadError(`${file.path} has no tensor "${name}"`);
  const bytes = file.data.subarray(info.begin, info.end);
  const copy = new Uint8Array(bytes); // aligned copy
  const n = info.shape.reduce((a, b) => a * b, 1);
  let out: Float32Array;
  switch (info.dtype) {
    case 'F32':
      out = new Float32Array(copy.buffer, 0, n);
      break;
    case 'F64':
      out = Float32Array.from(new Float64Array(copy.buffer, 0, n));
      break;
    case 'F16':
      out = halfToFloat32(new Uint16Array(copy.buffer, 0, n));
      break;
    case 'BF16': {
      const u16 = new Uint16Array(copy.buffer, 0, n);
      const u32 = new Uint32Array(n);
      for (let i = 0; i < n; i++) u32[i] = u16[i] << 16;
      out = new Float32Array(u32.buffer);
      break;
    }
    default:
      throw new ModelLoadError(`${file.path}: tensor ${name} is ${info.dtype}, expected floating point`);
  }
  return { shape: info.shape, data: out };
}

let halfTable: Float32Array | undefined;

/** IEEE half → float32 through a 64K-entry table (built once). */
export function halfToFloat32(h: Uint16Array): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let x = 0; x < 65536; x++) {
      const sign = x & 0x8000 ? -1 : 1;
      const exp = (x >> 10) & 0x1f;
      const frac = x & 0x3ff;
      if (exp === 0) halfTable[x] = sign * frac * 2 ** -24;
      else if (exp === 31) halfTable[x] = frac ? NaN : sign * Infinity;
      else halfTable[x] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
    }
  }
  const out = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) out[i] = halfTable[h[i]];
  return out;
}

/** float32 → IEEE half, rounding to nearest even (what PyTorch's .half() does). */
export function float32ToHalf(f: Float32Array): Uint16Array {
  const bits = new Uint32Array(f.buffer, f.byteOffset, f.length);
  const out = new Uint16Array(f.length);
  for (let i = 0; i < f.length; i++) {
    const x = bits[i];
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    const mant = x & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    }
    const e = exp - 127 + 15;
    if (e >= 31) {
      out[i] = sign | 0x7c00; // overflow → infinity
    } else if (e <= 0) {
      if (e < -10) {
        out[i] = sign; // underflow → zero
        continue;
      }
      // subnormal half
      const m = mant | 0x800000;
      const shift = 14 - e;
      let h = m >>> shift;
      const rest = m & ((1 << shift) - 1);
      const half = 1 << (shift - 1);
      if (rest > half || (rest === half && (h & 1))) h++;
      out[i] = sign | h;
    } else {
      let h = (e << 10) | (mant >>> 13);
      const rest = mant & 0x1fff;
      if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++; // may carry into the exponent: still right
      out[i] = sign | h;
    }
  }
  return out;
}

/**
 * Writes float32 tensors as a safetensors file (names sorted, as the reference writer does),
 * stored as F32 or, halving the size, F16.
 */
export function writeSafetensors(path: string, tensors: Record<string, { shape: number[]; data: Float32Array }>, metadata: Record<string, string> = { format: 'pt' }, dtype: 'F32' | 'F16' = 'F32'): void {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  const stored = new Map<string, ArrayBufferView>();
  for (const name of names) {
    const t = tensors[name];
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new Error(`tensor ${name}: shape [${t.shape}] does not match ${t.data.length} values`);
    const data = dtype === 'F16' ? float32ToHalf(t.data) : t.data;
    stored.set(name, data);
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + data.byteLength] };
    offset += data.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  // pad with spaces so the data section starts 8-byte aligned
  const headerBytes = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const fd = fs.openSync(path, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(headerBytes.length));
    fs.writeSync(fd, len);
    fs.writeSync(fd, headerBytes);
    for (const name of names) {
      const d = stored.get(name)!;
      fs.writeSync(fd, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    }
  } finally {
    fs.closeSync(fd);
  }
}
