// An issue's state, derived in SQL from the issue row and its send (at most one per issue), so
// that every answer about an issue states it from the same statement that read (or wrote) the
// row. The words are `issueStates` (src/shared/statuses.ts); CONTEXT.md and the README say which
// changes each state allows.
import type { IssueState } from '../shared/statuses.js';

/**
 * The state of the issue row named `alias`, as an SQL expression. Usable in a RETURNING clause:
 * the send is read with the statement's snapshot, which an UPDATE of `issues` does not change.
 */
export function issueStateSql(alias: string): string {
  return `(SELECT CASE WHEN s.status IS NULL THEN CASE WHEN ${alias}.published_at IS NULL THEN 'draft' ELSE 'published' END
                      WHEN s.status = 'done' THEN 'sent'
                      ELSE s.status::text END
             FROM (SELECT NULL) AS one LEFT JOIN sends s ON s.issue_id = ${alias}.id)`;
}

/** The state, and when its send starts while it is scheduled, as two columns for a select list or RETURNING. */
export function issueStateColumns(alias: string): string {
  return `${issueStateSql(alias)} AS state,
          (SELECT s.scheduled_at FROM sends s WHERE s.issue_id = ${alias}.id AND s.status = 'scheduled') AS send_scheduled_at`;
}

/** What issueStateColumns adds to a row. */
export type IssueStateColumns = { state: IssueState; send_scheduled_at: Date | null };
