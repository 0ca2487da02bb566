// Issue flood on one hot coupon at a constant arrival rate: distinct users,
// supply below demand (the coupon sells out during the run).
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e ADMIN_TOKEN=... infra/k6/hot-coupon.js
import exec from 'k6/execution';
import { DURATION, intEnv, issue, setupRun, thresholds } from './lib.js';

export { teardown } from './lib.js';

const RATE = intEnv('RATE', 10000);

export const options = {
  scenarios: {
    hot_coupon: {
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
  return setupRun(1, intEnv('SUPPLY', Math.floor(RATE * 10)));
}

export default function (data) {
  issue(data.coupons[0], data.base + exec.scenario.iterationInTest + 1);
}
