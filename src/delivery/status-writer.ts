import type { Pool } from '../db/pool.js';
import { markSubmitted } from './queries.js';

type Pending = { id: number; response: string; done: (err?: unknown) => void };

/**
 * Records submissions in batches: one UPDATE over `unnest` arrays for up to `maxBatch` messages,
 * written when the batch is full or `maxDelayMs` after its first entry. Each caller waits for its
 * own batch to commit (group commit), so a job completes only once its message is recorded:
 * nothing is lost on shutdown, and a crash leaves at most the in-flight messages in `sending`.
 */
export class StatusWriter {
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private writing = new Set<Promise<void>>();

  constructor(
    private readonly pool: Pool,
    private readonly maxBatch = 500,
    private readonly maxDelayMs = 10,
  ) {}

  submitted(id: number, response: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ id, response, done: (err) => (err ? reject(err) : resolve()) });
      if (this.pending.length >= this.maxBatch) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.maxDelayMs);
    });
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    const write = markSubmitted(this.pool, batch.map((p) => p.id), batch.map((p) => p.response)).then(
      () => batch.forEach((p) => p.done()),
      (err) => batch.forEach((p) => p.done(err)),
    );
    this.writing.add(write);
    void write.finally(() => this.writing.delete(write));
  }

  /** Writes whatever is waiting and waits for every write in progress. */
  async close(): Promise<void> {
    this.flush();
    await Promise.all([...this.writing]);
  }
}
