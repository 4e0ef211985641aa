/**
 * A minimal GGUF (v2/v3) reader and writer: enough to derive test models from the shared tiny
 * models without Python (make-tiny-llama.py needs numpy and llama.cpp's gguf-py, which CI may lack).
 * Layout (ggml docs/gguf.md): magic "GGUF", u32 version, u64 tensor count, u64 kv count, the kvs,
 * the tensor infos (name, n_dims, dims, type, offset into the data section), padding to
 * `general.alignment` (default 32), then the data section. Everything is little-endian.
 */

export const enum GgufType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

export type GgufValue =
  | { type: Exclude<GgufType, GgufType.ARRAY | GgufType.STRING | GgufType.UINT64 | GgufType.INT64>; value: number }
  | { type: GgufType.UINT64 | GgufType.INT64; value: bigint }
  | { type: GgufType.STRING; value: string }
  | { type: GgufType.ARRAY; elementType: GgufType; value: Array<number | bigint | string> };

export interface GgufTensorInfo {
  name: string;
  dims: bigint[];
  type: number;
  /** Offset of the tensor's bytes from the start of the data section. */
  offset: bigint;
}

export interface GgufFile {
  version: number;
  kv: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  /** The data section, from its aligned start to the end of the file. */
  data: Uint8Array;
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();
const GGML_TYPE_F32 = 0;

class Reader {
  private pos = 0;
  private readonly view: DataView;
  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get offset() {
    return this.pos;
  }
  u8() {
    return this.view.getUint8(this.pos++);
  }
  u32() {
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  u64() {
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }
  string() {
    const n = Number(this.u64());
    const s = fromUtf8.decode(this.bytes.subarray(this.pos, this.pos + n));
    this.pos += n;
    return s;
  }
  scalar(type: GgufType): number | bigint | string {
    const v = this.view;
    const at = this.pos;
    switch (type) {
      case GgufType.UINT8: this.pos += 1; return v.getUint8(at);
      case GgufType.INT8: this.pos += 1; return v.getInt8(at);
      case GgufType.BOOL: this.pos += 1; return v.getUint8(at);
      case GgufType.UINT16: this.pos += 2; return v.getUint16(at, true);
      case GgufType.INT16: this.pos += 2; return v.getInt16(at, true);
      case GgufType.UINT32: this.pos += 4; return v.getUint32(at, true);
      case GgufType.INT32: this.pos += 4; return v.getInt32(at, true);
      case GgufType.FLOAT32: this.pos += 4; return v.getFloat32(at, true);
      case GgufType.UINT64: this.pos += 8; return v.getBigUint64(at, true);
      case GgufType.INT64: this.pos += 8; return v.getBigInt64(at, true);
      case GgufType.FLOAT64: this.pos += 8; return v.getFloat64(at, true);
      case GgufType.STRING: return this.string();
      default: throw new Error(`gguf: value type ${type} is not a scalar`);
    }
  }
}

class Writer {
  private chunks: Uint8Array[] = [];
  length = 0;
  bytes(b: Uint8Array) {
    this.chunks.push(b);
    this.length += b.byteLength;
  }
  private num(size: number, set: (v: DataView) => void) {
    const b = new Uint8Array(size);
    set(new DataView(b.buffer));
    this.bytes(b);
  }
  u32(v: number) {
    this.num(4, (d) => d.setUint32(0, v, true));
  }
  u64(v: bigint) {
    this.num(8, (d) => d.setBigUint64(0, v, true));
  }
  string(s: string) {
    const b = utf8.encode(s);
    this.u64(BigInt(b.byteLength));
    this.bytes(b);
  }
  scalar(type: GgufType, value: number | bigint | string) {
    switch (type) {
      case GgufType.UINT8: case GgufType.BOOL: return this.num(1, (d) => d.setUint8(0, value as number));
      case GgufType.INT8: return this.num(1, (d) => d.setInt8(0, value as number));
      case GgufType.UINT16: return this.num(2, (d) => d.setUint16(0, value as number, true));
      case GgufType.INT16: return this.num(2, (d) => d.setInt16(0, value as number, true));
      case GgufType.UINT32: return this.u32(value as number);
      case GgufType.INT32: return this.num(4, (d) => d.setInt32(0, value as number, true));
      case GgufType.FLOAT32: return this.num(4, (d) => d.setFloat32(0, value as number, true));
      case GgufType.UINT64: return this.u64(value as bigint);
      case GgufType.INT64: return this.num(8, (d) => d.setBigInt64(0, value as bigint, true));
      case GgufType.FLOAT64: return this.num(8, (d) => d.setFloat64(0, value as number, true));
      case GgufType.STRING: return this.string(value as string);
      default: throw new Error(`gguf: value type ${type} is not a scalar`);
    }
  }
  concat(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.byteLength;
    }
    return out;
  }
}

function alignmentOf(kv: Map<string, GgufValue>): number {
  const a = kv.get("general.alignment");
  return a && typeof a.value === "number" ? a.value : 32;
}

/** Parses a GGUF file (the data section is a view into `bytes`). */
export function readGguf(bytes: Uint8Array): GgufFile {
  const r = new Reader(bytes);
  if (fromUtf8.decode(bytes.subarray(0, 4)) !== "GGUF") throw new Error("gguf: bad magic");
  r.u32(); // the magic
  const version = r.u32();
  const tensorCount = Number(r.u64());
  const kvCount = Number(r.u64());
  const kv = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = r.string();
    const type = r.u32() as GgufType;
    if (type === GgufType.ARRAY) {
      const elementType = r.u32() as GgufType;
      const n = Number(r.u64());
      const value: Array<number | bigint | string> = [];
      for (let j = 0; j < n; j++) value.push(r.scalar(elementType));
      kv.set(key, { type, elementType, value });
    } else {
      kv.set(key, { type, value: r.scalar(type) } as GgufValue);
    }
  }
  const tensors: GgufTensorInfo[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = r.string();
    const nDims = r.u32();
    const dims: bigint[] = [];
    for (let d = 0; d < nDims; d++) dims.push(r.u64());
    const type = r.u32();
    tensors.push({ name, dims, type, offset: r.u64() });
  }
  const align = alignmentOf(kv);
  const dataStart = Math.ceil(r.offset / align) * align;
  return { version, kv, tensors, data: bytes.subarray(dataStart) };
}

