/**
 * AssemblyScript, compiled to `line-encoder.wasm` beside it by `npm run build:wasm` (a test checks that the
 * committed binary is this source's build). Escapes prepared lines' control characters and reads their content
 * keys off the UTF-8 bytes: `../line-encoder.ts` says what the keys mean and lays out the memory. Every byte of
 * every row passes through here, so the common case (ASCII text inside a string) takes sixteen bytes a step with
 * no unpredictable branch, and hashing works on 8-byte words, not characters.
 *
 * Memory is laid out by the host: the staged lines, their (start, content start, end) offsets as u32 triples,
 * the escaped lines and their lengths, the output keys (three u32 per line), a scratch area for the folded text
 * (1.5 times the longest line: folding can turn a two-byte character into three), and a u16 table mapping each
 * BMP code unit to its lower case.
 */

const space: u32 = 0x20;
const quote: u32 = 0x22;
const backslash: u32 = 0x5c;

// xxHash64's primes and round: well-studied mixing with one multiply chain per 8 bytes.
const prime1: u64 = 0x9e3779b185ebca87;
const prime2: u64 = 0xc2b2ae3d27d4eb4f;
const prime3: u64 = 0x165667b19e3779f9;

// @ts-ignore: decorator
@inline
function round(accumulator: u64, word: u64): u64 {
  return rotl<u64>(accumulator + word * prime2, 31) * prime1;
}

/** murmur3's 64-bit finaliser: spreads every input bit over the output. */
// @ts-ignore: decorator
@inline
function finalMix(value: u64): u64 {
  value ^= value >> 33;
  value *= 0xff51afd7ed558ccd;
  value ^= value >> 33;
  value *= 0xc4ceb9fe1a85ec53;
  value ^= value >> 33;
  return value;
}

/** Hashes bytes [start, end); the bytes up to 7 past `end` must be readable (the host leaves slack). */
function hashBytes(start: usize, end: usize, seed: u64): u64 {
  let accumulator = seed + (<u64>(end - start)) * prime3;
  let at = start;
  for (; at + 8 <= end; at += 8) accumulator = round(accumulator, load<u64>(at));
  const remaining = end - at;
  if (remaining > 0) {
    const mask = (<u64>1 << (<u64>remaining * 8)) - 1;
    accumulator = round(accumulator, load<u64>(at) & mask);
  }
  return finalMix(accumulator);
}

/** The characters JavaScript's \s matches, beyond ASCII. */
// @ts-ignore: decorator
@inline
function isUnicodeWhitespace(code: u32): bool {
  return (
    code == 0xa0 || code == 0x1680 || (code >= 0x2000 && code <= 0x200a) || code == 0x2028 || code == 0x2029 || code == 0x202f || code == 0x205f || code == 0x3000 || code == 0xfeff
  );
}

function writeUtf8(at: usize, code: u32): usize {
  if (code < 0x80) {
    store<u8>(at, code);
    return at + 1;
  }
  if (code < 0x800) {
    store<u8>(at, 0xc0 | (code >> 6));
    store<u8>(at + 1, 0x80 | (code & 0x3f));
    return at + 2;
  }
  store<u8>(at, 0xe0 | (code >> 12));
  store<u8>(at + 1, 0x80 | ((code >> 6) & 0x3f));
  store<u8>(at + 2, 0x80 | (code & 0x3f));
  return at + 3;
}

function hexValue(byte: u32): u32 {
  return byte <= 0x39 ? byte - 0x30 : (byte | 0x20) - 0x57;
}

/**
 * Writes the line's folded form to `scratch` and returns its end. Outside strings bytes are copied as they are, so
 * field names and string boundaries keep ("ab", "c") apart from ("a", "bc"). Inside a string, letters are lower
 * case, whitespace (raw, escaped, or Unicode) collapses to one space and is dropped at either end, and every other
 * escape stays written as it was, so a folded quote is never taken for a string boundary.
 */
