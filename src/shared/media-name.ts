/**
 * A stored image's public name: the SHA-256 of its bytes in hex, a dot, and the extension of the
 * type read from its bytes. Served at PUBLIC_URL/media/<name>; nothing else is.
 */
export const MEDIA_NAME = /^([0-9a-f]{64})\.(png|jpg|gif|webp)$/;

/** The same name inside a longer text (an issue's HTML), unanchored. */
export const MEDIA_NAME_SOURCE = '[0-9a-f]{64}\\.(?:png|jpg|gif|webp)';
