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
import http from 'k6/http';
import { check, fail } from 'k6';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const STRATEGY = __ENV.STRATEGY || 'async';
export const DURATION = __ENV.DURATION || '30s';
export const P99_MS = Number(__ENV.P99_MS || (STRATEGY === 'async' ? 25 : 1000));

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
  return Object.assign({
    http_req_failed: [{ threshold: 'rate<0.01', abortOnFail: false }],
    'http_req_duration{endpoint:issue}': [`p(99)<${P99_MS}`],
    checks: ['rate>0.99'],
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

// userBase keeps user IDs distinct between runs against the same coupon.
export function userBase() {
  return intEnv('USER_BASE', (Date.now() % 1e9) * 1000);
}

// issue sends one issue request and checks its answer is a deliberate one.
export function issue(couponId, userId) {
  const res = http.post(`${BASE_URL}/v1/coupons/${couponId}/issues?strategy=${STRATEGY}`,
    JSON.stringify({ userId }), { headers: { 'Content-Type': 'application/json' }, tags: { endpoint: 'issue' } });
  check(res, {
    'answer is 201/202, 409 or 410': (r) => [201, 202, 409, 410].includes(r.status),
    'errors are JSON with a code': (r) => r.status < 400 || (r.json('error') || '') !== '',
  });
  return res;
}
