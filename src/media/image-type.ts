import { imageSize } from 'image-size';

/** The image formats an editor may upload: what every mail client shows. SVG is not one (it runs scripts). */
export const IMAGE_TYPES = {
  png: 'image/png',
  jpg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
} as const;

export type ImageExt = keyof typeof IMAGE_TYPES;
export type ImageType = (typeof IMAGE_TYPES)[ImageExt];

export type SniffedImage = { ext: ImageExt; type: ImageType; width: number; height: number };

const isImageExt = (t: string | undefined): t is ImageExt => t !== undefined && Object.hasOwn(IMAGE_TYPES, t);

/**
 * What the bytes are, read from the bytes alone (never the file name nor the Content-Type the
 * client claims): PNG, JPEG, GIF or WebP whose header gives a width and a height, or undefined.
 * image-size checks each format's signature and reads its dimensions from its own header
 * (a JPEG's frame header may come after its metadata, hence the whole buffer); anything it takes
 * for another format (SVG, HTML, BMP, TIFF, ICO…) or cannot measure is not an image for us.
 */
export function sniffImage(bytes: Uint8Array): SniffedImage | undefined {
  let size: ReturnType<typeof imageSize>;
  try {
    size = imageSize(bytes);
  } catch {
    return undefined;
  }
  if (!isImageExt(size.type)) return undefined;
  const { width, height } = size;
  if (!width || !height || width < 1 || height < 1) return undefined;
  return { ext: size.type, type: IMAGE_TYPES[size.type], width, height };
}
