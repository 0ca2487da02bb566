// Shared settings and helpers of the k6 scenarios (k6 run infra/k6/<scenario>.js).
//
// Environment (k6 -e NAME=value or the shell's environment):
//   BASE_URL      gateway base URL                      (default http://127.0.0.1:8080)
//   COUPON_ID     coupon(s) to hit, comma-separated     (default: setup() creates them)
//   ADMIN_TOKEN   admin bearer token, to create coupons (required when COUPON_ID is unset)
//   STRATEGY      async | db-lock | redis-lock          (default async)
//   SUPPLY        supply of each created coupon         (default: per scenario)
//   RATE          arrival rate, requests per second     (default: per scenario)
//   DURATION      scenario length                       (default 30s)
//   USER_BASE     first user ID                         (default: derived from the clock)
//   P99_MS        p99 latency threshold, milliseconds   (default 25 for async, 1000 otherwise)
//   P95_MS        p95 latency threshold, milliseconds   (default: none)
//   DRAIN_TIMEOUT seconds teardown() waits for the sinker to write every admission (default 60)
//
// Thresholds fail a run that accepted nothing (accepted count>0), that got a
// 409 conflict (another strategy: conflicts count==0), or whose teardown()
// found the coupon over its supply or, after the drain, with fewer rows than
// admissions (verified rate==1). The latency bounds are parameters: they say
// what this machine must meet, not a claim about any hardware.
import http from 'k6/http';
import { check, fail, sleep } from 'k6';
import { Counter, Rate } from 'k6/metrics';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const STRATEGY = __ENV.STRATEGY || 'async';
export const DURATION = __ENV.DURATION || '30s';
export const P99_MS = Number(__ENV.P99_MS || (STRATEGY === 'async' ? 25 : 1000));
const P95_MS = __ENV.P95_MS ? Number(__ENV.P95_MS) : undefined;
const DRAIN_TIMEOUT = Number(__ENV.DRAIN_TIMEOUT || 60);
for (const [name, v] of [['P99_MS', P99_MS], ['P95_MS', P95_MS], ['DRAIN_TIMEOUT', DRAIN_TIMEOUT]]) {
  if (v !== undefined && !(v > 0)) throw new Error(`${name} must be a positive number (got ${__ENV[name]})`);
}

const accepted = new Counter('accepted');   // 201/202 answers
const conflicts = new Counter('conflicts'); // 409 conflict: the run targets the wrong strategy
const verified = new Rate('verified');      // teardown()'s checks of the coupon against its answers

const STRATEGIES = ['async', 'db-lock', 'redis-lock'];
if (!STRATEGIES.includes(STRATEGY)) {
  throw new Error(`STRATEGY must be one of ${STRATEGIES.join(', ')} (got ${STRATEGY})`);
}

// Every answer the issue endpoint gives on purpose: 201/202 accepted,
// 409 already issued, 410 sold out. Anything else counts as a failure in
// http_req_failed (503, 5xx, timeouts, 4xx other than these).
http.setResponseCallback(http.expectedStatuses(200, 201, 202, 409, 410));

export function intEnv(name, def) {
  const v = __ENV[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer (got ${v})`);
  return n;
}

// Thresholds shared by every scenario: few failures, a bounded p99.
export function thresholds(extra) {
  const latency = [`p(99)<${P99_MS}`];
  if (P95_MS !== undefined) latency.push(`p(95)<${P95_MS}`);
  return Object.assign({
    http_req_failed: [{ threshold: 'rate<0.01', abortOnFail: false }],
    'http_req_duration{endpoint:issue}': latency,
    checks: ['rate>0.99'],
    accepted: ['count>0'],
    conflicts: ['count==0'],
    verified: ['rate==1'],
  }, extra || {});
}

// setupCoupons returns the coupon IDs to hit: COUPON_ID when given, else
// `count` fresh coupons of `supply` created through the admin API.
export function setupCoupons(count, supply) {
  if (__ENV.COUPON_ID) {
    return __ENV.COUPON_ID.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  }
  const token = __ENV.ADMIN_TOKEN;
  if (!token) fail('set COUPON_ID, or ADMIN_TOKEN so setup() can create the coupons');
  const ids = [];
  for (let i = 0; i < count; i++) {
    const res = http.post(`${BASE_URL}/v1/coupons`, JSON.stringify({
      name: `k6 ${STRATEGY} ${i + 1}`, totalQuantity: supply, strategy: STRATEGY,
    }), { headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` }, tags: { endpoint: 'admin' } });
    if (!check(res, { 'coupon created (201)': (r) => r.status === 201 })) {
      fail(`create coupon: ${res.status} ${res.body}`);
    }
    ids.push(res.json('id'));
  }
  return ids;
}

// readCoupon returns GET /v1/coupons/{id}'s totalQuantity, admitted and issued.
function readCoupon(id) {
  const res = http.get(`${BASE_URL}/v1/coupons/${id}`, { tags: { endpoint: 'read' } });
  if (res.status !== 200) fail(`read coupon ${id}: ${res.status} ${res.body}`);
  return { total: res.json('totalQuantity'), admitted: res.json('admitted'), issued: res.json('issued') };
}

// setupRun returns what the default function and teardown() need: the
// coupons, their counts before the run, the first user ID.
export function setupRun(count, supply) {
  const coupons = setupCoupons(count, supply);
  const before = {};
  for (const id of coupons) before[id] = readCoupon(id);
  return { coupons, before, base: userBase() };
}

// teardown reads every coupon back: never more rows than the supply, and,
// once the sinker drained (waited up to DRAIN_TIMEOUT), a row for every
// admission the gateway accepted (answered 2xx, or whose outcome was
// unknown and that did reach the topic).
export function teardown(data) {
  for (const id of data.coupons) {
    const before = data.before[id];
    let c = readCoupon(id);
    for (let i = 0; c.issued < c.admitted && i < DRAIN_TIMEOUT * 5; i++) {
      sleep(0.2);
      c = readCoupon(id);
    }
    const ok = check(c, {
      'teardown: issued <= supply': (x) => x.issued <= x.total,
      'teardown: issued == admitted after the drain': (x) => x.issued === x.admitted,
    });
    verified.add(ok);
    if (!ok) console.error(`coupon ${id}: ${JSON.stringify(c)} (before the run ${JSON.stringify(before)})`);
  }
}

// userBase keeps user IDs distinct between runs against the same coupon.
export function userBase() {
  return intEnv('USER_BASE', (Date.now() % 1e9) * 1000);
}

// issue sends one issue request and checks its answer is a deliberate one.
export function issue(couponId, userId) {
  const res = http.post(`${BASE_URL}/v1/coupons/${couponId}/issues?strategy=${STRATEGY}`,
    JSON.stringify({ userId }), { headers: { 'Content-Type': 'application/json' }, tags: { endpoint: 'issue' } });
  const code = res.status >= 400 ? errorCode(res) : '';
  // A sample on every answer (0 or 1): k6 does not evaluate a threshold
  // of a metric that never got one, and a run accepting nothing must fail.
  accepted.add(res.status === 201 || res.status === 202 ? 1 : 0);
  conflicts.add(code === 'conflict' ? 1 : 0);
  check(res, {
    'answer is 201/202, 409 already_issued or 410': (r) => [201, 202, 410].includes(r.status) || code === 'already_issued',
    'errors are JSON with a code': (r) => r.status < 400 || code !== '',
  });
  return res;
}

function errorCode(res) {
  try {
    return res.json('error') || '';
  } catch (e) {
    return '';
  }
}
