// Real images made with sharp, so the server's sniffing and header reading meet genuine files.
import sharp from 'sharp'

const colour = { r: 40, g: 120, b: 60 }

export async function jpeg (width = 64, height = 48, options: { exif?: Record<string, Record<string, string>>, orientation?: number } = {}): Promise<Buffer> {
  let image = sharp({ create: { width, height, channels: 3, background: colour } }).jpeg({ quality: 80 })
  if (options.exif) image = image.withExifMerge(options.exif)
  if (options.orientation) image = image.withMetadata({ orientation: options.orientation })
  return await image.toBuffer()
}

export async function png (width = 64, height = 48, alpha = false): Promise<Buffer> {
  return await sharp({ create: { width, height, channels: alpha ? 4 : 3, background: alpha ? { ...colour, alpha: 0.5 } : colour } }).png().toBuffer()
}

export async function webp (width = 64, height = 48): Promise<Buffer> {
  return await sharp({ create: { width, height, channels: 3, background: colour } }).webp().toBuffer()
}

export async function gif (width = 64, height = 48): Promise<Buffer> {
  return await sharp({ create: { width, height, channels: 3, background: colour } }).gif().toBuffer()
}

/** A two-frame animated GIF. */
export async function animatedGif (width = 32, height = 32): Promise<Buffer> {
  const frames = await Promise.all(['#f00', '#00f'].map(background =>
    sharp({ create: { width, height, channels: 3, background } }).png().toBuffer()))
  return await sharp(frames, { join: { animated: true } }).gif({ loop: 0, delay: [100, 100] }).toBuffer()
}

/** A GPS-tagged photo as a phone would take it. */
export async function jpegWithGps (width = 800, height = 600): Promise<Buffer> {
  return await jpeg(width, height, {
    exif: {
      IFD0: { Make: 'TestPhone', Model: 'Field 1' },
      IFD3: { GPSLatitudeRef: 'N', GPSLatitude: '52/1 31/1 0/1', GPSLongitudeRef: 'E', GPSLongitude: '13/1 24/1 0/1' }
    }
  })
}

export const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>')
export const pdf = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n')
export const text = Buffer.from('this is not an image, just some text\n')
/** The start of a HEIC file: an ftyp box with brand heic. */
export const heic = Buffer.concat([Buffer.from([0, 0, 0, 0x18]), Buffer.from('ftypheic'), Buffer.from([0, 0, 0, 0]), Buffer.from('mif1heic'), Buffer.alloc(64)])
