import type { ReaderTokens } from './reader-tokens.js';

/** Every URL we put in front of a reader, built from PUBLIC_URL. */
export class ReaderLinks {
  constructor(
    private readonly publicUrl: string,
    private readonly tokens: ReaderTokens,
    private readonly ttl: { confirmHours: number; dataMinutes: number },
  ) {}

  confirm(subscriberId: number, now = new Date()): string {
    const expires = new Date(now.getTime() + this.ttl.confirmHours * 3600_000);
    return `${this.publicUrl}/confirm/${this.tokens.sign('confirm', subscriberId, expires)}`;
  }

  /** The short-lived page where a reader downloads or erases their data; mailed to them only. */
  data(subscriberId: number, now = new Date()): string {
    const expires = new Date(now.getTime() + this.ttl.dataMinutes * 60_000);
    return `${this.publicUrl}/data/${this.tokens.sign('data', subscriberId, expires)}`;
  }

  unsubscribe(subscriberId: number): string {
    return `${this.publicUrl}/unsubscribe/${this.tokens.sign('unsubscribe', subscriberId)}`;
  }

  manage(subscriberId: number): string {
    return `${this.publicUrl}/manage/${this.tokens.sign('manage', subscriberId)}`;
  }

  archive(): string {
    return `${this.publicUrl}/issues`;
  }
}
