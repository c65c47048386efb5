// Child process for scenario 3: times the image pipeline (src/image/pipeline.ts) on a 4000×3000 JPEG
// with EXIF, on one core (run.ts pins this process with taskset; libuv and libvips get one thread each,
// the pipeline a concurrency of 1), with the production configuration's image settings. The bulk scenario
// (bench/bulk.ts) hands several inputs (BENCH_PIPELINE_INPUT: paths joined by the platform's path delimiter), taken
// in turn as a job takes its photos; every run has its CPU time (the process's, all threads) beside the wall time.
import { readFileSync } from 'node:fs'
import { basename, delimiter } from 'node:path'
import sharp from 'sharp'
import { loadConfig } from '../src/config.ts'
import { inspectImage } from '../src/image/inspect.ts'
import { createImagePipeline, type ImageDetail, type PreparedImage } from '../src/image/pipeline.ts'
import type { PipelineReply, PipelineRun } from './lib/protocol.ts'
import { percentile } from './lib/stats.ts'

const RUNS = Number(process.env.BENCH_PIPELINE_RUNS ?? 25)
const MAX_MS = Number(process.env.BENCH_PIPELINE_MAX_MS ?? 12_000)
const DETAILS = (process.env.BENCH_PIPELINE_DETAILS ?? 'auto,low').split(',') as ImageDetail[]

function reply (message: PipelineReply): void {
  process.send?.(message)
}

async function time (
  detail: ImageDetail, prepare: () => Promise<PreparedImage>, input: Buffer, upright: { width: number, height: number }
): Promise<PipelineRun> {
  const output = await prepare() // warm-up, and what is sent
  const times: number[] = []
  const started = performance.now()
  const cpu = process.cpuUsage()
  while (times.length < RUNS && performance.now() - started < MAX_MS) {
    const t = performance.now()
    await prepare()
    times.push(performance.now() - t)
  }
  const { user, system } = process.cpuUsage(cpu)
  return {
    detail,
    cpuMs: (user + system) / 1000 / times.length,
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
  sharp.concurrency(1)
  const config = loadConfig({ NODE_ENV: 'production', LOG_LEVEL: 'warn', ALLOW_ANONYMOUS: 'true' })
  const pipeline = createImagePipeline({ ...config.images, concurrency: 1 })
  const paths = (process.env.BENCH_PIPELINE_INPUT as string).split(delimiter)
  const runs: PipelineRun[] = paths.length === 1 ? await repeated(paths[0] as string, pipeline) : await roundRobin(paths, pipeline)
  reply({ type: 'result', runs })
}

type Pipeline = ReturnType<typeof createImagePipeline>

function uprightOf (inspected: Awaited<ReturnType<typeof inspectImage>>): { width: number, height: number } {
  const rotated = (inspected.orientation ?? 1) >= 5
  return { width: rotated ? inspected.height : inspected.width, height: rotated ? inspected.width : inspected.height }
}

/** Scenario 3: one photo, prepared again and again at each detail. */
async function repeated (path: string, pipeline: Pipeline): Promise<PipelineRun[]> {
  const input = readFileSync(path)
  const inspected = await inspectImage(input)
  const runs: PipelineRun[] = []
  for (const detail of DETAILS) {
    runs.push(await time(detail, async () => await pipeline.prepare(input, inspected, detail), input, uprightOf(inspected)))
  }
  return runs
}

/**
 * The bulk scenario: several photos taken in turn, RUNS rounds (after one warm-up round), as a job prepares one photo
 * after another (never the same twice in a row); each photo's time and CPU, at the first detail.
 */
async function roundRobin (paths: string[], pipeline: Pipeline): Promise<PipelineRun[]> {
  const detail = DETAILS[0] as ImageDetail
  const photos = await Promise.all(paths.map(async path => {
    const input = readFileSync(path)
    const inspected = await inspectImage(input)
    return { path, input, inspected, output: await pipeline.prepare(input, inspected, detail), times: [] as number[], cpuMs: 0 }
  }))
  for (let round = 0; round < RUNS; round++) {
    for (const photo of photos) {
      const cpu = process.cpuUsage()
      const t = performance.now()
      await pipeline.prepare(photo.input, photo.inspected, detail)
      photo.times.push(performance.now() - t)
      const { user, system } = process.cpuUsage(cpu)
      photo.cpuMs += (user + system) / 1000
    }
  }
  return photos.map(({ path, input, inspected, output, times, cpuMs }) => {
    const upright = uprightOf(inspected)
    return {
      detail,
      input: basename(path),
      runs: times.length,
      p50: percentile(times, 50),
      p99: percentile(times, 99),
      cpuMs: cpuMs / times.length,
      inputBytes: input.length,
      outputBytes: output.bytes.length,
      inputWidth: upright.width,
      inputHeight: upright.height,
      outputWidth: output.width,
      outputHeight: output.height
    }
  })
}

main().catch((err: unknown) => reply({ type: 'error', message: String((err as Error)?.stack ?? err) }))
  .finally(() => setTimeout(() => process.exit(0), 100))
