// A hand-written ZIP writer for the archive tests: local headers, central directory, end of central directory
// (and zip64's record and locator), stored or deflated with deflateRawSync. It writes what it is told, so it
// can lie: sizes, CRCs, flags, methods, names as raw bytes, central records pointing at another entry's
// local header, a disk number, an entry count. Offsets are those of the archive as written.
import { crc32, deflateRawSync } from 'node:zlib'

export interface ZipEntrySpec {
  /** A string is written as UTF-8 with the UTF-8 flag (0x800); a Buffer as it is, with no flag. */
  name: string | Buffer
  /** The file's real content. */
  data?: Buffer
  /** 0 stored, 8 deflated (the default: 8 when there is data), anything else: `data` written as it is under that method number. */
  method?: number
  /** The uncompressed size to declare (central and local) instead of data's. */
  declaredSize?: number
  /** The compressed size to declare instead of the written data's. */
  declaredCompressedSize?: number
  /** Bytes written as the entry's data instead of data (stored) or deflateRawSync(data). */
  compressed?: Buffer
  /** Sizes and CRC after the data (flag 0x8), zeros in the local header: what streaming zippers (macOS Finder's among them) write. */
  dataDescriptor?: boolean
  /** Added to the general purpose bit flags (0x1 encrypted, 0x40 strong encryption, 0x8 data descriptor). */
  flags?: number
  crc?: number
  /** The local header's name, when it should differ from the central record's. */
  localName?: string | Buffer
  /** The local header's extra-field length, when it should lie (the bytes written stay `extra`'s). */
  localExtraLength?: number
  extra?: Buffer
  comment?: Buffer
  /** Write no local header or data: the central record points at an earlier entry's local header, or `plus` bytes past it (overlap). */
  pointAt?: { entry: number, plus?: number }
}

export interface ZipOptions {
  /** Write zip64 extra fields (sizes and offsets 0xFFFFFFFF in the 32-bit fields), a zip64 EOCD record and locator. */
  zip64?: boolean
  /** The EOCD's (and zip64 record's) "number of this disk". */
  diskNumber?: number
  /** The entry count the EOCD declares instead of the real one. */
  entryCount?: number
  comment?: Buffer
}

const UTF8 = 0x800
const DOS_TIME = 0x6000 // 12:00:00
const DOS_DATE = 0x5a21 // 2025-01-01

function u16 (value: number): Buffer { const b = Buffer.alloc(2); b.writeUInt16LE(value); return b }
function u32 (value: number): Buffer { const b = Buffer.alloc(4); b.writeUInt32LE(value >>> 0); return b }
function u64 (value: number): Buffer { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(value)); return b }

export function makeZip (specs: ZipEntrySpec[], options: ZipOptions = {}): Buffer {
  const parts: Buffer[] = []
  let offset = 0
  const push = (buffer: Buffer) => { parts.push(buffer); offset += buffer.length }
  const central: Buffer[] = []
  const localOffsets: number[] = []

  for (const spec of specs) {
    const data = spec.data ?? Buffer.alloc(0)
    const method = spec.method ?? (data.length > 0 ? 8 : 0)
    const body = spec.compressed ?? (method === 8 ? deflateRawSync(data) : data)
    const nameBytes = typeof spec.name === 'string' ? Buffer.from(spec.name, 'utf8') : spec.name
    const localNameBytes = spec.localName === undefined ? nameBytes : typeof spec.localName === 'string' ? Buffer.from(spec.localName, 'utf8') : spec.localName
    const flags = (typeof spec.name === 'string' ? UTF8 : 0) | (spec.dataDescriptor ? 0x8 : 0) | (spec.flags ?? 0)
    const crc = spec.crc ?? crc32(data)
    const size = spec.declaredSize ?? data.length
    const compressedSize = spec.declaredCompressedSize ?? body.length
    const localOffset = spec.pointAt === undefined ? offset : localOffsets[spec.pointAt.entry]! + (spec.pointAt.plus ?? 0)
    localOffsets.push(localOffset)

    const zip64Extra = options.zip64
      ? Buffer.concat([u16(0x0001), u16(24), u64(size), u64(compressedSize), u64(localOffset)])
      : Buffer.alloc(0)
    const small = (value: number) => options.zip64 ? 0xffffffff : value
    if (spec.pointAt === undefined) {
      const later = (value: number) => spec.dataDescriptor ? 0 : value
      const localZip64 = options.zip64
        ? Buffer.concat([u16(0x0001), u16(16), u64(later(size)), u64(later(compressedSize))])
        : Buffer.alloc(0)
      push(Buffer.concat([
        u32(0x04034b50), u16(options.zip64 ? 45 : 20), u16(flags), u16(method), u16(DOS_TIME), u16(DOS_DATE), u32(later(crc)),
        u32(later(small(compressedSize))), u32(later(small(size))), u16(localNameBytes.length),
        u16(spec.localExtraLength ?? localZip64.length + (spec.extra?.length ?? 0)),
        localNameBytes, localZip64, spec.extra ?? Buffer.alloc(0)
      ]))
      push(body)
      if (spec.dataDescriptor) {
        push(Buffer.concat(options.zip64
          ? [u32(0x08074b50), u32(crc), u64(compressedSize), u64(size)]
          : [u32(0x08074b50), u32(crc), u32(compressedSize), u32(size)]))
      }
    }
    const extra = Buffer.concat([zip64Extra, spec.extra ?? Buffer.alloc(0)])
    const comment = spec.comment ?? Buffer.alloc(0)
    central.push(Buffer.concat([
      u32(0x02014b50), u16(0x031e), u16(options.zip64 ? 45 : 20), u16(flags), u16(method), u16(DOS_TIME), u16(DOS_DATE), u32(crc),
      u32(small(compressedSize)), u32(small(size)), u16(nameBytes.length), u16(extra.length), u16(comment.length),
      u16(0), u16(0), u32(0o100644 << 16), u32(small(localOffset)), nameBytes, extra, comment
    ]))
  }

  const centralOffset = offset
  for (const record of central) push(record)
  const centralSize = offset - centralOffset
  const count = options.entryCount ?? specs.length
  const disk = options.diskNumber ?? 0
  const comment = options.comment ?? Buffer.alloc(0)
  if (options.zip64) {
    const zip64EocdOffset = offset
    push(Buffer.concat([
      u32(0x06064b50), u64(44), u16(45), u16(45), u32(disk), u32(disk), u64(count), u64(count), u64(centralSize), u64(centralOffset)
    ]))
    push(Buffer.concat([u32(0x07064b50), u32(disk), u64(zip64EocdOffset), u32(1)]))
    push(Buffer.concat([
      u32(0x06054b50), u16(0xffff), u16(0xffff), u16(0xffff), u16(0xffff), u32(0xffffffff), u32(0xffffffff), u16(comment.length), comment
    ]))
  } else {
    push(Buffer.concat([
      u32(0x06054b50), u16(disk), u16(disk), u16(Math.min(count, 0xffff)), u16(Math.min(count, 0xffff)),
      u32(centralSize), u32(centralOffset),
      u16(comment.length), comment
    ]))
  }
  return Buffer.concat(parts)
}