/** Serializes a GGUF file the way gguf-py lays it out: header, kvs, tensor infos, zero padding, data. */
export function writeGguf(file: GgufFile): Uint8Array {
  const w = new Writer();
  w.bytes(utf8.encode("GGUF"));
  w.u32(file.version);
  w.u64(BigInt(file.tensors.length));
  w.u64(BigInt(file.kv.size));
  for (const [key, v] of file.kv) {
    w.string(key);
    w.u32(v.type);
    if (v.type === GgufType.ARRAY) {
      w.u32(v.elementType);
      w.u64(BigInt(v.value.length));
      for (const item of v.value) w.scalar(v.elementType, item);
    } else {
      w.scalar(v.type, v.value);
    }
  }
  for (const t of file.tensors) {
    w.string(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(t.type);
    w.u64(t.offset);
  }
  const align = alignmentOf(file.kv);
  const pad = (align - (w.length % align)) % align;
  w.bytes(new Uint8Array(pad));
  w.bytes(file.data);
  return w.concat();
}

/**
 * A writable Float32Array over one F32 tensor's bytes in `file.data` (a copy of the data is made
 * first when `file.data` is a view of someone else's buffer: pass a file from readGguf(copy)).
 */
export function f32Tensor(file: GgufFile, name: string): { values: Float32Array; rows: number; cols: number } {
  const t = file.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`gguf: no tensor ${name}`);
  if (t.type !== GGML_TYPE_F32) throw new Error(`gguf: tensor ${name} is not F32 (type ${t.type})`);
  const cols = Number(t.dims[0]);
  const rows = t.dims.slice(1).reduce((n, d) => n * Number(d), 1);
  const start = file.data.byteOffset + Number(t.offset);
  if (start % 4 !== 0) throw new Error(`gguf: tensor ${name} is not 4-byte aligned`);
  return { values: new Float32Array(file.data.buffer, start, rows * cols), rows, cols };
}
