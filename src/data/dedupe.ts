/**
 * Remembers every kept row by fixed-size keys instead of its text, so dedupe over millions of rows costs 12 bytes
 * a slot: the 64-bit near-duplicate key (case- and whitespace-folded content) and a 32-bit fingerprint of the
 * exact content. An open-addressing table in one typed array keeps the garbage collector out of it entirely.
 */

export const Membership = {
  /** No earlier kept row has the same near key: keep this row. */
  New: 0,
  /** An earlier kept row has the same content. */
  Exact: 1,
  /** An earlier kept row differs only in case or whitespace. */
  Near: 2,
} as const;
export type Membership = (typeof Membership)[keyof typeof Membership];

const wordsPerSlot = 3;
/**
 * A high load on purpose: memory is the budget that matters (3.5M rows take 2^22 slots, 48 MiB), and a longer
 * linear probe walks adjacent memory, which costs far less than the rest of a row's validation.
 */
const maxLoad = 0.9;
/**
 * The table is split into shards by the near key's top bits, each growing on its own: doubling one shard holds
 * its old and new arrays for a moment, 1/64 of the table, where doubling a single table would hold half as much
 * again as the whole (72 MiB at the 2^22-slot step instead of 48).
 */
const shardBits = 6;

class Shard {
  slots: Uint32Array;
  mask: number;
  size = 0;

  constructor(capacity: number) {
    this.slots = new Uint32Array(capacity * wordsPerSlot);
    this.mask = capacity - 1;
  }

  grow(): void {
    const old = this.slots;
    const capacity = (this.mask + 1) * 2;
    this.slots = new Uint32Array(capacity * wordsPerSlot);
    this.mask = capacity - 1;
    for (let offset = 0; offset < old.length; offset += wordsPerSlot) {
      const high = old[offset]!;
      const low = old[offset + 1]!;
      if (high === 0 && low === 0) continue;
      let slot = low & this.mask;
      while (this.slots[slot * wordsPerSlot] !== 0 || this.slots[slot * wordsPerSlot + 1] !== 0) slot = (slot + 1) & this.mask;
      this.slots.set(old.subarray(offset, offset + wordsPerSlot), slot * wordsPerSlot);
    }
  }
}

export class DigestSet {
  private readonly shards: Shard[];

  constructor(initialSlotsPerShard = 256) {
    const capacity = 2 ** Math.ceil(Math.log2(Math.max(initialSlotsPerShard, 16)));
    this.shards = Array.from({ length: 2 ** shardBits }, () => new Shard(capacity));
  }

  get count(): number {
    return this.shards.reduce((sum, shard) => sum + shard.size, 0);
  }

  /** Records a row's keys unless an earlier row has the same near key; says which case applied. */
  add(nearHigh: number, nearLow: number, exactFingerprint: number): Membership {
    // An all-zero near key marks an empty slot, so that one key value is nudged; the bias is 2^-64.
    if (nearHigh === 0 && nearLow === 0) nearLow = 1;
    const shard = this.shards[nearHigh >>> (32 - shardBits)]!;
    const { slots, mask } = shard;
    for (let slot = nearLow & mask; ; slot = (slot + 1) & mask) {
      const offset = slot * wordsPerSlot;
      const storedHigh = slots[offset]!;
      const storedLow = slots[offset + 1]!;
      if (storedHigh === 0 && storedLow === 0) {
        slots[offset] = nearHigh;
        slots[offset + 1] = nearLow;
        slots[offset + 2] = exactFingerprint;
        if (++shard.size > maxLoad * (mask + 1)) shard.grow();
        return Membership.New;
      }
      if (storedHigh === nearHigh >>> 0 && storedLow === nearLow >>> 0) {
        return slots[offset + 2] === exactFingerprint >>> 0 ? Membership.Exact : Membership.Near;
      }
    }
  }
}
