// The bulk scenario's archive (bench/bulk.ts): N synthetic phone photos in a stored ZIP, made once into CACHE_DIR.
// BASES base photos at 12 MP (4032×3024 landscape and 3024×4032 portrait, EXIF orientation 1, 3, 6 or 8, camera
// and GPS tags, baseline and progressive, ~0.6–1.1 MB: seeded noise on a gradient); photo i is base i % BASES with
// a JPEG comment (COM) segment after SOI that names it, so that every photo has its own sha256 (no result cache
// hit, no duplicate) for the cost of a copy. The ZIP is written entry by entry to a stream (never whole in memory):
// local header, data, and the central directory at the end (stored: phone JPEGs do not deflate).
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync, type WriteStream } from 'node:fs'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import sharp from 'sharp'
import { CACHE_DIR, noisyGradient } from './images.ts'

export const BASES = 20
/** Bumped when the photos or the archive's layout change (a new cache file). */
const VERSION = 1
const DIR = join(CACHE_DIR, 'bulk')

export interface BulkBase {
  index: number
  path: string
  bytes: number
  /** As stored (before EXIF orientation). */
  width: number
  height: number
  orientation: number
  progressive: boolean
}

export interface BulkArchive {
  path: string
  photos: number
  bytes: number
  /** The photos' bytes together. */
  photoBytes: number
  /** Each entry's name → its photo's sha256. */
  sha256: Record<string, string>
  /** Photos per base (the pipeline's figure is weighed by these). */
  perBase: number[]
  bases: BulkBase[]
}

interface BaseSpec { width: number, height: number, orientation: number, progressive: boolean, noise: number, quality: number }

function baseSpec (index: number): BaseSpec {
  // Three in four stored landscape (as phone sensors write them) with an orientation; one in four stored portrait.
  const portrait = index % 4 === 3
  return {
    width: portrait ? 3024 : 4032,
    height: portrait ? 4032 : 3024,
    orientation: portrait ? 1 : [1, 6, 3, 8][index % 4] as number,
    progressive: index % 2 === 1,
    noise: 6 + (index * 7) % 7, // 6–12
    quality: 80 + (index * 3) % 9 // 80–88
  }
}

/** The first `count` bases (made once, cached). */
export async function bulkBases (count = BASES): Promise<BulkBase[]> {
  mkdirSync(DIR, { recursive: true })
  const bases: BulkBase[] = []
  for (let index = 0; index < count; index++) {
    const spec = baseSpec(index)
    const path = join(DIR, `base-v${VERSION}-${index}.jpg`)
    if (!existsSync(path)) {
      const { width, height } = spec
      const jpeg = await sharp(noisyGradient(width, height, spec.noise, 0x9e3779b9 + index * 7919), { raw: { width, height, channels: 3 } })
        .jpeg({ quality: spec.quality, progressive: spec.progressive })
        .withExif({
          IFD0: { Make: 'BenchPhone', Model: `Field ${12 + index % 3}`, DateTime: `2026:05:${String(1 + index).padStart(2, '0')} 10:00:00` },
          IFD3: { GPSLatitudeRef: 'N', GPSLatitude: `52/1 ${index}/1 0/1`, GPSLongitudeRef: 'E', GPSLongitude: `13/1 ${index}/1 0/1` }
        })
        .withMetadata({ orientation: spec.orientation })
        .toBuffer()
      writeFileSync(`${path}.tmp`, jpeg)
      renameSync(`${path}.tmp`, path)
    }
    const { width, height, orientation, progressive } = spec
    bases.push({ index, path, bytes: readFileSync(path).length, width, height, orientation, progressive })
  }
  return bases
}

/** Photo `i`: its base with a COM segment naming it right after SOI (FF D8). */
export function uniquePhoto (base: Buffer, i: number): Buffer {
  const text = Buffer.from(`agrivision bench bulk photo ${i}`, 'latin1')
  const segment = Buffer.alloc(4 + text.length)
  segment.writeUInt16BE(0xfffe, 0)
  segment.writeUInt16BE(2 + text.length, 2)
  text.copy(segment, 4)
  return Buffer.concat([base.subarray(0, 2), segment, base.subarray(2)])
}

export function photoName (i: number): string {
  return `DCIM/100PHONE/IMG_${String(i + 1).padStart(5, '0')}.jpg`
}

