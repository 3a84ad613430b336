// Test driver for an exported network linked to WebAssembly (net.wasm): node net_driver.mjs net.wasm META
// META = "<has_head> <num_inputs> <per_sample> <num_features> <workspace_bytes>". Same protocol as
// net_driver.c: requests on stdin (mode byte, uint32 n, payload), answers on stdout.
import { readFileSync, writeSync } from "node:fs";

const [wasmPath, meta] = process.argv.slice(2);
const [hasHead, nIn, perSample, nFeatures, wsBytes] = meta.split(" ").map(Number);
const { instance } = await WebAssembly.instantiate(readFileSync(wasmPath), {});
const ex = instance.exports;
const memory = ex.memory;
const input = readFileSync(0);
const align = (v) => (v + 63) & ~63;

function reserve(bytes) {  // one bump region per request, from __heap_base up
  const need = ex.__heap_base.value + bytes;
  if (need > memory.buffer.byteLength) memory.grow(Math.ceil((need - memory.buffer.byteLength) / 65536));
}

let at = 0;
const chunks = [];
while (at < input.length) {
  const mode = String.fromCharCode(input[at]);
  const n = input.readUInt32LE(at + 1);
  at += 5;
  const wstride = Math.ceil(n / 64);
  const payload = mode === "b" ? n * nIn : mode === "p" ? 8 * wstride * nIn : 8 * n * nFeatures;
  const outBytes = n * perSample * (hasHead ? 4 : 1);
  const base = align(ex.__heap_base.value);
  const pIn = base, pBits = align(pIn + payload), pOut = align(pBits + n * nIn), pWs = align(pOut + outBytes);
  reserve(pWs + wsBytes - ex.__heap_base.value + 64);
  new Uint8Array(memory.buffer, pIn, payload).set(input.subarray(at, at + payload));
  at += payload;
  const run = hasHead ? ex.net_scores : ex.net_bits;
  const runPacked = hasHead ? ex.net_scores_packed : ex.net_bits_packed;
  if (mode === "b") run(pIn, n, pOut, pWs);
  else if (mode === "p") runPacked(pIn, wstride, n, pOut, pWs);
  else { ex.net_encode(pIn, n, pBits); run(pBits, n, pOut, pWs); }
  chunks.push(Buffer.from(new Uint8Array(memory.buffer, pOut, outBytes)));
}
writeSync(1, Buffer.concat(chunks));
