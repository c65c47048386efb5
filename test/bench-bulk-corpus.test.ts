// The bulk bench's archive (bench/lib/bulk-corpus.ts): its streaming ZIP writer must write what the service's own
// archive reader (src/bulk/archive/zip.ts) lists and reads back byte for byte, and its "unique" photos must be
// JPEGs the service accepts with their base's size, each with its own sha256: else `npm run bench -- --only bulk`
// would measure refusals or result-cache hits instead of preparation.
import t from 'tap'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { photoName, StoredZipWriter, uniquePhoto } from '../bench/lib/bulk-corpus.ts'
import { openArchive, type ArchiveLimits } from '../src/bulk/archive/zip.ts'
import { inspectImage } from '../src/image/inspect.ts'
import * as images from './support/images.ts'

const MiB = 1024 * 1024
const LIMITS: ArchiveLimits = { maxItems: 10_000, maxExpandedBytes: 8 * 1024 * MiB, maxEntryBytes: 20 * MiB, maxCompressionRatio: 20 }
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

t.test('the stored ZIP written by streaming is listed and read back by the service\'s reader', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-zip-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const base = await images.photoOfColour({ r: 90, g: 140, b: 60 }, 640, 480)
  const photos = [0, 1, 2, 3, 4].map(i => uniquePhoto(base, i))
  const path = join(dir, 'photos.zip')
  const zip = new StoredZipWriter(path)
  for (const [i, photo] of photos.entries()) await zip.add(photoName(i), photo)
  const bytes = await zip.close()
  t.equal(statSync(path).size, bytes, 'close() says the archive\'s size')

  const listing = await openArchive(path, LIMITS)
  try {
    t.same(listing.entries.map(e => [e.name, e.declaredBytes, e.problem]), photos.map((p, i) => [photoName(i), p.length, null]))
    for (const entry of listing.entries) {
      t.equal(sha256(await listing.readEntry(entry.index)), sha256(photos[entry.index] as Buffer), `${entry.name} read back byte for byte`)
    }
  } finally {
    await listing.close()
  }
})

t.test('each unique photo is an accepted JPEG of its base\'s size with its own sha256', async t => {
  const base = await images.photoOfColour({ r: 200, g: 180, b: 40 }, 800, 600)
  const seen = new Set<string>()
  for (let i = 0; i < 3; i++) {
    const inspected = await inspectImage(uniquePhoto(base, i))
    t.match(inspected, { mimeType: 'image/jpeg', width: 800, height: 600 })
    seen.add(inspected.sha256)
  }
  seen.add(sha256(base))
  t.equal(seen.size, 4, 'no two photos (nor the base) share a sha256')
})
