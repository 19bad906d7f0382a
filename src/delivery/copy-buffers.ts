/**
 * The memory a worker's copies are built in, used again once a copy has gone out.
 *
 * A reader's copy is ~90 KB, built once and written to the relay once. Allocated fresh for every
 * copy, those buffers live outside V8's heap, and V8 answers that much outside memory with full
 * garbage collections: nodemailer sending freshly built 93 KB copies to smtp-sink from one process
 * ran a mark-compact every ~65 ms and used 286–329 µs of CPU a message, against 156–166 µs for
 * the same messages with their memory reused.
 *
 * Only a copy the relay accepted is given back (`give`): by then its whole data was written (the
 * relay answers only after the terminating dot), so nothing reads the memory again. A copy that
 * failed is not given back, whatever happened to it; the garbage collector takes its memory.
 */
export class CopyBuffers {
  /** Memory ready to be used again, the most recently given last. */
  private readonly free: ArrayBuffer[] = [];
  /** Memory handed out by take() and not given back yet: give() accepts only that, once. */
  private readonly out = new WeakSet<ArrayBuffer>();

  constructor(
    /** How many pieces of memory are kept for reuse; beyond that, what is given back is dropped. */
    private readonly keep = 64,
  ) {}

  /** A buffer of `size` bytes whose contents are undefined: the caller fills every byte. */
  take(size: number): Buffer {
    let memory: ArrayBuffer | undefined;
    for (let i = this.free.length - 1; i >= 0; i--) {
      if (this.free[i]!.byteLength >= size) {
        memory = this.free[i]!;
        this.free[i] = this.free[this.free.length - 1]!;
        this.free.pop();
        break;
      }
    }
    // Room for copies a little longer than this one (a longer name or address), in 4 KB steps.
    memory ??= new ArrayBuffer(Math.ceil((size + 1024) / 4096) * 4096);
    this.out.add(memory);
    return Buffer.from(memory, 0, size);
  }

  /**
   * Gives back the memory of a buffer from take(), once nothing will read it again. A buffer that
   * did not come from take(), or whose memory was given back already, changes nothing.
   */
  give(buffer: Buffer): void {
    const memory = buffer.buffer;
    if (!(memory instanceof ArrayBuffer) || !this.out.has(memory)) return;
    this.out.delete(memory);
    if (this.free.length < this.keep) this.free.push(memory);
  }

  /** Memory kept for reuse (for the tests). */
  get kept(): number {
    return this.free.length;
  }
}
