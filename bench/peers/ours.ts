// Peer (c): our service, built by our app factory.
//   BENCH_VISION=bench (default): `benchVision` (BENCH_LATENCY_MS holds each call that long).
//   BENCH_VISION=simulated: `npm start`'s default backend (createVision with no Azure: the simulated one).
//   BENCH_VISION=azure: the real backend (createVision: DefaultAzureCredential + openai) against the
//   fake Azure whose identity environment run.ts put in our env; warmed up after listen, as src/server.ts does.
// History is on (the default: SQLite) unless run.ts sets HISTORY=off. Its database is always in a temporary
// directory, never ./data: BENCH_DATA_DIR (run.ts made it, reads it after, removes it) or one made here and
// removed at exit. The result cache is off (RESULT_CACHE_TTL_S=0): the load sends one photo over and over, and a
// cache hit would measure a lookup instead of an identification and its recording.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { loggerOptions } from '../../src/logger.ts'
import { createVision } from '../../src/vision/index.ts'
import { announce, benchPort, createBenchVision } from './shared.ts'

const port = benchPort()
const mode = process.env.BENCH_VISION ?? 'bench'
const ownDataDir = process.env.BENCH_DATA_DIR === undefined
const dataDir = process.env.BENCH_DATA_DIR ?? mkdtempSync(join(tmpdir(), 'agrivision-bench-data-'))
if (ownDataDir) process.on('exit', () => { rmSync(dataDir, { recursive: true, force: true }) })
// Production settings (NODE_ENV=production from run.ts) with what the benchmark needs, overridable by run.ts:
// no caller auth (the peers have none; production refuses AUTH_MODE=none unless ALLOW_ANONYMOUS=true), and no
// per-caller rate limits or slot share (every load request comes from one caller, 127.0.0.1).
const config = loadConfig({
  ALLOW_ANONYMOUS: 'true',
  RATE_LIMIT_PER_MINUTE: '0',
  GRAPHQL_RATE_LIMIT_PER_MINUTE: '0',
  VISION_MAX_CONCURRENCY_PER_CALLER: '1024',
  RESULT_CACHE_TTL_S: '0',
  ...process.env,
  // History in SQLite under the temporary directory, whatever this shell's DATA_DIR or DATABASE_URL say;
  // on PostgreSQL when run.ts hands a throwaway cluster's URL (BENCH_DATABASE_URL).
  DATA_DIR: dataDir,
  DATABASE_URL: process.env.BENCH_DATABASE_URL,
  // The default (info: one access-log line per request, to stdout, which run.ts reads) unless run.ts says otherwise.
  LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
  PORT: String(port),
  HOST: '127.0.0.1'
})

let app
let vision
if (mode === 'azure') {
  const log = pino(loggerOptions(config.server))
  vision = createVision(config, log)
  app = await buildApp({ config, vision, logger: log })
} else if (mode === 'simulated') {
  // `npm start`'s default backend (no Azure configured): what createVision makes.
  const log = pino(loggerOptions(config.server))
  vision = createVision(config, log)
  app = await buildApp({ config, vision, logger: log })
} else {
  vision = createBenchVision({ latencyMs: Number(process.env.BENCH_LATENCY_MS ?? 0) })
  app = await buildApp({ config, vision })
}

await app.listen({ host: config.server.host, port: config.server.port })
await vision.warmUp?.()
announce(`ours (${mode})`, port, async () => { await app.close() })
