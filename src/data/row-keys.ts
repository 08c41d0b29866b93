/**
 * A 64-bit key that is equal for texts differing only in letter case and whitespace (runs collapsed, ends
 * trimmed). Folding and hashing happen in one pass over the characters: building the folded string with
 * toLowerCase and a regex costs several times more, per row, than the whole rest of validation.
 */

/** Lower-case code units, filled in on first sight so non-ASCII text pays for toLowerCase once per character. */
const lowerCase = new Uint16Array(65_536);
for (let code = 0; code < 128; code++) lowerCase[code] = code >= 65 && code <= 90 ? code + 32 : code;

function foldCase(code: number): number {
  let folded = lowerCase[code]!;
  if (folded === 0 && code !== 0) {
    // A character whose lower case is longer than one code unit (İ) keeps its first one: close enough for a key.
    folded = String.fromCharCode(code).toLowerCase().charCodeAt(0);
    lowerCase[code] = folded;
  }
  return folded;
}

/** The characters JavaScript's \s matches. */
function isWhitespace(code: number): boolean {
  if (code < 128) return code === 32 || (code >= 9 && code <= 13);
  return (
    code === 0xa0 || code === 0x1680 || (code >= 0x2000 && code <= 0x200a) || code === 0x2028 || code === 0x2029 || code === 0x202f || code === 0x205f || code === 0x3000 || code === 0xfeff
  );
}

const space = 32;
/** Separates fields so ("ab", "c") and ("a", "bc") get different keys. */
const fieldSeparator = 0x10001;

export class NearDuplicateKey {
  private first = 0x811c9dc5;
  private second = 0x9747b28c;
  private length = 0;

  /** Two independent 32-bit lanes (FNV-1a and a murmur-style multiply-xorshift) make the 64-bit key. */
  private mix(code: number): void {
    this.first = Math.imul(this.first ^ code, 0x01000193);
    const second = Math.imul(this.second + code, 0x5bd1e995);
    this.second = second ^ (second >>> 13);
    this.length++;
  }

  addField(text: string): this {
    let pendingSpace = false;
    let started = false;
    for (let index = 0; index < text.length; index++) {
      const code = text.charCodeAt(index);
      if (isWhitespace(code)) {
        pendingSpace = started;
        continue;
      }
      if (pendingSpace) {
        this.mix(space);
        pendingSpace = false;
      }
      this.mix(foldCase(code));
      started = true;
    }
    this.mix(fieldSeparator);
    return this;
  }

  get high(): number {
    return finalMix(this.first ^ this.length);
  }

  get low(): number {
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
