// Benchmark images, made once with sharp from seeded noise (so they are not trivially
// compressible, and identical from run to run), cached in the OS temp directory.
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import sharp from 'sharp'

export const CACHE_DIR = join(tmpdir(), 'agrivision-bench')

export interface BenchImage {
  name: string
  path: string
  bytes: number
  width: number
  height: number
  sha256: string
}

interface Spec {
  name: string
  width: number
  height: number
  /** Noise amplitude, 0–128, on top of a smooth gradient. */
  noise: number
  quality: number
  exif?: boolean
}

export const SPECS = {
  /** ~100 KB 800×600 JPEG: the headline's upload (issue 19's setup) and the per-request CPU table. */
  photo: { name: 'photo-800x600.jpg', width: 800, height: 600, noise: 20, quality: 84 },
  /** ~100 KB photo-sized JPEG (scenario 2). */
  small: { name: 'small-1024x768.jpg', width: 1024, height: 768, noise: 15, quality: 80 },
  /** A tiny JPEG, for the 10,000-request token count (scenario 5). */
  tiny: { name: 'tiny-320x240.jpg', width: 320, height: 240, noise: 8, quality: 80 },
  /** ~10 MiB JPEG, full noise at quality 100 (scenario 4). */
  large: { name: 'large-3264x2448-q100.jpg', width: 3264, height: 2448, noise: 128, quality: 100 },
  /** A 12 MP camera photo with EXIF (orientation, camera, GPS): scenario 3's input. */
  camera: { name: 'camera-4000x3000-exif.jpg', width: 4000, height: 3000, noise: 40, quality: 92, exif: true }
} satisfies Record<string, Spec>

export type ImageName = keyof typeof SPECS

export async function benchImage (which: ImageName): Promise<BenchImage> {
  const spec: Spec = SPECS[which]
  mkdirSync(CACHE_DIR, { recursive: true })
  const path = join(CACHE_DIR, spec.name)
  if (!existsSync(path)) writeFileSync(path, await render(spec))
  const buffer = readFileSync(path)
  return {
    name: spec.name,
    path,
    bytes: buffer.length,
    width: spec.width,
    height: spec.height,
    sha256: createHash('sha256').update(buffer).digest('hex')
  }
}

async function render (spec: Spec): Promise<Buffer> {
  const { width, height } = spec
  let image = sharp(noisyGradient(width, height, spec.noise), { raw: { width, height, channels: 3 } })
    .jpeg({ quality: spec.quality })
  if (spec.exif) {
    image = image.withExif({
      IFD0: { Make: 'BenchPhone', Model: 'Field 12', DateTime: '2026:05:01 10:00:00' },
      IFD3: { GPSLatitudeRef: 'N', GPSLatitude: '52/1 31/1 0/1', GPSLongitudeRef: 'E', GPSLongitude: '13/1 24/1 0/1' }
    }).withMetadata({ orientation: 6 })
  }
  return await image.toBuffer()
}

/** A smooth RGB gradient plus seeded xorshift noise of ± amplitude. */
export function noisyGradient (width: number, height: number, amplitude: number, seed = 0x9e3779b9): Buffer {
  const buf = Buffer.alloc(width * height * 3)
  let s = seed >>> 0
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3
      const base = [60 + x * 120 / width, 110 + y * 90 / height, 50 + (x + y) * 60 / (width + height)]
      for (let c = 0; c < 3; c++) {
        s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0
        buf[i + c] = Math.max(0, Math.min(255, (base[c] as number) + ((s & 0xff) - 128) * amplitude / 128))
      }
    }
  }
  return buf
}
