import slugify from '@sindresorhus/slugify';

/**
 * The slug a subject suggests: lower-case ASCII words joined by dashes, at most 80 characters.
 * The issue gets it, or `<slug>-2`, `-3`… when taken. Pure: the CLI uses it too, to find the
 * draft a file made before.
 */
export function slugBase(subject: string): string {
  let s = slugify(subject);
  if (s.length > 80) {
    // Cut at the last whole word that fits; a single word longer than that is cut short.
    const cut = s.slice(0, 80);
    s = s[80] === '-' || !cut.includes('-') ? cut : cut.replace(/-[^-]*$/, '');
  }
  return s.replace(/-+$/, '') || 'issue';
}

/** Whether `slug` is one a subject suggesting `base` may have got: `base`, `base-2`, `base-3`… */
export const isSlugOf = (slug: string, base: string): boolean => slug === base || (slug.startsWith(`${base}-`) && /^[0-9]+$/.test(slug.slice(base.length + 1)));
