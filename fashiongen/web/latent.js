/*
 * Reading `fashiongen project` latent files (.npz: a ZIP of .npy arrays, numpy.savez) in the browser.
 *
 * readNpz(arrayBuffer) -> Promise<{name: {dtype, shape, data}}> where data is a Float32Array/Float64Array,
 * an Array of Numbers (integers), or a string (numpy unicode scalars). Stored and deflated entries, ZIP64
 * included (numpy writes ZIP64 headers). Throws an Error naming what is wrong with the file.
 * Works in a browser (window.FashionGenLatent) and in Node (module.exports; deflate needs DecompressionStream).
 */
(function (root) {
  "use strict";

  function fail(message) { throw new Error("not a latent file of fashiongen project: " + message); }

  function u16(view, at) { return view.getUint16(at, true); }
  function u32(view, at) { return view.getUint32(at, true); }
  function u64(view, at) { return Number(view.getBigUint64(at, true)); }

  function endOfDirectory(view) {
    for (let at = view.byteLength - 22; at >= Math.max(0, view.byteLength - 22 - 65535); at--) {
      if (u32(view, at) === 0x06054b50) return at;
    }
    fail("no ZIP directory (is it an .npz file?)");
  }

  function entries(buffer) {
    const view = new DataView(buffer);
    if (view.byteLength < 22) fail("the file is too short");
    const eocd = endOfDirectory(view);
    let count = u16(view, eocd + 10), offset = u32(view, eocd + 16);
    if (count === 0xffff || offset === 0xffffffff) {  // ZIP64 end of central directory
      const locator = eocd - 20;
      if (locator < 0 || u32(view, locator) !== 0x07064b50) fail("a damaged ZIP64 directory");
      const record = u64(view, locator + 8);
      count = u64(view, record + 32);
      offset = u64(view, record + 48);
    }
    const found = [];
    for (let i = 0; i < count; i++) {
      if (u32(view, offset) !== 0x02014b50) fail("a damaged ZIP directory");
      const method = u16(view, offset + 10);
      let compressed = u32(view, offset + 20), size = u32(view, offset + 24), local = u32(view, offset + 42);
      const nameLength = u16(view, offset + 28), extraLength = u16(view, offset + 30), commentLength = u16(view, offset + 32);
      const name = new TextDecoder().decode(new Uint8Array(buffer, offset + 46, nameLength));
      let extra = offset + 46 + nameLength;
      const extraEnd = extra + extraLength;
      while (extra + 4 <= extraEnd) {  // ZIP64 sizes replace the fields that are all ones, in this order
        const id = u16(view, extra), length = u16(view, extra + 2);
        if (id === 0x0001) {
          let at = extra + 4;
          if (size === 0xffffffff) { size = u64(view, at); at += 8; }
          if (compressed === 0xffffffff) { compressed = u64(view, at); at += 8; }
          if (local === 0xffffffff) { local = u64(view, at); at += 8; }
        }
        extra += 4 + length;
      }
      if (u32(view, local) !== 0x04034b50) fail("a damaged ZIP entry " + name);
      const start = local + 30 + u16(view, local + 26) + u16(view, local + 28);
      found.push({ name, method, size, bytes: new Uint8Array(buffer, start, compressed) });
      offset = extraEnd + commentLength;
    }
    return found;
  }

  async function inflate(bytes) {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  function parseNpy(bytes, name) {
    const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];  // \x93NUMPY
    if (!magic.every((b, i) => bytes[i] === b)) fail(name + " is not a .npy array");
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const major = bytes[6];
    const headerLength = major === 1 ? u16(view, 8) : u32(view, 8);
    const start = (major === 1 ? 10 : 12) + headerLength;
    const header = new TextDecoder().decode(bytes.subarray(major === 1 ? 10 : 12, start));
    const descr = (header.match(/'descr':\s*'([^']+)'/) || fail(name + ": no dtype"))[1];
    if (/'fortran_order':\s*True/.test(header)) fail(name + " is stored in Fortran order");
    const shapeText = (header.match(/'shape':\s*\(([^)]*)\)/) || fail(name + ": no shape"))[1];
    const shape = shapeText.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
    const count = shape.reduce((a, b) => a * b, 1);
    const body = bytes.slice(start).buffer;  // a copy, aligned for the typed arrays below
    const little = descr[0] === "<" || descr[0] === "|" || descr[0] === "=";
    if (!little) fail(name + ": big-endian arrays are not supported");
    const kind = descr.slice(1);
    let data;
    if (kind === "f4") data = new Float32Array(body, 0, count);
    else if (kind === "f8") data = new Float64Array(body, 0, count);
    else if (kind === "i8") data = Array.from(new BigInt64Array(body, 0, count), Number);
    else if (kind === "i4") data = Array.from(new Int32Array(body, 0, count));
    else if (kind[0] === "U") {  // fixed-width UTF-32 text, NUL-padded
      const codes = new Uint32Array(body, 0, count * Number(kind.slice(1)));
      data = String.fromCodePoint(...Array.from(codes).filter((c) => c !== 0));
    } else fail(name + ": unsupported dtype " + descr);
    return { dtype: descr, shape, data };
  }

  async function readNpz(buffer) {
    const arrays = {};
    for (const entry of entries(buffer)) {
      if (!entry.name.endsWith(".npy")) continue;
      let bytes = entry.bytes;
      if (entry.method === 8) bytes = await inflate(bytes);
      else if (entry.method !== 0) fail(entry.name + ": unsupported ZIP compression " + entry.method);
      arrays[entry.name.slice(0, -4)] = parseNpy(bytes, entry.name);
    }
    return arrays;
  }

  const api = { readNpz, parseNpy };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else root.FashionGenLatent = api;
})(typeof self !== "undefined" ? self : this);
