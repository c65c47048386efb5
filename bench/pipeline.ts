// Child process for scenario 3: times the image pipeline (src/image/pipeline.ts) on a 4000×3000 JPEG
// with EXIF, on one core (run.ts pins this process with taskset; libuv and libvips get one thread each,
// the pipeline a concurrency of 1). Answers "pending" while src/image/pipeline.ts does not exist.
//
// Two shapes are understood: `createImagePipeline(options).prepare(buffer, inspected, detail)` (the
// current one, with options from loadConfig's production defaults), or a plain `prepareImage(buffer)`.
import { existsSync, readFileSync } from 'node:fs'
import sharp from 'sharp'
import { loadConfig } from '../src/config.ts'
import { inspectImage } from '../src/image/inspect.ts'
import type { PipelineReply, PipelineRun } from './lib/protocol.ts'
import { percentile } from './lib/stats.ts'

// BENCH_PIPELINE_MODULE (a file URL) points the hook at another module, to try it out.
const PIPELINE = new URL(process.env.BENCH_PIPELINE_MODULE ?? '../src/image/pipeline.ts', import.meta.url)
const RUNS = Number(process.env.BENCH_PIPELINE_RUNS ?? 25)
const MAX_MS = Number(process.env.BENCH_PIPELINE_MAX_MS ?? 12_000)
const DETAILS = (process.env.BENCH_PIPELINE_DETAILS ?? 'auto,low').split(',')

type Prepare = (input: Buffer) => Promise<unknown>

interface PipelineModule {
  createImagePipeline?: (options: Record<string, unknown>) => { prepare: (image: Buffer, inspected: unknown, detail: string) => Promise<unknown> }
  prepareImage?: Prepare
}

function reply (message: PipelineReply): void {
  process.send?.(message)
}

/** The bytes and upright size of what the pipeline would send. */
async function readOutput (result: unknown): Promise<{ bytes: Buffer, width: number, height: number }> {
  let bytes: Buffer | undefined
  let width: number | undefined
  let height: number | undefined
  if (Buffer.isBuffer(result) || result instanceof Uint8Array) {
    bytes = Buffer.from(result)
  } else if (result !== null && typeof result === 'object') {
    const record = result as Record<string, unknown>
    for (const key of ['bytes', 'buffer', 'data', 'image', 'output', ...Object.keys(record)]) {
      const value = record[key]
      if (Buffer.isBuffer(value) || value instanceof Uint8Array) { bytes = Buffer.from(value); break }
    }
    if (typeof record.width === 'number') width = record.width
    if (typeof record.height === 'number') height = record.height
  }
  if (bytes === undefined) throw new Error(`unrecognised pipeline result: ${Object.prototype.toString.call(result)} with keys ${Object.keys(result ?? {}).join(', ')}`)
  if (width === undefined || height === undefined) {
    const meta = await sharp(bytes).metadata()
    const rotated = (meta.orientation ?? 1) >= 5
    width = rotated ? meta.height : meta.width
    height = rotated ? meta.width : meta.height
  }
  return { bytes, width: width ?? 0, height: height ?? 0 }
}

async function time (detail: string, prepare: Prepare, input: Buffer, upright: { width: number, height: number }): Promise<PipelineRun> {
  const output = await readOutput(await prepare(input)) // warm-up, and what is sent
  const times: number[] = []
  const started = performance.now()
  while (times.length < RUNS && performance.now() - started < MAX_MS) {
    const t = performance.now()
    await prepare(input)
    times.push(performance.now() - t)
  }
  return {
    detail,
    runs: times.length,
    p50: percentile(times, 50),
    p99: percentile(times, 99),
    inputBytes: input.length,
    outputBytes: output.bytes.length,
    inputWidth: upright.width,
    inputHeight: upright.height,
    outputWidth: output.width,
    outputHeight: output.height
  }
}

async function main (): Promise<void> {
  if (!existsSync(PIPELINE)) {
    reply({ type: 'pending', reason: 'src/image/pipeline.ts does not exist yet' })
    return
  }
  const mod = await import(PIPELINE.href) as PipelineModule
  sharp.concurrency(1)
  const input = readFileSync(process.env.BENCH_PIPELINE_INPUT as string)
  const inspected = await inspectImage(input)
  const rotated = (inspected.orientation ?? 1) >= 5
  const upright = { width: rotated ? inspected.height : inspected.width, height: rotated ? inspected.width : inspected.height }

  const runs: PipelineRun[] = []
  if (typeof mod.createImagePipeline === 'function') {
    const config = loadConfig({ NODE_ENV: 'production', LOG_LEVEL: 'warn', ALLOW_ANONYMOUS: 'true' }) as unknown as { images?: Record<string, unknown> }
    const pipeline = mod.createImagePipeline({ ...config.images, concurrency: 1 })
    for (const detail of DETAILS) runs.push(await time(detail, async (buffer) => await pipeline.prepare(buffer, inspected, detail), input, upright))
  } else if (typeof mod.prepareImage === 'function') {
    runs.push(await time('default', mod.prepareImage, input, upright))
  } else {
    reply({ type: 'pending', reason: 'src/image/pipeline.ts exports neither createImagePipeline nor prepareImage' })
    return
  }
  reply({ type: 'result', runs })
}

main().catch((err: unknown) => reply({ type: 'error', message: String((err as Error)?.stack ?? err) }))
  .finally(() => setTimeout(() => process.exit(0), 100))
