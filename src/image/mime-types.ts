// The image types the service accepts, as sniffed from the bytes.
export const ACCEPTED_MIME_TYPES = ['image/jpeg', 'image/png', 'image/webp', 'image/gif'] as const
export type ImageMimeType = typeof ACCEPTED_MIME_TYPES[number]
