// A keyset-paged list from the API (`{ items, nextCursor }`): the first page, then "more" pages
// appended; loaded again from the first page whenever `deps` change.
import { useEffect, useState } from 'preact/hooks';
import { type ApiError, get } from './api';

type Page<T> = { items: T[]; nextCursor: string | null };

/** `url(cursor)`: the page's address; `load()` reloads from the first page, `load(next)` appends. */
export function usePagedList<T>(url: (cursor?: string) => string, deps: unknown[]) {
  const [items, setItems] = useState<T[]>();
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string>();

  const load = async (cursor?: string) => {
    try {
      const page = await get<Page<T>>(url(cursor));
      setItems((before) => (cursor && before ? [...before, ...page.items] : page.items));
      setNext(page.nextCursor);
      setError(undefined);
    } catch (err) {
      setError((err as ApiError).message);
    }
  };
  useEffect(() => {
    void load();
  }, deps);

  return { items, next, error, load };
}
