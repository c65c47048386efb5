// The corpus of scenario `adaptive` (issue 21): 100 photos, each one flat colour with noise (so its JPEG is
// photo-sized) that the fake Azure recognises by its mean colour, and what the fake answers for it at each detail.
// 80 "clear" photos: the LOW look answers with HIGH or MEDIUM confidence, the same answer as the HIGH look.
// 20 "unsure" photos: the LOW look finds no vehicle, answers with LOW confidence or says the photo is too small or
// unclear; the HIGH look answers with confidence. Deterministic: run.ts (which uploads the photos) and the fake's
// child process (which answers them) build the same list.
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { VisionAnswer } from '../../src/vision/answer-schema.ts'
import { estimateImageTokens } from '../../src/image/tokens.ts'
import { photoOfColour } from '../../test/support/images.ts'
import type { Rgb } from '../../test/support/fake-azure.ts'
import { CACHE_DIR } from './images.ts'

export type UnsureReason = 'no_vehicle' | 'low_confidence' | 'too_small' | 'unclear'

export interface CorpusPhoto {
  index: number
  name: string
  width: number
  height: number
  /** Its colour: the fake's table key is colourKey(rgb). */
  rgb: Rgb
  /** null: a clear photo (LOW answers as HIGH does); else why the LOW look is not good enough. */
  unsure: UnsureReason | null
  low: VisionAnswer
  high: VisionAnswer
  /** GPT-4o's tile rule for this photo at HIGH. */
  highTokens: number
}

/** Sizes and how many of each: phone photos (landscape, portrait), 16:9 frames, a few small crops. */
const SIZES: Array<{ width: number, height: number, count: number, unsure: number }> = [
  { width: 4032, height: 3024, count: 40, unsure: 4 },
  { width: 3024, height: 4032, count: 20, unsure: 2 },
  { width: 1920, height: 1080, count: 30, unsure: 4 },
  // Small photos are the ones a LOW look most often cannot read: all unsure.
  { width: 400, height: 250, count: 10, unsure: 10 }
]
const REASONS: UnsureReason[] = ['no_vehicle', 'low_confidence', 'too_small', 'unclear']
const MACHINES: Array<[string, string, string]> = [
  ['John Deere', '6R 150', 'green and yellow livery'],
  ['Fendt', '724 Vario', 'green livery with red wheels'],
  ['Claas', 'Axion 870', 'seed-green livery and white roof'],
  ['New Holland', 'T7.270', 'blue livery'],
  ['Massey Ferguson', '8S.265', 'red livery with grey frame'],
  ['Case IH', 'Puma 240', 'red livery with black frame'],
  ['Kubota', 'M7-173', 'orange livery'],
  ['Valtra', 'T235', 'grey and black livery']
]
export const CORPUS_SIZE = SIZES.reduce((n, s) => n + s.count, 0)
/** Bumped when the photos change, so a cached file is never a stale one. */
const CORPUS_VERSION = 1

/**
 * The colour of photo i: distinct for every photo, each channel a multiple of 16 (colourKey rounds to the nearest
 * one) from 48 to 192, clear of clipping, so noise and JPEG/downscaling shift the mean by far less than half a step.
 */
function colourOf (i: number): Rgb {
  return { r: 16 * (3 + i % 10), g: 16 * (3 + Math.floor(i / 10) % 10), b: 16 * (3 + i % 7) }
}

function confident (i: number, confidence: 'HIGH' | 'MEDIUM'): VisionAnswer {
  const [make, model, livery] = MACHINES[i % MACHINES.length] as [string, string, string]
  return {
    answer: `Photo ${i}: a ${make} ${model} tractor.`,
    vehicles: [{
      category: 'TRACTOR',
      kind: 'MACHINE',
      make,
      model,
      confidence,
      evidence: [livery, confidence === 'HIGH' ? `${model} lettering on the bonnet` : 'cab and bonnet shape']
    }],
    imageQuality: 'CLEAR'
  }
}

function unsureLook (i: number, reason: UnsureReason): VisionAnswer {
  const [make, , livery] = MACHINES[i % MACHINES.length] as [string, string, string]
  const guess = (confidence: 'HIGH' | 'MEDIUM' | 'LOW', imageQuality: VisionAnswer['imageQuality']): VisionAnswer => ({
    answer: `Photo ${i}: perhaps a ${make} tractor.`,
    vehicles: [{ category: 'TRACTOR', kind: 'MACHINE', make, model: null, confidence, evidence: [livery] }],
    imageQuality
  })
  switch (reason) {
    case 'no_vehicle': return { answer: `Photo ${i}: no vehicle can be seen.`, vehicles: [], imageQuality: 'CLEAR' }
    case 'low_confidence': return guess('LOW', 'CLEAR')
    case 'too_small': return guess('MEDIUM', 'TOO_SMALL')
    case 'unclear': return guess('HIGH', 'UNCLEAR')
  }
}

/** The 100 photos, in a fixed shuffled order (sizes and unsure ones spread through the run). */
export function corpus (): CorpusPhoto[] {
  const photos: Array<Omit<CorpusPhoto, 'index' | 'name' | 'rgb' | 'low' | 'high'>> = []
  let reason = 0
  for (const size of SIZES) {
    for (let k = 0; k < size.count; k++) {
      const unsure = k < size.unsure ? REASONS[reason++ % REASONS.length] as UnsureReason : null
      photos.push({ width: size.width, height: size.height, unsure, highTokens: estimateImageTokens(size.width, size.height, 'high') })
    }
  }
  // Seeded Fisher–Yates.
  let s = 0x2545f491
  const next = (): number => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 4294967296 }
  for (let i = photos.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1))
    ;[photos[i], photos[j]] = [photos[j] as typeof photos[number], photos[i] as typeof photos[number]]
  }
  return photos.map((p, index) => {
    const high = confident(index, index % 3 === 0 ? 'MEDIUM' : 'HIGH')
    return {
      ...p,
      index,
      name: `adaptive-v${CORPUS_VERSION}-${String(index).padStart(3, '0')}-${p.width}x${p.height}.jpg`,
      rgb: colourOf(index),
      low: p.unsure === null ? high : unsureLook(index, p.unsure),
      high: p.unsure === null ? high : confident(index, 'HIGH')
    }
  })
}

export interface CorpusFile { photo: CorpusPhoto, path: string, bytes: number, sha256: string }

/** The photo's JPEG, made once with photoOfColour and cached in the OS temp directory. */
export async function corpusFile (photo: CorpusPhoto): Promise<CorpusFile> {
  const dir = join(CACHE_DIR, 'adaptive')
  mkdirSync(dir, { recursive: true })
  const path = join(dir, photo.name)
  if (!existsSync(path)) {
    const tmp = `${path}.${process.pid}.tmp`
    writeFileSync(tmp, await photoOfColour(photo.rgb, photo.width, photo.height))
    renameSync(tmp, path)
  }
  const buffer = readFileSync(path)
  return { photo, path, bytes: buffer.length, sha256: createHash('sha256').update(buffer).digest('hex') }
}

/** Every photo's file, made two at a time (sharp encodes a 12 MP photo in a few hundred ms). */
export async function corpusFiles (photos: CorpusPhoto[]): Promise<CorpusFile[]> {
  const files: CorpusFile[] = new Array(photos.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < photos.length) {
      const i = next++
      files[i] = await corpusFile(photos[i] as CorpusPhoto)
    }
  }
  await Promise.all([worker(), worker()])
  return files
}
