// The app's screens are paths under /editor; the server answers every one with the same page.
import { useEffect, useState } from 'preact/hooks';

export const BASE = '/editor';

export type Route =
  | { screen: 'issues' }
  | { screen: 'writer'; id: number | 'new' }
  | { screen: 'readers' }
  | { screen: 'reader'; id: number }
  | { screen: 'bounces' }
  | { screen: 'not-found' };

export function routeOf(pathname: string): Route {
  const p = pathname.replace(/\/+$/, '');
  if (p === BASE || p === `${BASE}/issues`) return { screen: 'issues' };
  if (p === `${BASE}/issues/new`) return { screen: 'writer', id: 'new' };
  const m = /^\/editor\/issues\/([1-9]\d{0,15})$/.exec(p);
  if (m) return { screen: 'writer', id: Number(m[1]) };
  if (p === `${BASE}/readers`) return { screen: 'readers' };
  const r = /^\/editor\/readers\/([1-9]\d{0,15})$/.exec(p);
  if (r) return { screen: 'reader', id: Number(r[1]) };
  if (p === `${BASE}/bounces`) return { screen: 'bounces' };
  return { screen: 'not-found' };
}

const listeners = new Set<() => void>();

let moveFocus = true;

/**
 * Goes to another screen (focus then moves to it, as after a page load), or with `replace` only
 * renames the one shown (a new issue once saved has its own address; focus stays where it is).
 */
export function navigate(to: string, opts: { replace?: boolean } = {}): void {
  moveFocus = !opts.replace;
  if (opts.replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  for (const l of listeners) l();
}

/** Whether the last change of path was a move to another screen (not a rename by navigate(…, {replace})). */
export const focusAfterNavigation = (): boolean => moveFocus;

/** The current path, following links, navigate() and the browser's back and forward. */
export function usePath(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const update = () => setPath(location.pathname);
    const onPop = () => {
      moveFocus = true;
      update();
    };
    listeners.add(update);
    addEventListener('popstate', onPop);
    return () => {
      listeners.delete(update);
      removeEventListener('popstate', onPop);
    };
  }, []);
  return path;
}

/** A same-app link: an ordinary <a> (open in a new tab works), followed without reloading. */
export function onLinkClick(event: MouseEvent): void {
  const a = (event.target as Element | null)?.closest('a');
  if (!a || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith(BASE) || a.target) return;
  event.preventDefault();
  if (url.pathname !== location.pathname) navigate(url.pathname);
}
