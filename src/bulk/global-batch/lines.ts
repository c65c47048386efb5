// A result file, line by line, with each line bounded: a line longer than the bound is never held whole
// (readline would build it as one string, however large); it is reported by its start, so the item it
// answers can still be told apart (its custom_id comes first in Azure's output lines).
import type { Readable } from 'node:stream'

export type Line =
  | { kind: 'line', text: string }
  /** A line over the bound: its length so far and the custom_id read from its first bytes, if any. */
  | { kind: 'too-long', bytes: number, customId: string | null }

const NEWLINE = 0x0a
/** How much of a too-long line is kept to find its custom_id. */
const HEAD_BYTES = 512

export async function * splitLines (input: Readable | AsyncIterable<Uint8Array>, maxLineBytes: number): AsyncGenerator<Line> {
  let parts: Buffer[] = []
  let held = 0
  /** The head of a line being skipped, or undefined while the line is within the bound. */
  let skipping: { head: Buffer, bytes: number } | undefined
  for await (const chunk of input) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array)
    let from = 0
    while (from < buffer.length) {
      const at = buffer.indexOf(NEWLINE, from)
      const end = at === -1 ? buffer.length : at
      const piece = buffer.subarray(from, end)
      if (skipping !== undefined) {
        skipping.bytes += piece.length
      } else if (held + piece.length > maxLineBytes) {
        const head = Buffer.concat([...parts, piece]).subarray(0, HEAD_BYTES)
        skipping = { head: Buffer.from(head), bytes: held + piece.length }
        parts = []
        held = 0
      } else if (piece.length > 0) {
        parts.push(piece)
        held += piece.length
      }
      if (at === -1) break
      yield * finishLine()
      from = at + 1
    }
  }
  yield * finishLine()

  function * finishLine (): Generator<Line> {
    if (skipping !== undefined) {
      yield { kind: 'too-long', bytes: skipping.bytes, customId: customIdIn(skipping.head.toString('utf8')) }
      skipping = undefined
      return
    }
    if (held === 0) return
    const text = (parts.length === 1 ? parts[0]! : Buffer.concat(parts)).toString('utf8').replace(/\r$/, '')
    parts = []
    held = 0
    if (text.trim() !== '') yield { kind: 'line', text }
  }
}

/** The custom_id at the start of an output line, if it is there whole and looks like one. */
function customIdIn (head: string): string | null {
  const match = /"custom_id"\s*:\s*"([\w.:-]{1,128})"/.exec(head)
  return match?.[1] ?? null
}
