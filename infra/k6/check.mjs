// Checks the k6 scenarios without k6: each script must parse as an ES
// module, export options with scenarios and thresholds, and run setup()
// and a few iterations against a fake gateway (k6 imports are stand-ins).
//   node infra/k6/check.mjs [script.js ...]   (default: every scenario here)
import { register } from 'node:module';
import { readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

register('./k6-stubs.mjs', import.meta.url);

const here = dirname(fileURLToPath(import.meta.url));
const scripts = process.argv.slice(2).length
  ? process.argv.slice(2).map((p) => resolve(p))
  : readdirSync(here).filter((f) => f.endsWith('.js') && f !== 'lib.js').map((f) => join(here, f));

// A fake gateway: creates coupons, admits each user once up to the supply,
// and writes their rows (issued) at once. Modes break it the ways the
// thresholds must catch: 'conflict' answers every issue 409 conflict,
// 'nothing' accepts no one (410), 'lost' never writes a row.
function fakeGateway(mode) {
  const coupons = new Map();
  let nextId = 1;
  return (method, url, body, params) => {
    const u = new URL(url);
    const reply = (status, obj) => ({
      status, body: JSON.stringify(obj), headers: {}, url,
      json(path) {
        const v = JSON.parse(this.body);
        return path === undefined ? v : path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), v);
      },
    });
    if (params && params.tags && typeof params.tags !== 'object') throw new Error('tags must be an object');
    if (method === 'POST' && u.pathname === '/v1/coupons') {
      if (!(params.headers || {}).Authorization) return reply(401, { error: 'unauthorized', message: 'no token' });
      const req = JSON.parse(body);
      if (!req.name || !Number.isInteger(req.totalQuantity)) return reply(400, { error: 'invalid_request', message: 'bad coupon' });
      const id = nextId++;
      coupons.set(id, { total: req.totalQuantity, users: new Set() });
      return reply(201, { id, name: req.name, totalQuantity: req.totalQuantity });
    }
    const g = u.pathname.match(/^\/v1\/coupons\/(\d+)$/);
    if (method === 'GET' && g) {
      const c = coupons.get(Number(g[1]));
      if (!c) return reply(404, { error: 'coupon_not_found', message: 'no such coupon' });
      const admitted = c.users.size;
      return reply(200, { id: Number(g[1]), totalQuantity: c.total, admitted, issued: mode === 'lost' ? 0 : admitted });
    }
    const m = u.pathname.match(/^\/v1\/coupons\/(\d+)\/issues$/);
    if (method === 'POST' && m) {
      const c = coupons.get(Number(m[1]));
      if (!c) return reply(404, { error: 'coupon_not_found', message: 'no such coupon' });
      if (mode === 'conflict') return reply(409, { error: 'conflict', message: 'another strategy' });
      if (mode === 'nothing') return reply(410, { error: 'sold_out', message: 'gone' });
      const { userId } = JSON.parse(body);
      if (!Number.isInteger(userId) || userId < 1) return reply(400, { error: 'invalid_request', message: 'userId' });
      if (c.users.has(userId)) return reply(409, { error: 'already_issued', message: 'again' });
      if (c.users.size >= c.total) return reply(410, { error: 'sold_out', message: 'gone' });
      c.users.add(userId);
      return reply(202, { couponId: Number(m[1]), userId, rank: c.users.size });
    }
    return reply(404, { error: 'not_found', message: `${method} ${u.pathname}` });
  };
}

// failedThresholds evaluates the thresholds on the custom metrics the
// stand-ins recorded (Counter: count, Rate: rate) and on checks; it
// returns the ones that fail. k6's own HTTP metrics are not simulated.
function failedThresholds(thresholds, s) {
  const failed = [];
  const values = (name) => (name === 'checks' ? s.checks.map(([, ok]) => ok) : s.metrics[name]);
  for (const [key, list] of Object.entries(thresholds)) {
    const samples = values(key);
    if (samples === undefined) continue;
    for (const t of list) {
      const expr = typeof t === 'string' ? t : t.threshold;
      const m = expr.match(/^(count|rate)\s*(==|<=|>=|<|>)\s*([0-9.]+)$/);
      if (!m) continue;
      const v = m[1] === 'count' ? samples.reduce((a, b) => a + Number(b), 0)
        : samples.filter(Boolean).length / Math.max(1, samples.length);
      const want = Number(m[3]);
      const ok = { '==': v === want, '<=': v <= want, '>=': v >= want, '<': v < want, '>': v > want }[m[2]];
      if (!ok) failed.push(`${key}: ${expr} (got ${v})`);
    }
  }
  return failed;
}

