// The file under yauzl: positioned reads on one descriptor, with the small reads of the central directory served
// from a block read ahead. yauzl's own reader makes two read(2) calls per central record, one at a time (a
// 10,000-entry listing took 2 s of CPU); here a listing costs about one call per 64 KiB of central directory.
// The descriptor is closed when yauzl lets go of the reader (its reference count back to 0), and only once no
// read is in flight on it (a closed number can be reused by the next open: a late read would read another file);
// the owner closes it when yauzl never took it (a failed open).
// Not fs.createReadStream({ fd }): its destroy() closes the descriptor even with autoClose: false.
import { close, read } from 'node:fs'
import { Readable } from 'node:stream'
import yauzl from 'yauzl'

const BLOCK_BYTES = 64 * 1024

type ReadCallback = (err: Error | null, bytesRead?: number) => void
type FilledCallback = (err: Error | null, buffer: Buffer, bytesRead: number) => void

export class FileReader extends yauzl.RandomAccessReader {
  readonly #fd: number
  readonly #size: number
  #block: Buffer | undefined
  #blockStart = 0
  #readsInFlight = 0
  #whenIdle: (() => void) | undefined

  constructor (fd: number, size: number) {
    super()
    this.#fd = fd
    this.#size = size
  }

  override _readStreamForRange (start: number, end: number): Readable {
    let position = start
    const stream: Readable = new Readable({
      highWaterMark: BLOCK_BYTES,
      read: (wanted: number) => {
        const length = Math.min(wanted, BLOCK_BYTES, end - position)
        if (length <= 0) {
          stream.push(null)
          return
        }
        this.#read(Buffer.allocUnsafe(length), 0, length, position, (err, bytes, bytesRead) => {
          if (stream.destroyed) return
          if (err) return stream.destroy(err)
          if (bytesRead === 0) return stream.push(null)
          position += bytesRead
          stream.push(bytes.subarray(0, bytesRead))
        })
      }
    })
    return stream
  }

  // yauzl checks the count it is given against `length` (a short read is "unexpected EOF").
  override read (buffer: Buffer, offset: number, length: number, position: number, callback: ReadCallback): void {
    const block = this.#block
    if (block && position >= this.#blockStart && position + length <= this.#blockStart + block.length) {
      block.copy(buffer, offset, position - this.#blockStart, position - this.#blockStart + length)
      setImmediate(callback, null, length)
      return
    }
    if (length > BLOCK_BYTES) {
      this.#read(buffer, offset, length, position, (err, _bytes, bytesRead) => callback(err, bytesRead))
      return
    }
    const blockLength = Math.max(0, Math.min(BLOCK_BYTES, this.#size - position))
    if (blockLength === 0) {
      setImmediate(callback, null, 0)
      return
    }
    this.#read(Buffer.allocUnsafe(blockLength), 0, blockLength, position, (err, ahead, bytesRead) => {
      if (err) return callback(err)
      this.#block = ahead.subarray(0, bytesRead)
      this.#blockStart = position
      const copied = Math.min(length, bytesRead)
      ahead.copy(buffer, offset, 0, copied)
      callback(null, copied)
    })
  }

  override close (callback: (err: Error | null) => void): void {
    this.#block = undefined
    const closeNow = () => close(this.#fd, err => callback(err))
    if (this.#readsInFlight === 0) closeNow(); else this.#whenIdle = closeNow
  }

  #read (buffer: Buffer, offset: number, length: number, position: number, callback: FilledCallback): void {
    this.#readsInFlight++
    read(this.#fd, buffer, offset, length, position, (err, bytesRead) => {
      this.#readsInFlight--
      if (this.#readsInFlight === 0 && this.#whenIdle) {
        const whenIdle = this.#whenIdle
        this.#whenIdle = undefined
        whenIdle()
      }
      callback(err, buffer, bytesRead)
    })
  }
}
