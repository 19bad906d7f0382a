import type { ApiClient } from './api-client.js';
import type { Issue, IssuePage } from './api-types.js';
import { ApiError, isNotFound, UsageError } from './errors.js';

/**
 * The issue a command names, by id or by slug. A number is tried as an id first and then as a
 * slug (a subject such as "2026" makes an all-digit slug). The API has no lookup by slug, so a
 * slug is found by paging through the list, newest first: a weekly letter has a few hundred
 * issues at most.
 */
export async function findIssue(api: ApiClient, ref: string): Promise<Issue> {
  const wanted = ref.trim();
  if (wanted === '') throw new UsageError('the issue must be an id or a slug');
  if (/^\d{1,15}$/.test(wanted) && Number(wanted) > 0) {
    try {
      return await api.request<Issue>('GET', `/api/issues/${Number(wanted)}`);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  const slug = wanted.toLowerCase();
  let cursor: string | null = null;
  do {
    const query: string = `?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const page: IssuePage = await api.request<IssuePage>('GET', `/api/issues${query}`);
    const found = page.items.find((i) => i.slug === slug);
    if (found) return found;
    cursor = page.nextCursor;
  } while (cursor);
  throw new ApiError(404, 'not_found', `no issue has the id or slug "${wanted}"`);
}
