/**
 * A row's content keys, computed in one pass over its fields' characters: a 64-bit near-duplicate key, equal for
 * contents differing only in letter case and whitespace (runs collapsed, ends trimmed), and a 32-bit fingerprint
 * of the exact characters, which tells an exact duplicate from a near one among rows with equal near keys.
 * Building a folded string with toLowerCase and a regex and hashing it natively costs several times more.
 */

/** Lower-case non-ASCII code units, filled in on first sight so such text pays for toLowerCase once per character. */
const lowerCase = new Uint16Array(65_536);

function foldCase(code: number): number {
  let folded = lowerCase[code]!;
  if (folded === 0) {
    // A character whose lower case is longer than one code unit (İ) keeps its first one: close enough for a key.
    folded = String.fromCharCode(code).toLowerCase().charCodeAt(0);
    lowerCase[code] = folded;
  }
  return folded;
}

/** The non-ASCII characters JavaScript's \s matches. */
function isUnicodeWhitespace(code: number): boolean {
  return (
    code === 0xa0 || code === 0x1680 || (code >= 0x2000 && code <= 0x200a) || code === 0x2028 || code === 0x2029 || code === 0x202f || code === 0x205f || code === 0x3000 || code === 0xfeff
  );
}

const space = 32;
/** Separates fields so ("ab", "c") and ("a", "bc") get different keys. */
const fieldSeparator = 0x10001;

/**
 * Two independent 32-bit lanes (FNV-1a and a murmur-style multiply-xorshift) make the 64-bit near key; a third
 * FNV-1a lane sees the characters unfolded. The loop keeps its state in locals and tests ASCII first: it runs
 * over every character of every row.
 */
export class ContentKeys {
  private first = 0x811c9dc5;
  private second = 0x9747b28c;
  private exact = 0x050c5d1f;
  private length = 0;

  addField(text: string): this {
    let first = this.first;
    let second = this.second;
    let exact = this.exact;
    let length = this.length;
    let pendingSpace = false;
    let started = false;
    for (let index = 0; index <= text.length; index++) {
      let code: number;
      if (index === text.length) {
        code = fieldSeparator;
        exact = Math.imul(exact ^ code, 0x01000193);
      } else {
        code = text.charCodeAt(index);
        exact = Math.imul(exact ^ code, 0x01000193);
        if (code < 128) {
          if (code === space || (code >= 9 && code <= 13)) {
            pendingSpace = started;
            continue;
          }
          if (code >= 65 && code <= 90) code += 32;
        } else {
          if (isUnicodeWhitespace(code)) {
            pendingSpace = started;
            continue;
          }
          code = foldCase(code);
        }
        if (pendingSpace) {
          first = Math.imul(first ^ space, 0x01000193);
          second = Math.imul(second + space, 0x5bd1e995);
          second ^= second >>> 13;
          length++;
          pendingSpace = false;
        }
        started = true;
      }
      first = Math.imul(first ^ code, 0x01000193);
      second = Math.imul(second + code, 0x5bd1e995);
      second ^= second >>> 13;
      length++;
    }
    this.first = first;
    this.second = second;
    this.exact = exact;
    this.length = length;
    return this;
  }

  get exactFingerprint(): number {
    return finalMix(this.exact);
  }

  get nearHigh(): number {
    return finalMix(this.first ^ this.length);
  }

  get nearLow(): number {
    return finalMix(this.second ^ Math.imul(this.length, 0x9e3779b1));
  }
}

/** murmur3's finaliser: spreads every input bit over the output. */
export function finalMix(value: number): number {
  value ^= value >>> 16;
  value = Math.imul(value, 0x85ebca6b);
  value ^= value >>> 13;
  value = Math.imul(value, 0xc2b2ae35);
  value ^= value >>> 16;
  return value >>> 0;
}
