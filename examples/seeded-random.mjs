// mulberry32: a tiny seeded generator of numbers in [0, 1), so the examples' generated data never depends on
// Math.random and is the same, byte for byte, on every machine. Shared by the examples' generate-data scripts and
// the fault suite's poisoned rows.
/** @param {number} seed @returns {() => number} */
export function seededRandom(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  };
}
