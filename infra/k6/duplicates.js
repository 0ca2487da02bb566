// Every user asks twice in a row: the second answer must be 409
// already_issued (or 410 when the first was sold out), never a second 2xx.
//   k6 run -e BASE_URL=... -e ADMIN_TOKEN=... infra/k6/duplicates.js
import exec from 'k6/execution';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import { DURATION, intEnv, issue, setupRun, thresholds } from './lib.js';

export { teardown } from './lib.js';

const RATE = intEnv('RATE', 2000); // users per second; requests are twice that
const acceptedTwice = new Counter('accepted_twice');

export const options = {
  scenarios: {
    duplicates: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: Math.min(2000, Math.ceil(RATE / 10)),
      maxVUs: Math.min(5000, Math.ceil(RATE / 2)),
    },
  },
  // No user may ever be accepted twice.
  thresholds: thresholds({ accepted_twice: ['count==0'] }),
  summaryTrendStats: ['avg', 'p(50)', 'p(95)', 'p(99)', 'max'],
};

export function setup() {
  return setupRun(1, intEnv('SUPPLY', Math.floor(RATE * 10)));
}

export default function (data) {
  const user = data.base + exec.scenario.iterationInTest + 1;
  const first = issue(data.coupons[0], user);
  const second = issue(data.coupons[0], user);
  const ok = first.status >= 300 || second.status === 409;
  if (first.status < 300 && second.status < 300) acceptedTwice.add(1);
  check(second, { 'second ask is not accepted again': () => ok });
}
