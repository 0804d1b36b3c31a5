// A model exported by groundwork: load() and predict(inputs), on onnxruntime-web vendored beside
// this file (runtime/). Nothing is fetched from anywhere but this folder.
//
//   import { load, predict } from './model.js';
//   await load();                        // { threads, backend: 'wasm' | 'webgpu' | 'auto' }
//   const [label] = await predict([[0, 3, 16, ...]]);   // rows in, the first output's rows out
//
// schema.json holds the inputs and outputs (names, dtypes, shapes) of the model version.

const here = new URL('./', import.meta.url);
let ort = null;
let session = null;
let state = null;
export let schema = null;

const ARRAYS = {
  float32: Float32Array, float64: Float64Array, int64: BigInt64Array, int32: Int32Array,
  int16: Int16Array, int8: Int8Array, uint8: Uint8Array, bool: Uint8Array,
};

// The JS glue's input step: the flat values of one input, as the model takes them. The exported
// graph already holds the model's own preprocessing, so by default this changes nothing.
function prepareInput(name, flat) {
  return flat;
}

export async function load(options = {}) {
  if (session) return info();
  schema = await (await fetch(new URL('schema.json', here))).json();
  const runtime = schema.runtime;
  ort = await import(new URL('runtime/' + runtime.module, here).href);
  ort.env.wasm.wasmPaths = new URL('runtime/', here).href;
  ort.env.wasm.proxy = false;
  const threads = options.threads ?? Math.min(4, navigator.hardwareConcurrency || 1);
  ort.env.wasm.numThreads = self.crossOriginIsolated ? threads : 1;
  let backend = options.backend ?? 'auto';
  if (backend !== 'wasm') {
    const adapter = runtime.webgpu && navigator.gpu ? await navigator.gpu.requestAdapter().catch(() => null) : null;
    if (!adapter && backend === 'webgpu') {
      throw new Error(runtime.webgpu ? 'WebGPU is not offered by this browser' : 'this bundle has no WebGPU runtime (export with --webgpu)');
    }
    backend = adapter ? 'webgpu' : 'wasm';
  }
  const started = performance.now();
  session = await ort.InferenceSession.create(new URL(schema.model, here).href, {
    executionProviders: [backend], graphOptimizationLevel: 'all',
  });
  state = { backend, threads: backend === 'wasm' ? ort.env.wasm.numThreads : null,
            loadMs: performance.now() - started, runtime: `onnxruntime-web ${runtime.version}` };
  return info();
}

export function info() {
  return state && { ...state, inputs: session.inputNames, outputs: session.outputNames };
}

function flatten(value, dims, out) {
  if (Array.isArray(value)) {
    dims.push(value.length);
    value.forEach((item, i) => {
      const inner = [];
      flatten(item, inner, out);
      if (i === 0) dims.push(...inner);
    });
  } else {
    out.push(value);
  }
}

function tensorOf(spec, value) {
  const type = spec.dtype;
  const Kind = ARRAYS[type];
  if (!Kind) throw new Error(`input ${spec.name}: dtype ${type} is not supported in the browser`);
  let flat;
  let dims;
  if (value && value.data && value.dims) {
    flat = value.data;
    dims = value.dims;
  } else {
    const values = [];
    dims = [];
    flatten(value, dims, values);
    flat = values;
  }
  flat = prepareInput(spec.name, flat);
  const data = Kind === BigInt64Array ? BigInt64Array.from(flat, (v) => BigInt(Math.trunc(Number(v))))
    : (flat instanceof Kind ? flat : Kind.from(flat, (v) => Number(v)));
  return new ort.Tensor(type === 'bool' ? 'bool' : type, data, dims);
}

function rowsOf(tensor) {
  const flat = Array.from(tensor.data, (v) => (typeof v === 'bigint' ? Number(v) : v));
  const dims = tensor.dims.length ? tensor.dims : [flat.length];
  const build = (offset, depth) => {
    if (depth === dims.length - 1) return flat.slice(offset, offset + dims[depth]);
    const size = dims.slice(depth + 1).reduce((a, b) => a * b, 1);
    return Array.from({ length: dims[depth] }, (_, i) => build(offset + i * size, depth + 1));
  };
  return build(0, 0);
}

// inputs: rows (nested arrays) for a model of one input, or { name: rows } for several; a value may
// also be { data: TypedArray, dims: [...] }. Returns the first output's rows, or with { all: true }
// every output by name.
export async function predict(inputs, options = {}) {
  if (!session) await load();
  const specs = schema.inputs;
  const named = specs.length === 1 && (Array.isArray(inputs) || (inputs && inputs.data)) ? { [specs[0].name]: inputs } : inputs;
  const feeds = {};
  for (const spec of specs) {
    if (!(spec.name in named)) throw new Error(`missing input ${spec.name} (the model takes ${specs.map((s) => s.name).join(', ')})`);
    feeds[spec.name] = tensorOf(spec, named[spec.name]);
  }
  const results = await session.run(feeds);
  if (options.all) return Object.fromEntries(session.outputNames.map((name) => [name, rowsOf(results[name])]));
  return rowsOf(results[session.outputNames[0]]);
}

// Text models exported with --tokenizer: the token inputs of texts, made by the tokenizer bundled
// in tokenizer/ (@huggingface/tokenizers, from npm), padded to the longest text.
let tokenizer = null;
export async function tokenize(texts, { maxLength = 512 } = {}) {
  if (!schema) await load();
  if (!schema.tokenizer) throw new Error('this bundle has no tokenizer (export with --tokenizer)');
  if (!tokenizer) {
    const { Tokenizer } = await import(new URL('tokenizer/' + schema.tokenizer.module, here).href);
    const json = await (await fetch(new URL('tokenizer/tokenizer.json', here))).json();
    const config = await (await fetch(new URL('tokenizer/tokenizer_config.json', here))).json();
    tokenizer = new Tokenizer(json, config);
  }
  const encoded = texts.map((text) => tokenizer.encode(text));
  const length = Math.min(maxLength, Math.max(...encoded.map((e) => e.ids.length)));
  const pad = (values) => Array.from({ length }, (_, i) => (i < values.length ? values[i] : 0));
  const columns = {
    input_ids: encoded.map((e) => pad(e.ids.slice(0, length))),
    attention_mask: encoded.map((e) => pad(e.attention_mask.slice(0, length))),
    token_type_ids: encoded.map((e) => pad((e.token_type_ids || e.ids.map(() => 0)).slice(0, length))),
  };
  return Object.fromEntries(schema.inputs.filter((s) => s.name in columns).map((s) => [s.name, columns[s.name]]));
}