/** The archive of `photos` photos over the first `bases` bases (made once, cached with its sha256 manifest). */
export async function bulkArchive (photos: number, bases = BASES): Promise<BulkArchive> {
  const made = await bulkBases(bases)
  const path = join(DIR, `photos-v${VERSION}-${photos}-of-${bases}.zip`)
  const manifest = `${path}.json`
  if (existsSync(path) && existsSync(manifest)) return JSON.parse(readFileSync(manifest, 'utf8')) as BulkArchive
  const buffers = made.map(b => readFileSync(b.path))
  const sha256: Record<string, string> = {}
  const perBase = made.map(() => 0)
  let photoBytes = 0
  const zip = new StoredZipWriter(`${path}.tmp`)
  for (let i = 0; i < photos; i++) {
    const photo = uniquePhoto(buffers[i % bases] as Buffer, i)
    const name = photoName(i)
    sha256[name] = createHash('sha256').update(photo).digest('hex')
    perBase[i % bases] = (perBase[i % bases] ?? 0) + 1
    photoBytes += photo.length
    await zip.add(name, photo)
  }
  const bytes = await zip.close()
  renameSync(`${path}.tmp`, path)
  const archive: BulkArchive = { path, photos, bytes, photoBytes, sha256, perBase, bases: made }
  writeFileSync(manifest, JSON.stringify(archive))
  return archive
}

const DOS_TIME = 0x6000 // 12:00:00
const DOS_DATE = 0x5cc1 // 2026-06-01
const UTF8 = 0x800

/** A stored (method 0) ZIP written to a file entry by entry; no zip64, so at most 65,535 entries and 4 GiB. */
export class StoredZipWriter {
  readonly #out: WriteStream
  readonly #central: Buffer[] = []
  #offset = 0

  constructor (path: string) {
    this.#out = createWriteStream(path, { mode: 0o600 })
  }

  async #write (buffer: Buffer): Promise<void> {
    this.#offset += buffer.length
    if (!this.#out.write(buffer)) await once(this.#out, 'drain')
  }

  async add (name: string, data: Buffer): Promise<void> {
    const nameBytes = Buffer.from(name, 'utf8')
    const crc = crc32(data)
    if (this.#offset + 30 + nameBytes.length + data.length > 0xffffffff || this.#central.length >= 0xffff) {
      throw new Error('the bench archive would need zip64 (over 4 GiB or 65,535 entries): use fewer photos')
    }
    const local = Buffer.alloc(30)
    local.writeUInt32LE(0x04034b50, 0)
    local.writeUInt16LE(20, 4)
    local.writeUInt16LE(UTF8, 6)
    local.writeUInt16LE(0, 8) // stored
    local.writeUInt16LE(DOS_TIME, 10)
    local.writeUInt16LE(DOS_DATE, 12)
    local.writeUInt32LE(crc, 14)
    local.writeUInt32LE(data.length, 18)
    local.writeUInt32LE(data.length, 22)
    local.writeUInt16LE(nameBytes.length, 26)
    local.writeUInt16LE(0, 28)
    const central = Buffer.alloc(46)
    central.writeUInt32LE(0x02014b50, 0)
    central.writeUInt16LE(20, 4)
    central.writeUInt16LE(20, 6)
    central.writeUInt16LE(UTF8, 8)
    central.writeUInt16LE(0, 10)
    central.writeUInt16LE(DOS_TIME, 12)
    central.writeUInt16LE(DOS_DATE, 14)
    central.writeUInt32LE(crc, 16)
    central.writeUInt32LE(data.length, 20)
    central.writeUInt32LE(data.length, 24)
    central.writeUInt16LE(nameBytes.length, 28)
    central.writeUInt32LE(this.#offset, 42) // the rest (extra, comment, disk, attributes) stays 0
    this.#central.push(central, nameBytes)
    await this.#write(Buffer.concat([local, nameBytes]))
    await this.#write(data)
  }

  /** Writes the central directory and the end record; the archive's size. */
  async close (): Promise<number> {
    const start = this.#offset
    const entries = this.#central.length / 2
    for (const part of this.#central) await this.#write(part)
    const end = Buffer.alloc(22)
    end.writeUInt32LE(0x06054b50, 0)
    end.writeUInt16LE(entries, 8)
    end.writeUInt16LE(entries, 10)
    end.writeUInt32LE(this.#offset - start, 12)
    end.writeUInt32LE(start, 16)
    await this.#write(end)
    this.#out.end()
    await once(this.#out, 'close')
    return this.#offset
  }
}
