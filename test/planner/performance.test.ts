import { describe, expect, it } from 'vitest';
import { timePlanner } from '../../bench/planner/timing.ts';

describe('planner speed', () => {
  it('evaluates a candidate in well under a millisecond', () => {
    const timing = timePlanner(2);
    expect(timing.candidates).toBeGreaterThan(1000);
    // The bound is 1 ms per candidate; measured means are tens of microseconds, so this holds on a loaded CI box.
    expect(timing.mean_microseconds_per_candidate).toBeLessThan(1000);
    expect(timing.suggestions_plan_milliseconds).toBeLessThan(100);
  });
});
