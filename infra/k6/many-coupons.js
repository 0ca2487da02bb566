// Issue flood spread over many coupons (round robin) at a constant arrival
// rate: the partitioned path, no single hot key.
//   k6 run -e BASE_URL=... -e ADMIN_TOKEN=... -e COUPONS=32 infra/k6/many-coupons.js
import exec from 'k6/execution';
import { DURATION, intEnv, issue, setupRun, thresholds } from './lib.js';

export { teardown } from './lib.js';

const RATE = intEnv('RATE', 10000);
const COUPONS = intEnv('COUPONS', 32);

export const options = {
  scenarios: {
    many_coupons: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: Math.min(2000, Math.ceil(RATE / 20)),
      maxVUs: Math.min(5000, Math.ceil(RATE / 4)),
    },
  },
  thresholds: thresholds(),
  summaryTrendStats: ['avg', 'p(50)', 'p(95)', 'p(99)', 'max'],
};

export function setup() {
  return setupRun(COUPONS, intEnv('SUPPLY', 100000));
}

export default function (data) {
  const i = exec.scenario.iterationInTest;
  issue(data.coupons[i % data.coupons.length], data.base + i + 1);
}
