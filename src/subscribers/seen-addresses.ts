import { hash } from 'node:crypto';

const INITIAL_SLOTS = 4096;

/**
 * Every address seen in one import, so a repeat is recognised anywhere in the file, not only
 * within the batch being written.
 *
 * Why not a Set of the addresses: an import may be millions of rows, and a Set of them holds
 * every string alive until the last row (85 bytes an address of 30 characters, measured: 85 MB
 * for a million). Here each address is a 64-bit fingerprint (the first 8 bytes of its SHA-256)
 * in an open-addressing table kept at most half full: 16 to 32 bytes an address (17 MB for a
 * million, 2 MB for 100,000), in two typed arrays the garbage collector never walks.
 *
 * The price: two different addresses share a fingerprint with probability about n²/2⁶⁵
 * (3·10⁻⁸ for a million rows); the later one would then be reported as a repeat.
 */
export class SeenAddresses {
  // Slot i holds fingerprint hi[i]:lo[i]; lo = 0 marks an empty slot (a real 0 is stored as 1).
  private hi = new Uint32Array(INITIAL_SLOTS);
  private lo = new Uint32Array(INITIAL_SLOTS);
  private count = 0;

  /** Adds a normalised address; false when it was already there. */
  add(normalized: string): boolean {
    const digest = hash('sha256', normalized, 'buffer');
    const h = digest.readUInt32LE(0);
    const l = digest.readUInt32LE(4) || 1;
    if ((this.count + 1) * 2 > this.hi.length) this.grow();
    if (!this.insert(h, l)) return false;
    this.count++;
    return true;
  }

  /** How many distinct addresses were added. */
  get size(): number {
    return this.count;
  }

  /** What the table holds in memory, in bytes. */
  get bytes(): number {
    return this.hi.byteLength + this.lo.byteLength;
  }

  private insert(h: number, l: number): boolean {
    const mask = this.hi.length - 1;
    for (let i = l & mask; ; i = (i + 1) & mask) {
      if (this.lo[i] === 0) {
        this.hi[i] = h;
        this.lo[i] = l;
        return true;
      }
      if (this.lo[i] === l && this.hi[i] === h) return false;
    }
  }

  private grow(): void {
    const { hi, lo } = this;
    this.hi = new Uint32Array(hi.length * 2);
    this.lo = new Uint32Array(lo.length * 2);
    for (let i = 0; i < hi.length; i++) if (lo[i] !== 0) this.insert(hi[i]!, lo[i]!);
  }
}
