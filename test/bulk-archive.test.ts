// Issue 20's archive reader (src/bulk/archive/zip.ts) against hostile ZIPs, each attack in more than one shape,
// written by hand (test/support/zip.ts) so that they can lie. For each: is the whole archive refused (with
// which reason), is one item failed (with the code identifyVehicle gives and a reason), or is it read back
// byte for byte; and no file descriptor is left open, whatever happened.
import t, { type Test } from 'tap'
import { readdirSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { deflateRawSync, gzipSync } from 'node:zlib'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import * as images from './support/images.ts'
import { makeZip, type ZipEntrySpec, type ZipOptions } from './support/zip.ts'
import {
  ArchiveClosedError, MAX_ENTRY_NAME_LENGTH, openArchive, type ArchiveLimits, type ArchiveListing
} from '../src/bulk/archive/zip.ts'
import { ArchiveEntryRefusedError, ArchiveEntryTooLargeError, BulkArchiveError } from '../src/errors.ts'
import { inspectImage } from '../src/image/inspect.ts'

const MiB = 1024 * 1024
/** The defaults the job uses: BULK_MAX_ITEMS, 4 × BULK_MAX_ARCHIVE_BYTES, MAX_UPLOAD_BYTES, BULK_MAX_COMPRESSION_RATIO. */
const LIMITS: ArchiveLimits = { maxItems: 10_000, maxExpandedBytes: 8 * 1024 * MiB, maxEntryBytes: 20 * MiB, maxCompressionRatio: 20 }

const JPEG = await images.photoOfColour({ r: 120, g: 130, b: 90 }, 640, 480)
const PNG = await images.png(320, 240)
const WEBP = await images.webp(320, 240)

function openFds (): number {
  return readdirSync('/proc/self/fd').length
}

let archives = 0
function archiveFile (t: Test, zip: Buffer): string {
  const path = join(t.testdirName, `archive-${++archives}.zip`)
  writeFileSync(path, zip)
  return path
}

/** Opens the archive, runs `use`, closes it; asserts that no descriptor is left open. */
async function withListing (t: Test, zip: Buffer, use: (listing: ArchiveListing) => Promise<void>, limits: ArchiveLimits = LIMITS) {
  t.testdir({})
  const path = archiveFile(t, zip)
  const before = openFds()
  const listing = await openArchive(path, limits)
  try {
    await use(listing)
  } finally {
    await listing.close()
    t.equal(openFds(), before, 'no file descriptor left open')
  }
}

/** The whole archive's refusal: its reason (asserting the kind, the code and that no descriptor is left open). */
async function archiveRefusal (t: Test, zip: Buffer | string, limits: ArchiveLimits = LIMITS): Promise<string> {
  t.testdir({})
  const path = typeof zip === 'string' ? zip : archiveFile(t, zip)
  const before = openFds()
  try {
    const listing = await openArchive(path, limits)
    await listing.close()
    t.fail(`the archive was accepted with ${listing.entries.length} entries`)
    return 'ACCEPTED'
  } catch (err) {
    t.ok(err instanceof BulkArchiveError, `a BulkArchiveError (${String(err)})`)
    const refused = err as BulkArchiveError
    t.equal(refused.code, 'BAD_USER_INPUT')
    t.same(refused.extensions, { code: 'BAD_USER_INPUT', argument: 'archive', reason: refused.reason })
    t.equal(openFds(), before, 'no file descriptor left open')
    return refused.reason
  }
}

/** What becomes of one entry as an item: read, then through inspectImage as the job's pipeline would. */
async function itemOutcome (t: Test, listing: ArchiveListing, name: string): Promise<{ code: string, reason?: string, bytes?: Buffer }> {
  const entry = listing.entries.find(e => e.name === name)
  if (!entry) throw new Error(`${name} is not listed`)
  try {
    const bytes = await listing.readEntry(entry.index)
    if (entry.problem) throw new Error(`${name} has a problem (${entry.problem.reason}) yet was read`)
    try {
      await inspectImage(bytes)
      return { code: 'ACCEPTED', bytes }
    } catch (err) {
      const e = err as { code: string, extensions: { reason?: string } }
      return { code: e.code, reason: e.extensions.reason ?? 'not_an_image' }
    }
  } catch (err) {
    t.ok(err instanceof ArchiveEntryRefusedError || err instanceof ArchiveEntryTooLargeError, `${name}: an entry refusal (${String(err)})`)
    const e = err as ArchiveEntryRefusedError
    if (entry.problem) t.same({ code: e.code, reason: e.reason }, entry.problem, `${name}: readEntry refuses with the listed problem`)
    return { code: e.code, reason: e.reason }
  }
}

const photos: ZipEntrySpec[] = [
  { name: 'yard/north/IMG_0001.jpg', data: JPEG },
  { name: 'yard/north/IMG_0002.png', data: PNG, method: 0 },
  // Sizes after the data, as streaming zippers (macOS Finder's among them) write them.
  { name: 'yard/IMG_0003.webp', data: WEBP, dataDescriptor: true },
  { name: 'IMG_0004.jpg', data: JPEG, method: 0, dataDescriptor: true }
]

t.test('a normal archive of photos: every photo read back byte for byte; directories, __MACOSX and dot-files skipped', async t => {
  for (const zip64 of [false, true]) {
    const zip = makeZip([
      { name: 'yard/' }, { name: 'yard/north/' }, ...photos,
      { name: '__MACOSX/yard/._IMG_0001.jpg', data: Buffer.from('AppleDouble') }, { name: '.DS_Store', data: Buffer.from('Bud1') },
      { name: 'yard/.DS_Store', data: Buffer.from('Bud1') }, { name: 'yard/.thumbs/IMG_0001.jpg', data: JPEG }
    ], { zip64 })
    await withListing(t, zip, async listing => {
      t.same(listing.entries.map(e => [e.name, e.declaredBytes, e.problem]), photos.map(p => [p.name, p.data!.length, null]), `zip64 ${zip64}: the photos, in order`)
      t.same(listing.entries.map(e => e.index), [2, 3, 4, 5], 'index: the position in the central directory')
      for (const [i, entry] of listing.entries.entries()) {
        const bytes = await listing.readEntry(entry.index)
        t.ok(bytes.equals(photos[i]!.data!), `${entry.name}: byte-identical`)
        const inspected = await inspectImage(bytes)
        t.equal(inspected.mimeType, ['image/jpeg', 'image/png', 'image/webp', 'image/jpeg'][i])
      }
      // Read again, and several at once: each read is independent.
      const again = await Promise.all(listing.entries.map(e => listing.readEntry(e.index)))
      t.ok(again.every((bytes, i) => bytes.equals(photos[i]!.data!)), 'concurrent reads byte-identical')
    })
  }
  // A Windows zipper's backslashes are separators; a name in CP437 (no UTF-8 flag) is decoded.
  await withListing(t, makeZip([{ name: Buffer.from('Hof\\Traktor \x84.jpg', 'latin1'), data: JPEG }]), async listing => {
    t.same(listing.entries.map(e => e.name), ['Hof/Traktor ä.jpg'])
    t.ok((await listing.readEntry(0)).equals(JPEG))
  })
})

t.test('the same file opened twice lists the same entries with the same indexes (a job resumed after a restart)', async t => {
  const zip = makeZip([{ name: 'dir/' }, { name: '../x.jpg', data: JPEG }, ...photos, { name: '.DS_Store', data: Buffer.from('x') }, { name: 'z.jpg', data: PNG }])
  t.testdir({})
  const path = archiveFile(t, zip)
  const first = await openArchive(path, LIMITS)
  const second = await openArchive(path, LIMITS)
  t.same(second.entries, first.entries)
  t.ok((await second.readEntry(7)).equals(PNG), 'z.jpg by its index')
  await Promise.all([first.close(), second.close()])
})

t.test('declared size smaller or larger than the data: the item fails with size_mismatch, the others are read', async t => {
  const zip = makeZip([
    { name: 'smaller.jpg', data: JPEG, declaredSize: JPEG.length - 100 },
    { name: 'one-byte-smaller.jpg', data: JPEG, declaredSize: JPEG.length - 1 },
    { name: 'larger.jpg', data: JPEG, declaredSize: JPEG.length + 100 },
    ...photos
  ], {})
  await withListing(t, zip, async listing => {
    for (const name of ['smaller.jpg', 'one-byte-smaller.jpg', 'larger.jpg']) {
      t.same(await itemOutcome(t, listing, name), { code: 'BAD_USER_INPUT', reason: 'size_mismatch' }, name)
    }
    for (const photo of photos) t.equal((await itemOutcome(t, listing, photo.name as string)).code, 'ACCEPTED', photo.name as string)
  })
  // The same lie within the ratio: 64 KiB of random bytes (incompressible) followed by zeros declared as 64 KiB.
  const lie = Buffer.concat([randomBytes(64 * 1024), Buffer.alloc(3 * MiB)])
  await withListing(t, makeZip([{ name: 'lie.jpg', data: lie, declaredSize: 64 * 1024 }]), async listing => {
    t.equal(listing.entries[0]!.problem, null, 'the declared sizes look honest')
    const before = process.memoryUsage().arrayBuffers
    t.same(await itemOutcome(t, listing, 'lie.jpg'), { code: 'BAD_USER_INPUT', reason: 'size_mismatch' })
    t.ok(process.memoryUsage().arrayBuffers - before < 2 * MiB, 'not inflated past its declared size')
  })
  // A stored entry whose two sizes disagree: yauzl refuses the central directory itself (a whole-archive refusal).
  t.equal(await archiveRefusal(t, makeZip([...photos, { name: 'stored.jpg', data: JPEG, method: 0, declaredSize: JPEG.length + 10 }])), 'archive_unreadable')
  // A stored entry declaring more than it holds (both sizes) reaches into the next entry: overlapping.
  t.equal(await archiveRefusal(t, makeZip([{ name: 'stored.jpg', data: JPEG, method: 0, declaredSize: JPEG.length + 500, declaredCompressedSize: JPEG.length + 500 }, ...photos])),
    'overlapping_entries')
})

t.test('compression ratio: 1000:1 bombs and a zero-length compressed body fail their item before a byte is inflated', async t => {
  const bomb = Buffer.alloc(20 * MiB - 1)
  const zip = makeZip([
    { name: 'bomb.jpg', data: bomb },
    { name: 'bomb-small.jpg', data: Buffer.alloc(1_000_000) },
    { name: 'nothing-declared-as-ten.jpg', data: Buffer.alloc(0), declaredSize: 10, compressed: Buffer.alloc(0), method: 8 },
    ...photos
  ])
  await withListing(t, zip, async listing => {
    for (const name of ['bomb.jpg', 'bomb-small.jpg', 'nothing-declared-as-ten.jpg']) {
      const entry = listing.entries.find(e => e.name === name)!
      t.same(entry.problem, { code: 'BAD_USER_INPUT', reason: 'compression_ratio' }, name)
      t.same(await itemOutcome(t, listing, name), entry.problem)
    }
    t.equal(listing.entries.filter(e => e.problem === null).length, photos.length, 'the photos are fine')
  })
  // At the cap: accepted (the cap is "more than").
  const atCap = Buffer.concat([randomBytes(1000), Buffer.alloc(10_000)])
  await withListing(t, makeZip([{ name: 'ok.bin', data: atCap }]), async listing => {
    t.equal(listing.entries[0]!.problem, null)
  }, { ...LIMITS, maxCompressionRatio: 1000 })
})

t.test('overlapping entries (many central records, one local file): the archive is refused', async t => {
  const one = { name: 'one.jpg', data: Buffer.alloc(MiB, 7) }
  const tenOnOne = [one, ...Array.from({ length: 9 }, (_, i) => ({ name: `copy-${i}.jpg`, data: one.data, pointAt: { entry: 0 } }))]
  t.equal(await archiveRefusal(t, makeZip(tenOnOne)), 'overlapping_entries', '10 central records on 1 local file')
  // Fifield's shape: each record's local header starts inside the previous one's compressed data.
  const inside = [{ name: 'a.jpg', data: JPEG, method: 0 }, { name: 'b.jpg', data: JPEG, method: 0, pointAt: { entry: 0, plus: 100 } }]
  t.equal(await archiveRefusal(t, makeZip(inside)), 'overlapping_entries', 'a local header inside another entry\'s data')
  // The last entry's data running into the central directory.
  const intoCentral = [...photos, { name: 'last.jpg', data: JPEG, declaredCompressedSize: deflateRawSync(JPEG).length + 40 }]
  t.equal(await archiveRefusal(t, makeZip(intoCentral)), 'overlapping_entries', 'data over the central directory')
  // Even zip64.
  t.equal(await archiveRefusal(t, makeZip(tenOnOne, { zip64: true })), 'overlapping_entries', 'zip64')
})

t.test('too many entries, too many items, too many bytes: refused as a whole, before reading the rest', async t => {
  const empties = Array.from({ length: 25_000 }, (_, i) => ({ name: `e/${i}.jpg` }))
  t.equal(await archiveRefusal(t, makeZip(empties)), 'too_many_entries', '25,000 empty entries against 10,000 items')
  // Within the record bound (2 × 20,000), each empty entry is an item (FAILED, empty): 25,000 items are too many.
  t.equal(await archiveRefusal(t, makeZip(empties), { ...LIMITS, maxItems: 20_000 }), 'too_many_items', '25,000 empty entries against 20,000 items')
  const limits = { ...LIMITS, maxItems: 100 }
  const files = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `p/${i}.jpg`, data: Buffer.from([i & 0xff]) }))
  t.equal(await archiveRefusal(t, makeZip(files(101)), limits), 'too_many_items', '101 files against 100')
  // Skipped entries do not count as items; failed ones do.
  const skippedAndFailed = [...files(90), ...Array.from({ length: 60 }, (_, i) => ({ name: `__MACOSX/p/._${i}.jpg`, data: Buffer.from('x') }))]
  await withListing(t, makeZip(skippedAndFailed), async listing => { t.equal(listing.entries.length, 90) }, limits)
  t.equal(await archiveRefusal(t, makeZip([...files(90), ...Array.from({ length: 11 }, (_, i) => ({ name: `../${i}.jpg` }))]), limits), 'too_many_items')
  // The sum of what would be inflated.
  const expanded = { ...LIMITS, maxExpandedBytes: 1000 }
  t.equal(await archiveRefusal(t, makeZip([{ name: 'a', data: randomBytes(600) }, { name: 'b', data: randomBytes(600) }]), expanded), 'expanded_too_large')
  t.equal(await archiveRefusal(t, makeZip(photos, { zip64: true, entryCount: 2 ** 40 })), 'too_many_entries', 'zip64 declaring 2^40 entries')
  // Central records padded with 64 KiB of extra fields each (yauzl parses them all): bounded before the first is read.
  const padded = Array.from({ length: 20 }, (_, i) => ({ name: `p/${i}.jpg`, data: JPEG, extra: Buffer.alloc(65_000) }))
  t.equal(await archiveRefusal(t, makeZip(padded), { ...LIMITS, maxItems: 100 }), 'central_directory_too_large', '20 records of 65 KB for 100 items')
  await withListing(t, makeZip(padded.slice(0, 5)), async listing => { t.equal(listing.entries.length, 5, 'within the bound') }, { ...LIMITS, maxItems: 100 })
  // An entry count that lies: more records declared than there are.
  t.equal(await archiveRefusal(t, makeZip(photos, { entryCount: 5 })), 'archive_unreadable', 'more records declared than written')
})

