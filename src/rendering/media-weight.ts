import { MEDIA_NAME_SOURCE } from '../shared/media-name.js';

/**
 * The images of our own media store (PUBLIC_URL/media/…) an issue shows, measured when it is
 * saved: how many distinct ones, their bytes in all, and the names it links that are not stored
 * (their URLs: a typo, or a store since emptied). Images hosted elsewhere are not counted:
 * their size is not ours to know without fetching them.
 */
export type MediaWeight = { images: number; bytes: number; missing: string[] };

/** The size of a stored object, or undefined when there is none (MediaStore.size). */
export type MediaSizeLookup = (name: string) => Promise<number | undefined>;

/**
 * Above this many bytes of images in all, the editor is warned: every reader who opens the
 * issue downloads them (on a phone, often over mobile data), and some clients stop loading.
 */
export const MEDIA_WEIGHT_WARN_BYTES = 1024 * 1024;

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The distinct names of our own media that these HTML fragments reference, in order. */
export function ownMediaNames(publicUrl: string, htmls: string[]): string[] {
  const pattern = new RegExp(`${escapeRegExp(publicUrl)}/media/(${MEDIA_NAME_SOURCE})`, 'g');
  const names = new Set<string>();
  for (const h of htmls) for (const m of h.matchAll(pattern)) names.add(m[1]!);
  return [...names];
}

/** The weight of the media the HTML references, or undefined when it references none. */
export async function mediaWeight(publicUrl: string, htmls: string[], sizeOf: MediaSizeLookup): Promise<MediaWeight | undefined> {
  const names = ownMediaNames(publicUrl, htmls);
  if (names.length === 0) return undefined;
  const sizes = await Promise.all(names.map(async (n) => [n, await sizeOf(n)] as const));
  return {
    images: names.length,
    bytes: sizes.reduce((sum, [, s]) => sum + (s ?? 0), 0),
    missing: sizes.filter(([, s]) => s === undefined).map(([n]) => `${publicUrl}/media/${n}`),
  };
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

export function mediaWarnings(weight: MediaWeight | undefined): string[] {
  if (!weight) return [];
  const warnings: string[] = [];
  if (weight.bytes > MEDIA_WEIGHT_WARN_BYTES) {
    warnings.push(
      `the issue's ${weight.images} uploaded image${weight.images === 1 ? '' : 's'} weigh ${mb(weight.bytes)} in all; ` +
        `every reader downloads them on opening it: keep them under ${mb(MEDIA_WEIGHT_WARN_BYTES)} (smaller or fewer images)`,
    );
  }
  for (const url of weight.missing) warnings.push(`the image ${url} is not stored here: readers will see a broken image`);
  return warnings;
}
