// The editor API's answers, as the CLI reads them: the routes' own types, derived from their
// TypeBox schemas. Type-only imports, so the CLI's HTTP commands load none of the service.
import type { Issue as ApiIssue } from '../issues/api-routes.js';
import type { Send } from '../sending/api-routes.js';

export type { Send };

/** An issue; `markdown` comes with one issue (GET /api/issues/:id), not in lists. */
export type Issue = ApiIssue & { markdown?: string };

export type IssuePage = { items: Issue[]; nextCursor: string | null };

/** What `POST /api/subscribers/import` answers: the server's own report type (a type-only import). */
export type { ImportReport } from '../subscribers/csv-import.js';

/** Messages of a send that will not change any more. */
export const finishedOf = (s: Send): number => s.submitted + s.failed + s.bounced + s.cancelled;
