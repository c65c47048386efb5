// Relay cursors for the identifications connection: the position (created_at, id) of the last row
// seen, opaque to clients (base64url JSON). A cursor that does not decode is bad input, not a crash.
import { BadUserInputError } from '../errors.ts'
import { isStorableText } from '../storable-text.ts'

export interface Position {
  createdAt: number
  id: string
}

export function encodeCursor (position: Position): string {
  return Buffer.from(JSON.stringify([position.createdAt, position.id])).toString('base64url')
}

export function decodeCursor (cursor: string): Position {
  try {
    if (cursor.length > 200) throw new Error('too long')
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
    if (Array.isArray(value) && value.length === 2 && Number.isSafeInteger(value[0]) && typeof value[1] === 'string' && value[1].length <= 36 &&
      isStorableText(value[1])) {
      return { createdAt: value[0] as number, id: value[1] }
    }
  } catch {}
  throw new BadUserInputError('`after` is not a cursor this API gave out: pass an `endCursor` or an edge\'s `cursor` unchanged.', { argument: 'after' })
}