t.test('names: too long, unsafe, not text: one failed item each, the archive goes on', async t => {
  const long = 'a'.repeat(65_531) + '.jpg'
  const emojiAtCut = 'b'.repeat(MAX_ENTRY_NAME_LENGTH - 1) + '🚜.jpg'
  const exact = 'c'.repeat(MAX_ENTRY_NAME_LENGTH - 4) + '.jpg'
  const unsafe = ['../../etc/passwd', '/abs', 'C:\\x', 'a\\..\\b', 'photos/../../x.jpg', 'C:x.jpg', './x.jpg', 'a/./b.jpg', 'x.jpg\u0000.exe', 'line\nbreak.jpg', '',
    'photo\u202Egpj.exe', 'a\u2066b.jpg']
  const zip = makeZip([
    { name: long, data: JPEG }, { name: emojiAtCut, data: JPEG }, { name: exact, data: JPEG },
    ...unsafe.map(name => ({ name, data: JPEG })),
    // A lone surrogate's bytes in a UTF-8 name decode to U+FFFD: a storable, safe name.
    { name: Buffer.concat([Buffer.from('bad-'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('.jpg')]), data: JPEG, flags: 0x800 },
    // 65,535 bytes of CP437 (no UTF-8 flag): only its start is decoded.
    { name: Buffer.alloc(65_535, 0x82), data: JPEG },
    { name: '__MACOSX/' + 'd'.repeat(5000), data: JPEG },
    ...photos
  ])
  await withListing(t, zip, async listing => {
    const byName = (name: string) => listing.entries.find(e => e.name === name)
    const tooLong = listing.entries[0]!
    t.same(tooLong.problem, { code: 'BAD_USER_INPUT', reason: 'name_too_long' }, '65,535 characters')
    t.equal(tooLong.name, 'a'.repeat(MAX_ENTRY_NAME_LENGTH), 'listed cut to 1,024 characters')
    t.equal(tooLong.declaredBytes, JPEG.length)
    const cut = listing.entries[1]!
    t.same(cut.problem?.reason, 'name_too_long')
    t.ok(cut.name.isWellFormed() && cut.name.length <= MAX_ENTRY_NAME_LENGTH, 'cut on a code point')
    t.equal(byName(exact)?.problem, null, '1,024 characters is allowed')
    for (const name of unsafe) {
      const entry = byName(name.replaceAll('\\', '/').replaceAll('\u0000', '\uFFFD'))
      t.same(entry?.problem, { code: 'BAD_USER_INPUT', reason: 'unsafe_name' }, JSON.stringify(name))
      t.same(await itemOutcome(t, listing, entry!.name), { code: 'BAD_USER_INPUT', reason: 'unsafe_name' })
    }
    t.ok(listing.entries.every(e => e.name.isWellFormed() && !e.name.includes('\u0000') && e.name.length <= MAX_ENTRY_NAME_LENGTH), 'every name storable and bounded')
    t.equal(byName('bad-\uFFFD\uFFFD\uFFFD.jpg')?.problem, null)
    t.same(byName('é'.repeat(MAX_ENTRY_NAME_LENGTH))?.problem, { code: 'BAD_USER_INPUT', reason: 'name_too_long' }, '65,535 bytes of CP437')
    t.notOk(listing.entries.some(e => e.name.startsWith('__MACOSX')), 'a long __MACOSX name is skipped too')
    for (const photo of photos) t.equal((await itemOutcome(t, listing, photo.name as string)).code, 'ACCEPTED')
  })
})

t.test('encryption and compression methods', async t => {
  const zip = makeZip([
    { name: 'zipcrypto.jpg', data: JPEG, flags: 0x1, compressed: Buffer.concat([randomBytes(12), deflateRawSync(JPEG)]) },
    { name: 'aes.jpg', data: JPEG, method: 99, compressed: randomBytes(JPEG.length) },
    { name: 'bzip2.jpg', data: JPEG, method: 12, compressed: randomBytes(JPEG.length) },
    { name: 'lzma.jpg', data: JPEG, method: 14, compressed: randomBytes(JPEG.length) },
    ...photos
  ])
  await withListing(t, zip, async listing => {
    t.same(await itemOutcome(t, listing, 'zipcrypto.jpg'), { code: 'BAD_USER_INPUT', reason: 'encrypted' })
    for (const name of ['aes.jpg', 'bzip2.jpg', 'lzma.jpg']) t.same(await itemOutcome(t, listing, name), { code: 'BAD_USER_INPUT', reason: 'unsupported_method' }, name)
    for (const photo of photos) t.equal((await itemOutcome(t, listing, photo.name as string)).code, 'ACCEPTED')
  })
  // Strong encryption (flag 0x40): yauzl refuses the whole central directory.
  t.equal(await archiveRefusal(t, makeZip([...photos, { name: 'strong.jpg', data: JPEG, flags: 0x41 }])), 'encrypted_archive')
})

t.test('an archive in the archive, and files that are not images', async t => {
  const inner = makeZip(photos)
  const tar = Buffer.alloc(1024)
  tar.write('photo.jpg', 0); tar.write('0000644\0', 100); tar.write('ustar\u000000', 257)
  const sevenZip = Buffer.concat([Buffer.from([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c, 0, 4]), randomBytes(64)])
  const rar = Buffer.concat([Buffer.from('Rar!\x1a\x07\x01\x00', 'latin1'), randomBytes(64)])
  const zip = makeZip([
    { name: 'inner.jpg', data: inner }, { name: 'inner-stored.zip', data: inner, method: 0 },
    { name: 'photos.gz', data: gzipSync(inner) }, { name: 'photos.tar', data: tar, method: 0 }, { name: 'photos.7z', data: sevenZip },
    { name: 'photos.rar', data: rar }, { name: 'empty.zip', data: makeZip([]) },
    { name: 'doc.pdf', data: images.pdf }, { name: 'logo.svg', data: images.svg }, { name: 'notes.txt', data: images.text },
    { name: 'phone.heic', data: images.heic }, { name: 'empty.jpg', data: Buffer.alloc(0) },
    ...photos
  ])
  await withListing(t, zip, async listing => {
    for (const name of ['inner.jpg', 'inner-stored.zip', 'photos.gz', 'photos.tar', 'photos.7z', 'photos.rar', 'empty.zip']) {
      t.same(await itemOutcome(t, listing, name), { code: 'BAD_USER_INPUT', reason: 'nested_archive' }, name)
    }
    // Read like any entry; refused by the image pipeline with the code identifyVehicle gives.
    for (const name of ['doc.pdf', 'logo.svg', 'notes.txt', 'phone.heic']) {
      t.same(await itemOutcome(t, listing, name), { code: 'BAD_USER_INPUT', reason: 'not_an_image' }, name)
    }
    t.same(listing.entries.find(e => e.name === 'empty.jpg')?.problem, { code: 'BAD_USER_INPUT', reason: 'empty' }, 'a zero-byte file')
    for (const photo of photos) t.equal((await itemOutcome(t, listing, photo.name as string)).code, 'ACCEPTED')
  })
})

t.test('an entry larger than MAX_UPLOAD_BYTES fails with PAYLOAD_TOO_LARGE, declared or actual', async t => {
  const small = { ...LIMITS, maxEntryBytes: 64 * 1024 }
  const zip = makeZip([
    { name: 'big.jpg', data: randomBytes(64 * 1024 + 1) },
    { name: 'at-limit.jpg', data: randomBytes(64 * 1024) },
    // zip64 could declare 5 GiB: refused from the declaration.
    ...photos
  ])
  await withListing(t, zip, async listing => {
    const big = listing.entries.find(e => e.name === 'big.jpg')!
    t.same(big.problem, { code: 'PAYLOAD_TOO_LARGE', reason: 'too_large' })
    try {
      await listing.readEntry(big.index)
      t.fail('read')
    } catch (err) {
      t.ok(err instanceof ArchiveEntryTooLargeError)
      t.same((err as ArchiveEntryTooLargeError).extensions, { code: 'PAYLOAD_TOO_LARGE', maxBytes: 64 * 1024, reason: 'too_large' })
    }
    t.equal(listing.entries.find(e => e.name === 'at-limit.jpg')?.problem, null)
  }, small)
  const huge = makeZip([{ name: 'huge.jpg', data: JPEG, declaredSize: 5 * 1024 * MiB }, ...photos], { zip64: true })
  await withListing(t, huge, async listing => {
    t.same(listing.entries[0], { index: 0, name: 'huge.jpg', declaredBytes: 5 * 1024 * MiB, problem: { code: 'PAYLOAD_TOO_LARGE', reason: 'too_large' } })
    t.equal(listing.entries.length, 5)
  })
})

t.test('not a ZIP, truncated, empty, multi-disk: refused as a whole', async t => {
  const good = makeZip(photos)
  const cases: Array<[string, Buffer]> = [
    ['a zero-byte file', Buffer.alloc(0)],
    ['a JPEG', JPEG],
    ['text', images.text],
    ['a gzip of a ZIP', gzipSync(good)],
    ['the first half of a ZIP', good.subarray(0, good.length >> 1)],
    ['a ZIP without its last 10 bytes', good.subarray(0, good.length - 10)],
    ['a ZIP without its central directory', Buffer.concat([good.subarray(0, good.indexOf(Buffer.from([0x50, 0x4b, 1, 2]))), good.subarray(good.length - 22)])],
    ['a ZIP with bytes after its end', Buffer.concat([good, Buffer.from('trailing')])],
    ['random bytes', randomBytes(4096)],
    ['a JPEG with a ZIP appended (offsets not moved)', Buffer.concat([JPEG, good])]
  ]
  for (const [what, bytes] of cases) t.equal(await archiveRefusal(t, bytes), 'archive_unreadable', what)
  t.equal(await archiveRefusal(t, makeZip(photos, { diskNumber: 1 })), 'archive_unreadable', 'multi-disk')
  t.equal(await archiveRefusal(t, makeZip(photos, { diskNumber: 2, zip64: true })), 'archive_unreadable', 'multi-disk zip64')
  t.equal(await archiveRefusal(t, join(t.testdirName, 'no-such-file.zip')), 'archive_unreadable', 'no file')
  t.equal(await archiveRefusal(t, t.testdirName), 'archive_unreadable', 'a directory')
  // A ZIP with nothing in it (or only skipped entries) is a valid, empty listing: the job decides.
  await withListing(t, makeZip([]), async listing => { t.same(listing.entries, []) })
  await withListing(t, makeZip([{ name: 'dir/' }, { name: '.DS_Store', data: Buffer.from('x') }]), async listing => { t.same(listing.entries, []) })
})

t.test('corrupt entries: CRC, deflate data, a local header that disagrees with its central record', async t => {
  const zip = makeZip([
    { name: 'crc.jpg', data: JPEG, crc: 0x12345678 },
    { name: 'garbage.jpg', data: JPEG, compressed: randomBytes(JPEG.length), method: 8 },
    { name: 'cut.jpg', data: JPEG, compressed: deflateRawSync(JPEG).subarray(0, 1000), method: 8, declaredSize: 10_000 },
    { name: 'x.jpg', localName: 'x'.repeat(400) + '.jpg', data: JPEG },
    { name: 'shifted.jpg', data: JPEG, localExtraLength: 300 },
    ...photos,
    { name: 'shifted-last.jpg', data: JPEG, localExtraLength: 20 }
  ])
  await withListing(t, zip, async listing => {
    t.same(await itemOutcome(t, listing, 'crc.jpg'), { code: 'BAD_USER_INPUT', reason: 'crc_mismatch' })
    // Random bytes may inflate to some output before zlib gives up: refused either way.
    for (const name of ['garbage.jpg', 'cut.jpg']) {
      const outcome = await itemOutcome(t, listing, name)
      t.ok(outcome.code === 'BAD_USER_INPUT' && ['corrupt_entry', 'size_mismatch'].includes(outcome.reason!), `${name}: ${outcome.reason}`)
    }
    // The local header names it otherwise: the central record's name is the one listed, and its data is intact.
    t.equal((await itemOutcome(t, listing, 'x.jpg')).code, 'ACCEPTED')
    // A local header claiming a longer extra field than written would read past its own span (into the next entry,
    // or the central directory).
    for (const name of ['shifted.jpg', 'shifted-last.jpg']) t.same(await itemOutcome(t, listing, name), { code: 'BAD_USER_INPUT', reason: 'bad_local_header' }, name)
    for (const photo of photos) t.equal((await itemOutcome(t, listing, photo.name as string)).code, 'ACCEPTED')
  })
})

t.test('closing: during a read, twice, and reads after it; no descriptor left open on any path', async t => {
  const big = randomBytes(8 * MiB)
  await withListing(t, makeZip([{ name: 'big.jpg', data: big, method: 0 }, ...photos]), async listing => {
    const reading = listing.readEntry(0)
    await new Promise(resolve => setImmediate(resolve))
    const closing = listing.close()
    await t.rejects(reading, ArchiveClosedError, 'a read in flight is stopped, not failed as the item\'s fault')
    await closing
    await listing.close()
    await t.rejects(listing.readEntry(1), ArchiveClosedError)
  })
  await withListing(t, makeZip(photos), async listing => {
    await t.rejects(listing.readEntry(99), RangeError, 'an index nothing has')
    const all = Promise.allSettled(listing.entries.map(e => listing.readEntry(e.index)))
    await listing.close()
    const settled = await all
    t.ok(settled.every(s => s.status === 'fulfilled' || s.reason instanceof ArchiveClosedError), 'each read either finished or was stopped')
  })
})

t.test('memory: a listing of 10,000 entries with 3 KB of comment and extra field each holds only what it lists', async t => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const extra = Buffer.concat([Buffer.from([0x99, 0x99]), Buffer.from([0x00, 0x04]), Buffer.alloc(1024)])
  const entries = Array.from({ length: 10_000 }, (_, i) => ({
    name: `yard/${String(i).padStart(5, '0')}.jpg`, data: Buffer.from([i & 0xff, 1, 2, 3]), method: 0, extra, comment: Buffer.alloc(2000, 0x41)
  }))
  t.testdir({})
  const path = archiveFile(t, makeZip(entries as ZipEntrySpec[], {} satisfies ZipOptions))
  const settled = async () => {
    for (let i = 0; i < 3; i++) {
      gc()
      await new Promise(resolve => setTimeout(resolve, 10))
    }
    return process.memoryUsage()
  }
  const before = await settled()
  const fds = openFds()
  const listing = await openArchive(path, LIMITS)
  const after = await settled()
  const grown = (after.heapUsed + after.arrayBuffers) - (before.heapUsed + before.arrayBuffers)
  t.equal(listing.entries.length, 10_000)
  t.ok(grown < 16 * MiB, `heap and buffers grew by ${(grown / MiB).toFixed(1)} MiB for 10,000 entries (their central records hold 30 MiB)`)
  t.ok((await listing.readEntry(9_999)).equals(entries[9_999]!.data))
  await listing.close()
  t.equal(openFds(), fds)
})
