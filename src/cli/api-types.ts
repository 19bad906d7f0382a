// The parts of the editor API's answers the CLI reads (the routes' TypeBox schemas are the
// authority: src/issues/api-routes.ts, src/sending/api-routes.ts, src/subscribers/api-routes.ts).
// Declared here rather than imported so the CLI's HTTP commands load none of the service.

export type Issue = {
  id: number;
  slug: string;
  subject: string;
  preheader: string;
  status: 'draft' | 'published';
  createdAt: string;
  updatedAt: string;
  publishedAt: string | null;
  webUrl: string;
  sections: { id: string; title: string }[];
  htmlBytes: number;
  warnings: string[];
  markdown?: string;
};

export type IssuePage = { items: Issue[]; nextCursor: string | null };

export type SendStatus = 'scheduled' | 'sending' | 'paused' | 'cancelled' | 'done';

export type Send = {
  id: number;
  issueId: number;
  status: SendStatus;
  scheduledAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  fanoutDone: boolean;
  total: number;
  queued: number;
  sending: number;
  submitted: number;
  sent: number;
  failed: number;
  bounced: number;
  cancelled: number;
  softBounces: number;
  complaints: number;
  bounceRate: number;
  complaintRate: number;
  rateAlert: { message: string; at: string; waived: boolean } | null;
  ratePerSecond: number;
  etaSeconds: number | null;
};

/** What `POST /api/subscribers/import` answers: the server's own report type (a type-only import). */
export type { ImportReport } from '../subscribers/csv-import.js';

/** Messages of a send that will not change any more. */
export const finishedOf = (s: Send): number => s.submitted + s.failed + s.bounced + s.cancelled;
