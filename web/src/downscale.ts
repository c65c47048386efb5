// The photo is made as small as the model will see it before it leaves the phone: the server's own rule
// (src/image/tokens.ts: fit 2048, short side 768 for high/auto; 512 for low), re-encoded as JPEG. Drawing
// to a canvas also drops EXIF and GPS. A 12 MP photo goes up as a few hundred KB instead of 5–12 MB.
import { targetSize, type ImageDetail } from '../../src/image/tokens.ts'

export interface Prepared {
  photo: Blob
  width: number
  height: number
  originalBytes: number
}

const QUALITY = 0.85

export async function prepareForUpload (file: Blob, detail: ImageDetail): Promise<Prepared> {
  // from-image: the camera's EXIF orientation is applied, so the upright photo is what is sent.
  const bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' })
  try {
    const { width, height } = targetSize(bitmap.width, bitmap.height, detail)
    const canvas = new OffscreenCanvas(width, height)
    const context = canvas.getContext('2d')
    if (context === null) throw new Error('no 2d canvas')
    context.imageSmoothingQuality = 'high'
    context.drawImage(bitmap, 0, 0, width, height)
    const photo = await canvas.convertToBlob({ type: 'image/jpeg', quality: QUALITY })
    return { photo, width, height, originalBytes: file.size }
  } finally {
    bitmap.close()
  }
}