// run loads a script against a fake gateway in mode, runs setup(), 20
// iterations and teardown(), and returns the options and the stub state.
async function run(script, mode) {
  const s = (globalThis.__k6stub = { checks: [], metrics: {}, iteration: 0, http: fakeGateway(mode) });
  globalThis.__ENV = { ADMIN_TOKEN: 'check-token', DURATION: '1s', SUPPLY: '5', DRAIN_TIMEOUT: '1' };
  globalThis.__VU = 1;
  globalThis.__ITER = 0;
  const mod = await import(pathToFileURL(script).href + '?' + mode);
  const data = typeof mod.setup === 'function' ? mod.setup() : undefined;
  for (let i = 0; i < 20; i++) {
    s.iteration = i;
    globalThis.__ITER = i;
    mod.default(data);
  }
  if (typeof mod.teardown !== 'function') throw new Error('no teardown(): it must read the coupon back');
  mod.teardown(data);
  return { mod, s };
}

let failed = 0;
for (const script of scripts) {
  const name = script.slice(here.length + 1) || script;
  try {
    const { mod, s } = await run(script, 'ok');
    const o = mod.options;
    if (!o || typeof o !== 'object') throw new Error('no exported options');
    const scenarios = Object.entries(o.scenarios || {});
    if (scenarios.length === 0) throw new Error('options.scenarios is empty');
    for (const [sn, sc] of scenarios) {
      if (!sc.executor) throw new Error(`scenario ${sn} has no executor`);
      if (sc.executor === 'constant-arrival-rate' && !(sc.rate > 0 && sc.duration && sc.preAllocatedVUs > 0)) {
        throw new Error(`scenario ${sn}: constant-arrival-rate needs rate, duration and preAllocatedVUs`);
      }
    }
    const keys = Object.keys(o.thresholds || {});
    for (const want of ['http_req_failed', 'http_req_duration', 'accepted', 'conflicts', 'verified']) {
      if (!keys.some((k) => k.startsWith(want))) throw new Error(`options.thresholds must bound ${want}`);
    }
    if (typeof mod.default !== 'function') throw new Error('no default function');
    const bad = s.checks.filter(([, ok]) => !ok).map(([n]) => n);
    if (s.checks.length === 0) throw new Error('the iterations ran no check()');
    if (bad.length) throw new Error(`checks failed against the fake gateway: ${[...new Set(bad)].join('; ')}`);
    const fails = failedThresholds(o.thresholds, s);
    if (fails.length) throw new Error(`thresholds failed against the fake gateway: ${fails.join('; ')}`);
    // A broken run must fail its thresholds.
    const caught = [];
    const quiet = console.error;
    console.error = () => {}; // teardown() reports what it found; expected here
    try {
      for (const [mode, metric] of [['conflict', 'conflicts'], ['nothing', 'accepted'], ['lost', 'verified']]) {
        const broken = await run(script, mode);
        const f = failedThresholds(broken.mod.options.thresholds, broken.s).find((x) => x.startsWith(metric + ':'));
        if (!f) throw new Error(`a run where the gateway is '${mode}' passes the ${metric} threshold`);
        caught.push(`${mode}: ${f}`);
      }
    } finally {
      console.error = quiet;
    }
    console.log(`ok   ${name}: ${scenarios.map(([n, sc]) => `${n} (${sc.executor})`).join(', ')}; ${s.checks.length} checks passed; broken runs fail (${caught.join('; ')})`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e}`);
  }
}
console.log(`k6-check: ${scripts.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
