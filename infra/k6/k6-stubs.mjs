// Module hooks for check.mjs: resolve `k6` and `k6/*` imports to small
// in-memory stand-ins, so node can load and exercise the scenarios.
const stubs = {
  'k6': `
    const S = () => globalThis.__k6stub;
    export function check(v, checks) {
      let ok = true;
      for (const [name, fn] of Object.entries(checks)) {
        const r = !!fn(v);
        S().checks.push([name, r]);
        ok = ok && r;
      }
      return ok;
    }
    export function fail(msg) { throw new Error('k6 fail(): ' + msg); }
    export function sleep() {}
    export function group(_name, fn) { return fn(); }
    export default { check, fail, sleep, group };`,
  'k6/http': `
    const S = () => globalThis.__k6stub;
    function request(method, url, body, params) { return S().http(method, url, body, params || {}); }
    const http = {
      request,
      get: (url, params) => request('GET', url, null, params),
      post: (url, body, params) => request('POST', url, body, params),
      put: (url, body, params) => request('PUT', url, body, params),
      del: (url, body, params) => request('DELETE', url, body, params),
      batch: (reqs) => reqs.map((r) => request(r.method || r[0], r.url || r[1], r.body || r[2], r.params || r[3])),
      expectedStatuses: (...codes) => { S().expected = codes; return { codes }; },
      setResponseCallback: (cb) => { S().responseCallback = cb; },
    };
    export default http;
    export const { get, post, put, del, batch, expectedStatuses, setResponseCallback } = http;`,
  'k6/execution': `
    const S = () => globalThis.__k6stub;
    export default {
      get scenario() { return { name: 'stub', iterationInTest: S().iteration, iterationInInstance: S().iteration }; },
      get vu() { return { idInTest: 1, iterationInScenario: S().iteration }; },
      test: { abort: (m) => { throw new Error('k6 abort: ' + m); } },
    };`,
  'k6/metrics': `
    const S = () => globalThis.__k6stub;
    class Metric {
      constructor(name) { if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(name)) throw new Error('bad metric name ' + name); this.name = name; }
      add(v) { (S().metrics[this.name] ||= []).push(v); }
    }
    export class Counter extends Metric {}
    export class Rate extends Metric {}
    export class Trend extends Metric {}
    export class Gauge extends Metric {}`,
};

export async function resolve(specifier, context, next) {
  if (specifier === 'k6' || specifier.startsWith('k6/')) {
    if (!(specifier in stubs)) throw new Error(`check.mjs has no stand-in for import '${specifier}'`);
    return { url: 'k6stub:' + specifier, shortCircuit: true };
  }
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (url.startsWith('k6stub:')) {
    return { format: 'module', source: stubs[url.slice('k6stub:'.length)], shortCircuit: true };
  }
  return next(url, context);
}