function fold(start: usize, end: usize, scratch: usize, foldTable: usize): usize {
  let out = scratch;
  let at = start;
  while (at < end) {
    // Outside a string: structure, copied until a string opens.
    let byte = <u32>load<u8>(at++);
    store<u8>(out++, byte);
    if (byte != quote) continue;
    // Inside a string. Starting as if after a space drops leading whitespace.
    let afterSpace: u32 = 1;
    while (at < end) {
      if (at + 16 <= end) {
        // Sixteen bytes at a time up to the first one that needs a closer look: not ASCII, a quote or backslash, or
        // a space after whitespace (to collapse or drop). Letters are lowered on the way. Lines arrive escaped, so
        // their only raw whitespace is the space.
        const chunk = v128.load(at);
        const spaces = i8x16.eq(chunk, i8x16.splat(<i8>space));
        // Each lane's left neighbour is a space: lane 0's is the byte before the chunk.
        const afterSpaces = i8x16.shuffle(i8x16.splat(<i8>(0 - afterSpace)), spaces, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
        const stops = v128.or(
          v128.or(i8x16.lt_s(chunk, i8x16.splat(0)), v128.and(spaces, afterSpaces)),
          v128.or(i8x16.eq(chunk, i8x16.splat(<i8>quote)), i8x16.eq(chunk, i8x16.splat(<i8>backslash))),
        );
        const plain = ctz<u32>(i8x16.bitmask(stops) | 0x10000);
        if (plain > 0) {
          const upper = v128.and(i8x16.ge_u(chunk, i8x16.splat(0x41)), i8x16.le_u(chunk, i8x16.splat(0x5a)));
          // All sixteen are stored; only the plain ones are kept (the scratch area has room past its end).
          v128.store(out, i8x16.add(chunk, v128.and(upper, i8x16.splat(0x20))));
          out += plain;
          at += plain;
          afterSpace = (i8x16.bitmask(spaces) >> (plain - 1)) & 1;
          continue;
        }
      }
      byte = <u32>load<u8>(at++);
      if (byte < 0x80 && byte != quote && byte != backslash) {
        const isSpace = <u32>(byte == space);
        const lowered = byte + (<u32>(byte - 0x41 < 26) << 5);
        store<u8>(out, isSpace ? space : lowered);
        out += 1 - (isSpace & afterSpace);
        afterSpace = isSpace;
        continue;
      }
      if (byte == quote) {
        // A space written last is trailing whitespace.
        out -= afterSpace & <u32>(load<u8>(out - 1) == space);
        store<u8>(out++, quote);
        break;
      }
      let code: u32;
      if (byte == backslash) {
        const letter = <u32>load<u8>(at++);
        if (letter == 0x74 || letter == 0x6e || letter == 0x66 || letter == 0x72) {
          code = space; // \t \n \f \r
        } else if (letter == 0x75) {
          code = (hexValue(load<u8>(at)) << 12) | (hexValue(load<u8>(at + 1)) << 8) | (hexValue(load<u8>(at + 2)) << 4) | hexValue(load<u8>(at + 3));
          if (code - 9 < 5) {
            code = space;
            at += 4;
          } else {
            // A control character or lone surrogate: no case to fold, kept as its escape.
            store<u8>(out, backslash);
            store<u8>(out + 1, letter);
            memory.copy(out + 2, at, 4);
            out += 6;
            at += 4;
            afterSpace = 0;
            continue;
          }
        } else {
          store<u8>(out, backslash);
          store<u8>(out + 1, letter);
          out += 2;
          afterSpace = 0;
          continue;
        }
      } else {
        // A UTF-8 sequence: its lead byte says how many continuation bytes follow.
        const continuations: u32 = byte >= 0xf0 ? 3 : byte >= 0xe0 ? 2 : 1;
        code = byte & (0x3f >> continuations);
        for (let index: u32 = 0; index < continuations; index++) code = (code << 6) | (<u32>load<u8>(at++) & 0x3f);
        if (code >= 0x10000) {
          // Outside the BMP: no case folding, the bytes as they were.
          memory.copy(out, at - 4, 4);
          out += 4;
          afterSpace = 0;
          continue;
        }
        if (isUnicodeWhitespace(code)) code = space;
        else code = <u32>load<u16>(foldTable + (<usize>code << 1));
      }
      if (code == space) {
        store<u8>(out, space);
        out += 1 - afterSpace;
        afterSpace = 1;
      } else {
        out = writeUtf8(out, code);
        afterSpace = 0;
      }
    }
  }
  return out;
}

const nearSeed: u64 = 0x27d4eb2f165667c5;
const exactSeed: u64 = 0x94d049bb133111eb;

/** The hex digits JSON.stringify writes in a \u escape. */
// @ts-ignore: decorator
@inline
function hexDigit(value: u32): u32 {
  return value < 10 ? 0x30 + value : 0x57 + value;
}

/**
 * Copies [start, end) to `out` with every control character escaped as JSON.stringify escapes it, and returns
 * the end of the copy. The host leaves them raw: finding them costs a JavaScript scan of every string, here it is
 * one vector compare per sixteen bytes. Anything else the line needs escaped the host has escaped already.
 */
function escapeControlCharacters(start: usize, end: usize, out: usize): usize {
  let at = start;
  while (at < end) {
    if (at + 16 <= end) {
      const chunk = v128.load(at);
      const plain = ctz<u32>(i8x16.bitmask(i8x16.lt_u(chunk, i8x16.splat(<i8>space))) | 0x10000);
      v128.store(out, chunk);
      out += plain;
      at += plain;
      if (plain == 16) continue;
    }
    const byte = <u32>load<u8>(at++);
    if (byte >= space) {
      store<u8>(out++, byte);
      continue;
    }
    store<u8>(out++, backslash);
    if (byte == 0x08) store<u8>(out++, 0x62); // b
    else if (byte == 0x09) store<u8>(out++, 0x74); // t
    else if (byte == 0x0a) store<u8>(out++, 0x6e); // n
    else if (byte == 0x0c) store<u8>(out++, 0x66); // f
    else if (byte == 0x0d) store<u8>(out++, 0x72); // r
    else {
      store<u32>(out, 0x30303075); // u000, its last 0 overwritten by the high digit
      store<u8>(out + 3, hexDigit(byte >> 4));
      store<u8>(out + 4, hexDigit(byte & 15));
      out += 5;
    }
  }
  return out;
}

/** How many bytes of [start, end) are control characters: each grows by up to five when escaped. */
export function countControlCharacters(start: usize, end: usize): u32 {
  let count: u32 = 0;
  let at = start;
  for (; at + 16 <= end; at += 16) count += popcnt<u32>(i8x16.bitmask(i8x16.lt_u(v128.load(at), i8x16.splat(<i8>space))));
  for (; at < end; at++) count += <u32>(<u32>load<u8>(at) < space);
  return count;
}

/**
 * Writes `count` staged lines to `output`, back to back, with their control characters escaped, and each one's
 * length to `lengths[i]`; returns the bytes written. Line i is staged at `staging + lines[3i] .. staging +
 * lines[3i + 2]`, its content (everything after the kind and source) starting at `lines[3i + 1]`.
 */
export function escapeLines(staging: usize, lines: usize, count: u32, output: usize, lengths: usize): usize {
  let out = output;
  for (let line: u32 = 0; line < count; line++) {
    const range = lines + <usize>line * 12;
    const start = staging + <usize>load<u32>(range);
    const contentStart = staging + <usize>load<u32>(range + 4);
    const end = staging + <usize>load<u32>(range + 8);
    // The head (kind and source) has nothing left to escape.
    const lineStart = out;
    memory.copy(out, start, contentStart - start);
    out = escapeControlCharacters(contentStart, end, out + (contentStart - start));
    store<u32>(lengths + (<usize>line << 2), <u32>(out - lineStart));
  }
  return out - output;
}

/**
 * Writes the keys of `count` escaped lines at `output` (lengths at `lengths`, heads as staged at `lines`) to
 * `keys[3i ..]`: the 64-bit near key as two u32 (high, low), then a 32-bit fingerprint of the exact content bytes.
 */
export function keyLines(output: usize, lines: usize, lengths: usize, count: u32, keys: usize, scratch: usize, foldTable: usize): void {
  let lineStart = output;
  for (let line: u32 = 0; line < count; line++) {
    const range = lines + <usize>line * 12;
    const content = lineStart + (<usize>load<u32>(range + 4) - <usize>load<u32>(range));
    const end = lineStart + <usize>load<u32>(lengths + (<usize>line << 2));
    const near = hashBytes(scratch, fold(content, end, scratch, foldTable), nearSeed);
    const exact = hashBytes(content, end, exactSeed);
    const lineKeys = keys + <usize>line * 12;
    store<u32>(lineKeys, <u32>(near >> 32));
    store<u32>(lineKeys + 4, <u32>near);
    store<u32>(lineKeys + 8, <u32>(exact ^ (exact >> 32)));
    lineStart = end;
  }
}

/** Where the host's regions may begin. */
export function heapBase(): usize {
  return __heap_base;
}
