// createBulkJob's question, checked as identifyVehicle checks its own (the same bounds and defaults), and the
// opaque cursors of bulk jobs (created_at, id) and of their items (seq).
import { BadUserInputError } from '../errors.ts'
import type { RequestedDetail } from '../image/tokens.ts'
import { LANGUAGE_TAG } from '../vision/language.ts'
import { DEFAULT_INSTRUCTIONS } from '../vision/types.ts'

export const MAX_INSTRUCTIONS_LENGTH = 2000
export const MAX_PAGE_SIZE = 100

const DETAILS: Record<string, RequestedDetail> = { AUTO: 'auto', HIGH: 'high', LOW: 'low', ADAPTIVE: 'adaptive' }

export function readInstructions (value: string | null | undefined): string {
  const text = value?.trim() ?? ''
  if (text.length > MAX_INSTRUCTIONS_LENGTH) {
    throw new BadUserInputError(`\`instructions\` is ${text.length} characters long; at most ${MAX_INSTRUCTIONS_LENGTH} are allowed.`, { argument: 'instructions' })
  }
  return text === '' ? DEFAULT_INSTRUCTIONS : text
}

export function readLanguage (value: string | null | undefined, fallback: string): string {
  if (value == null || value === '') return fallback
  if (!LANGUAGE_TAG.test(value)) {
    throw new BadUserInputError('`language` must be a BCP-47 language tag such as "ru", "en", "de" or "pt-BR".', { argument: 'language' })
  }
  return value
}

export function readDetail (value: string | null | undefined, fallback: RequestedDetail): RequestedDetail {
  return value == null ? fallback : DETAILS[value] ?? fallback
}

export function readPageSize (first: number | null | undefined, fallback = 20): number {
  const size = first ?? fallback
  if (!Number.isInteger(size) || size < 1 || size > MAX_PAGE_SIZE) {
    throw new BadUserInputError(`\`first\` must be between 1 and ${MAX_PAGE_SIZE}.`, { argument: 'first' })
  }
  return size
}

const BAD_CURSOR = '`after` is not a cursor this API gave out: pass an `endCursor` or an edge\'s `cursor` unchanged.'

export function encodeJobCursor (createdAt: number, id: string): string {
  return Buffer.from(JSON.stringify([createdAt, id])).toString('base64url')
}

export function decodeJobCursor (cursor: string): { createdAt: number, id: string } {
  try {
    if (cursor.length <= 200) {
      const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
      if (Array.isArray(value) && value.length === 2 && Number.isSafeInteger(value[0]) && typeof value[1] === 'string' &&
        /^[0-9a-f-]{36}$/.test(value[1])) {
        return { createdAt: value[0] as number, id: value[1] }
      }
    }
  } catch {}
  throw new BadUserInputError(BAD_CURSOR, { argument: 'after' })
}

export function encodeItemCursor (seq: number): string {
  return Buffer.from(`i${seq}`).toString('base64url')
}

export function decodeItemCursor (cursor: string): number {
  const text = cursor.length <= 40 ? Buffer.from(cursor, 'base64url').toString('utf8') : ''
  const seq = /^i\d{1,9}$/.test(text) ? Number(text.slice(1)) : NaN
  if (!Number.isSafeInteger(seq)) throw new BadUserInputError(BAD_CURSOR, { argument: 'after' })
  return seq
}
