/**
 * The WHERE clause of a listing whose filters are each optional. A condition is a fixed SQL
 * fragment chosen by which filters are set, written with its own placeholders `$1`, `$2`, … for
 * its own values, which are renumbered into the query's; values only ever travel as parameters.
 *
 * The one way we write such filters, rather than `($1::x IS NULL OR col = $1)`: a filter left out
 * is a condition the planner never sees, so a partial index whose predicate a fragment repeats
 * (`bounces_unmatched … WHERE subscriber_id IS NULL`) serves it, and an unset filter costs
 * nothing.
 *
 *   const f = new SqlFilters().optional('status = $1::subscriber_status', filter.status);
 *   pool.query(`SELECT * FROM subscribers ${f.where} ORDER BY id LIMIT ${f.param(limit)}::int`, f.params);
 */
export class SqlFilters {
  /** The query's values, in the order of its placeholders. */
  readonly params: unknown[] = [];
  private readonly conditions: string[] = [];

  /** A condition that always applies; `$n` in it is its n-th value. */
  add(sql: string, ...values: unknown[]): this {
    const used = new Set([...sql.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
    if (used.size !== values.length || [...used].some((n) => n < 1 || n > values.length)) {
      throw new Error(`the condition "${sql}" does not use $1 to $${values.length} for its ${values.length} values`);
    }
    const placeholders = values.map((v) => this.param(v));
    this.conditions.push(sql.replace(/\$(\d+)/g, (_, n: string) => placeholders[Number(n) - 1]!));
    return this;
  }

  /** A condition on one value (`$1` in it), added only when the value is given. */
  optional(sql: string, value: unknown): this {
    return value === undefined ? this : this.add(sql, value);
  }

  /** A parameter outside the conditions (a LIMIT): its placeholder in the query. */
  param(value: unknown): string {
    this.params.push(value);
    return `$${this.params.length}`;
  }

  /** `WHERE a AND b`, or nothing when no condition applies. */
  get where(): string {
    return this.conditions.length > 0 ? `WHERE ${this.conditions.join(' AND ')}` : '';
  }
}
